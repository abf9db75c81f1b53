# Tests of minipipe.parallel's launch() and Pipe from Python (python/bind_pipe.cpp): a pipelined run
# over local rank threads gives the losses and weights of a single-stage run and of plain training,
# for the MLP and the GPT; errors on one rank stop the others and surface as minipipe.Error.
# Run by ctest (python.test_pipe) with PYTHONPATH at the module: build/python.
import numpy as np
import pytest

import minipipe as mp

par = mp.parallel
ROWS, IN, CLASSES = 16, 12, 5


def make_mlp(seed, dtype="float32", hidden=(24, 16)):
    """The MLP of examples/train_mlp.cpp (Linear, ReLU, ..., Linear), weights from Generator(seed)."""
    g = mp.Generator(seed)
    layers, width = [], IN
    for h in hidden:
        layers += [mp.nn.Linear(width, h, dtype=dtype, generator=g), mp.nn.ReLU()]
        width = h
    layers.append(mp.nn.Linear(width, CLASSES, dtype=dtype, generator=g))
    return mp.nn.Sequential(layers)


def make_batch(dtype="float32"):
    x = mp.randn((ROWS, IN), dtype=dtype, generator=mp.Generator(1))
    y = mp.tensor(np.arange(ROWS) % CLASSES)
    return x, y


def weights(model):
    return {k: v.detach().numpy().copy() for k, v in model.named_parameters().items()}


def train_pipe(model, x, y, steps, ranks, optimizer="sgd", **options):
    """Every rank builds a Pipe and steps its optimizer; returns rank 0's losses."""
    def rank(ctx):
        pipe = par.Pipe(model, ctx.comm, stages=ranks, **options)
        params = pipe.parameters()
        opt = mp.optim.SGD(params, lr=0.1, momentum=0.9) if optimizer == "sgd" else mp.optim.AdamW(params, lr=1e-2)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            losses.append(pipe.train_step(x, y))
            opt.step()
        return losses
    per_rank = par.launch(rank, ranks=ranks)
    assert all(l == per_rank[0] for l in per_rank)  # every rank reports the batch's loss
    return per_rank[0]


def test_two_stage_pipe_equals_one_stage_float32():
    x, y = make_batch()
    one, two = make_mlp(0), make_mlp(0)
    l1 = train_pipe(one, x, y, steps=4, ranks=1, microbatches=4)
    l2 = train_pipe(two, x, y, steps=4, ranks=2, microbatches=4, schedule="1f1b")
    np.testing.assert_allclose(l2, l1, rtol=0, atol=1e-6)
    assert l1[-1] < l1[0]  # it learns
    w1, w2 = weights(one), weights(two)
    assert w1.keys() == w2.keys()
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("schedule,v", [("gpipe", 1), ("1f1b", 1), ("interleaved", 2)])
def test_pipe_equals_plain_training_float64(schedule, v):
    x, y = make_batch("float64")
    ref = make_mlp(3, "float64")
    opt = mp.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    ref_losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = mp.cross_entropy(ref(x), y)
        loss.backward()
        opt.step()
        ref_losses.append(loss.item())
    model = make_mlp(3, "float64")
    losses = train_pipe(model, x, y, steps=3, ranks=2, microbatches=4, schedule=schedule, virtual_chunks=v)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    for k, w in weights(ref).items():
        np.testing.assert_allclose(weights(model)[k], w, rtol=1e-11, atol=1e-14)


def test_gpt_two_stages_equal_one():
    cfg = mp.nn.GPTConfig(vocab_size=11, context=8, n_layer=2, n_head=2, d_model=16)
    text = "a pipeline of stages passes micro-batches along " * 8
    vocab = mp.nn.Vocabulary.chars(text)
    assert vocab.decode(vocab.encode(text)) == text
    cfg.vocab_size = len(vocab)
    x, y = mp.nn.sample_batch(vocab.encode(text), 8, cfg.context, mp.Generator(5))
    assert x.shape == (8, 8) and np.array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
    one, two = (mp.nn.make_gpt(cfg, mp.Generator(2)) for _ in range(2))
    l1 = train_pipe(one, x, y, steps=2, ranks=1, microbatches=2, loss="gpt_loss", optimizer="adamw")
    l2 = train_pipe(two, x, y, steps=2, ranks=2, microbatches=2, loss="gpt_loss", optimizer="adamw")
    np.testing.assert_allclose(l2, l1, rtol=0, atol=1e-6)
    assert l1[0] == pytest.approx(np.log(cfg.vocab_size), rel=0.1)  # about uniform at the start


def test_a_python_loss_gives_the_builtin_loss():
    x, y = make_batch("float64")
    builtin = train_pipe(make_mlp(4, "float64"), x, y, steps=2, ranks=2, microbatches=2)
    custom = train_pipe(make_mlp(4, "float64"), x, y, steps=2, ranks=2, microbatches=2,
                        loss=lambda out, t: mp.cross_entropy(out, t))
    assert custom == builtin


def test_predict_and_evaluate():
    x, y = make_batch()
    model = make_mlp(5)
    with mp.no_grad():
        expected = model(x).numpy()

    def rank(ctx):
        pipe = par.Pipe(model, ctx.comm, stages=2, microbatches=4)
        out = pipe.predict(x)
        correct = pipe.evaluate(x, y)
        return (None if out is None else out.numpy(), correct, pipe.is_last_stage, str(pipe.program))
    (out0, c0, last0, prog), (out1, c1, last1, _) = par.launch(rank, ranks=2)
    assert out0 is None and not last0 and last1
    np.testing.assert_allclose(out1, expected, rtol=1e-6, atol=1e-6)
    assert c0 == c1 == float((expected.argmax(1) == y.numpy()).sum())
    assert "SEND_F" in prog


def test_an_error_on_one_rank_stops_every_rank():
    def rank(ctx):
        if ctx.rank == 1:
            raise ValueError("no data on this rank")
        ctx.comm.barrier()  # would wait forever without the abort
    with pytest.raises(mp.Error, match=r"rank 1: ValueError: no data on this rank"):
        par.launch(rank, ranks=2, timeout_s=60)


def test_pipe_errors_carry_the_cpp_message():
    x, y = make_batch()
    model = make_mlp(6)

    def bad_split(ctx):
        pipe = par.Pipe(model, ctx.comm, stages=2, microbatches=3)
        pipe.train_step(x, y)  # 16 rows do not split into 3 micro-batches
    with pytest.raises(mp.Error, match=r"^rank \d: Pipe::train_step: a batch of 16 rows does not split into 3 "
                                       r"micro-batches of equal size \(16 % 3 = 1\)"):
        par.launch(bad_split, ranks=2)

    def wrong_size(ctx):
        par.Pipe(model, ctx.comm, stages=3)
    with pytest.raises(mp.Error, match=r"^rank \d: Pipe: --stages 3 needs a communicator of 3 ranks, got 2$"):
        par.launch(wrong_size, ranks=2)

    with pytest.raises(mp.Error, match="loss must be"):
        par.launch(lambda ctx: par.Pipe(model, ctx.comm, loss="hinge"), ranks=1)


def test_a_communicator_outlives_its_ranks_only_as_an_error():
    comms = par.launch(lambda ctx: ctx.comm, ranks=2)
    with pytest.raises(mp.Error, match="ranks have ended"):
        comms[0].barrier()


def test_all_reduce_sums_rank_values():
    def rank(ctx):
        t = mp.full((3,), float(ctx.rank + 1), dtype="float64")
        ctx.comm.all_reduce(t)
        return t.numpy().tolist()
    assert par.launch(rank, ranks=3) == [[6.0, 6.0, 6.0]] * 3


def test_pipedream_steps_the_optimizer_inside_the_pipeline():
    """PipeDream updates after every micro-batch: on one stage (no staleness) that is plain SGD on each
    micro-batch in turn; on two stages the first stage reads weights one update old, holding 2 versions."""
    x, y = make_batch("float64")

    def run(ranks):
        model = make_mlp(0, "float64")

        def rank(ctx):
            pipe = par.Pipe(model, ctx.comm, stages=ranks, microbatches=4, schedule="pipedream")
            opt = mp.optim.SGD(pipe.parameters(), lr=0.1)
            pipe.set_optimizer(opt)
            pipe.train_step(x, y)
            return pipe.updates, pipe.peak_weight_versions
        stats = par.launch(rank, ranks=ranks)
        return weights(model), stats

    plain = make_mlp(0, "float64")
    opt = mp.optim.SGD(plain.parameters(), lr=0.1)
    for m in range(4):
        opt.zero_grad()
        rows = slice(m * ROWS // 4, (m + 1) * ROWS // 4)
        xm = mp.tensor(x.numpy()[rows])
        ym = mp.tensor(y.numpy()[rows])
        mp.cross_entropy(plain(xm), ym).backward()
        opt.step()
    one, stats1 = run(1)
    for k, v in weights(plain).items():
        np.testing.assert_allclose(one[k], v, rtol=1e-12, atol=1e-14)
    assert stats1 == [(4, 1)]
    two, stats2 = run(2)
    assert stats2 == [(4, 2), (4, 1)]
    assert max(np.abs(two[k] - one[k]).max() for k in one) > 1e-6  # staleness changes the result


def test_asynchronous_schedules_need_the_optimizer():
    x, y = make_batch()

    def rank(ctx):
        pipe = par.Pipe(make_mlp(0), ctx.comm, stages=1, microbatches=2, schedule="2bw")
        pipe.train_step(x, y)
    with pytest.raises(mp.Error, match="give it to set_optimizer"):
        par.launch(rank, ranks=1)
