# Tests of minipipe's tensor bindings (python/bind_tensor.cpp): NumPy round trips are exact,
# numpy() and the buffer protocol share memory, gradients match closed forms, bad input raises.
# Run by ctest (python.test_tensor) with PYTHONPATH at the module: build/python.
import gc

import numpy as np
import pytest

import minipipe as mp


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_numpy_round_trip_is_exact(dtype):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 5)) * 1e3).astype(dtype)
    t = mp.tensor(a)
    assert t.shape == (3, 5)
    assert t.dtype == np.dtype(dtype).name
    back = t.numpy()
    assert back.dtype == a.dtype
    assert back.tobytes() == a.tobytes()  # bit for bit
    assert mp.from_numpy(a).numpy().tobytes() == a.tobytes()


def test_tensor_copies_the_array():
    a = np.arange(4, dtype=np.float64)
    t = mp.tensor(a)
    a[0] = 99.0
    assert t.numpy()[0] == 0.0
    assert t.data_ptr != a.__array_interface__["data"][0]


def test_non_contiguous_arrays_are_copied_in_order():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2].T
    assert np.array_equal(mp.tensor(a).numpy(), a)


def test_numpy_shares_the_tensors_memory():
    t = mp.zeros((2, 3), dtype="float32")
    n = t.numpy()
    assert n.__array_interface__["data"][0] == t.data_ptr
    n[1, 2] = 5.0  # a write through NumPy ...
    assert mp.sum(t).item() == 5.0  # ... is what the C++ kernels read
    buf = np.asarray(t)  # the buffer protocol: the same memory again
    assert np.shares_memory(buf, n)
    buf[0, 0] = -1.0
    assert n[0, 0] == -1.0 and (t * 2.0).numpy()[0, 0] == -2.0


def test_numpy_keeps_the_storage_alive():
    n = mp.ones((1000,), dtype="float64").numpy()
    gc.collect()
    mp.zeros((1000,), dtype="float64")  # would reuse the freed block
    assert n.sum() == 1000.0


def test_views_are_shared_with_their_strides():
    t = mp.arange(6, dtype="float64").reshape(2, 3)
    v = t.T
    assert not v.is_contiguous() and v.strides == (1, 3)
    n = v.numpy()
    assert np.array_equal(n, np.arange(6.0).reshape(2, 3).T)
    assert n.strides == (8, 24)
    n[2, 1] = 50.0
    assert t.numpy()[1, 2] == 50.0


def test_lists_and_scalars():
    assert mp.tensor([1.5, 2.0]).dtype == "float32"
    assert mp.tensor([[1, 2], [3, 4]]).dtype == "int64"
    assert mp.tensor([1, 2], dtype="float64").numpy().tolist() == [1.0, 2.0]
    assert mp.tensor(3.0).shape == ()
    assert mp.tensor(np.float32(2.5)).item() == 2.5


def test_unsupported_dtypes_raise():
    with pytest.raises(TypeError, match="int32"):
        mp.tensor(np.zeros(3, dtype=np.int32))
    assert mp.tensor(np.zeros(3, dtype=np.int32), dtype="int64").dtype == "int64"
    with pytest.raises(TypeError, match="float16"):
        mp.zeros((2,), dtype="float16")
    with pytest.raises(TypeError, match="str"):
        mp.tensor(["a", "b"])


def test_numpy_of_a_tensor_that_requires_grad_raises():
    x = mp.ones((2,), requires_grad=True)
    with pytest.raises(mp.Error, match=r"requires grad; use \.detach\(\)\.numpy\(\)"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0, 1.0]


def test_ops_match_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    A, B = mp.tensor(a), mp.tensor(b)
    np.testing.assert_allclose((A @ B).numpy(), a @ b, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal((A + 1.0).numpy(), a + 1.0)
    np.testing.assert_array_equal((2.0 - A).numpy(), 2.0 - a)
    np.testing.assert_array_equal((A * A).numpy(), a * a)
    np.testing.assert_array_equal((A + mp.tensor(a[0])).numpy(), a + a[0])  # broadcast
    np.testing.assert_allclose(A.sum(dim=0).numpy(), a.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(mp.mean(A, dim=[0, 1]).item(), a.mean(), rtol=1e-14)
    np.testing.assert_allclose(mp.softmax(A, dim=1).numpy(), np.exp(a) / np.exp(a).sum(1, keepdims=True), rtol=1e-13)
    assert A.argmax(1).numpy().tolist() == a.argmax(1).tolist()
    assert A.reshape(3, 4).shape == (3, 4) and A.reshape((12,)).shape == (12,)


def test_gradient_of_sum_of_squares_is_2x():
    a = np.array([1.5, -2.0, 0.25])
    x = mp.tensor(a, requires_grad=True)
    y = (x * x).sum()
    assert y.grad_fn == "SumBackward" and x.is_leaf and x.grad is None
    y.backward()
    assert x.grad.numpy().tolist() == (2 * a).tolist()  # exact


def test_gradient_of_tanh_layer_matches_the_closed_form():
    rng = np.random.default_rng(2)
    w, v = rng.standard_normal((4, 3)), rng.standard_normal(3)
    W, x = mp.tensor(w, requires_grad=True), mp.tensor(v, requires_grad=True)
    loss = mp.tanh(W @ x).sum()  # d/dx = W^T (1 - tanh^2(Wx)), d/dW = (1 - tanh^2) x^T
    loss.backward()
    s = 1 - np.tanh(w @ v) ** 2
    np.testing.assert_allclose(x.grad.numpy(), w.T @ s, rtol=1e-13)
    np.testing.assert_allclose(W.grad.numpy(), np.outer(s, v), rtol=1e-13)


def test_cross_entropy_gradient_is_softmax_minus_one_hot_over_n():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    logits = mp.tensor(z, requires_grad=True)
    loss = mp.cross_entropy(logits, mp.tensor(y))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(loss.item(), -np.log(p[np.arange(5), y]).mean(), rtol=1e-13)
    loss.backward()
    np.testing.assert_allclose(logits.grad.numpy(), (p - np.eye(4)[y]) / 5, rtol=1e-12, atol=1e-15)


def test_gradients_accumulate_and_reset():
    x = mp.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    assert x.grad.numpy().tolist() == [6.0, 6.0]
    x.grad = None
    assert x.grad is None


def test_no_grad_records_nothing():
    x = mp.ones((2,), requires_grad=True)
    with mp.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.grad_fn is None
    assert (x * 2.0).requires_grad


def test_errors_carry_the_cpp_message():
    with pytest.raises(mp.Error, match=r"matmul: inner dimensions differ: \[2, 3\] x \[4, 5\]"):
        mp.matmul(mp.zeros((2, 3)), mp.zeros((4, 5)))
    with pytest.raises(mp.Error):
        mp.ones((3,), requires_grad=True).backward()  # not a scalar
    with pytest.raises(RuntimeError):  # minipipe.Error is a RuntimeError
        mp.zeros((2, 3)).view(4)
    assert issubclass(mp.Error, RuntimeError)


def test_generators_are_reproducible():
    a = mp.randn((3, 4), generator=mp.Generator(7)).numpy()
    b = mp.randn((3, 4), generator=mp.Generator(7)).numpy()
    assert a.tobytes() == b.tobytes()
