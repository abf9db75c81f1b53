# Tests of minipipe.nn's data bindings (python/bind_nn.cpp): the DataLoader's seeded batches over
# Fashion-MNIST (Debian's dataset-fashion-mnist), the text vocabulary and windows, the optimizers'
# parameter groups, and a short training run of the train_mlp model from Python.
# Run by ctest (python.test_data) with PYTHONPATH at the module: build/python.
import os

import numpy as np
import pytest

import minipipe as mp

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION), reason="apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="module")
def test_split():
    return mp.nn.load_fashion_mnist(FASHION, train=False)


@needs_fashion
def test_fashion_mnist_test_split(test_split):
    assert len(test_split) == 10000
    assert test_split.inputs.shape == (10000, 784) and test_split.inputs.dtype == "float32"
    labels = test_split.targets.numpy()
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [1000] * 10
    raw = mp.nn.load_fashion_mnist(FASHION, train=False, normalize=False).inputs.numpy()
    assert raw.min() == 0.0 and raw.max() == 1.0


@needs_fashion
def test_data_loader_batches_are_seeded(test_split):
    loader = mp.nn.DataLoader(test_split, batch_size=128, seed=3)
    assert len(loader) == 79  # ceil(10000 / 128)
    sizes, first = [], None
    for x, y in loader:
        first = first if first is not None else y.numpy().copy()
        sizes.append(x.shape[0])
    assert sizes == [128] * 78 + [16]
    assert list(loader) == []  # the epoch is over until reset()
    loader.reset(0)
    assert next(iter(loader))[1].numpy().tolist() == first.tolist()  # same seed, same epoch: same batch
    loader.reset(1)
    assert next(iter(loader))[1].numpy().tolist() != first.tolist()


@needs_fashion
def test_the_train_mlp_model_learns_from_python(test_split):
    g = mp.Generator(0)
    model = mp.nn.Sequential(mp.nn.Linear(784, 64, generator=g), mp.nn.ReLU(), mp.nn.Linear(64, 10, generator=g))
    opt = mp.optim.AdamW(model.parameters(), lr=1e-3)
    loader = mp.nn.DataLoader(mp.nn.Dataset(test_split.inputs, test_split.targets), batch_size=100, seed=0)
    losses = []
    for x, y in loader:
        opt.zero_grad()
        loss = mp.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert len(losses) == 100
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_vocabulary_and_windows():
    text = "hello, pipeline"
    vocab = mp.nn.Vocabulary.chars(text)
    assert len(vocab) == len(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == "int64" and ids.shape == (len(text),)
    assert vocab.decode(ids) == text and vocab.decode(ids.numpy().tolist()) == text
    with pytest.raises(mp.Error):
        vocab.encode("z")  # not in the vocabulary
    long_ids = mp.tensor(np.arange(1000) % 7)
    train, val = mp.nn.split_train_val(long_ids, 0.1, block=10)
    assert len(train) + len(val) == 1000 and len(val) == 100
    x, y = mp.nn.sample_batch(train, 4, 6, mp.Generator(0))
    assert x.shape == y.shape == (4, 6)
    assert np.array_equal((x.numpy() + 1) % 7, y.numpy())  # the next token


def test_optimizer_groups_and_lr():
    w, b = mp.ones((2,), dtype="float64", requires_grad=True), mp.ones((2,), dtype="float64", requires_grad=True)
    opt = mp.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
    (w * 2.0 + b * 2.0).sum().backward()
    opt.step()
    assert w.detach().numpy().tolist() == [1 - 0.1 * 2] * 2
    assert b.detach().numpy().tolist() == [1 - 0.5 * 2] * 2
    opt.lr = 0.01
    assert [g.get("lr") for g in opt.param_groups] == [0.01, 0.01]
    with pytest.raises(mp.Error, match="not both"):
        mp.optim.SGD([w, {"params": [b]}])
