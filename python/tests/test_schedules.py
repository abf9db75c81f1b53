# Tests of minipipe.parallel's schedule bindings (python/bind_schedules.cpp): simulated bubbles equal
# the closed forms, the validator rejects broken programs with the C++ report, lowering keeps the
# timeline, the SVG chart is written atomically, and the partitioner's cut is optimal.
# Run by ctest (python.test_schedules) with PYTHONPATH at the module: build/python.
import itertools
import os

import pytest

import minipipe as mp

par = mp.parallel
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "programs")


@pytest.mark.parametrize("generator", [par.gpipe, par.one_f_one_b])
@pytest.mark.parametrize("P,M", [(2, 1), (2, 4), (3, 5), (4, 8), (4, 16), (8, 4)])
def test_bubble_is_the_closed_form(generator, P, M):
    sim = par.simulate(generator(P, M))  # F = B = 1
    assert len(sim.ranks) == P
    assert sim.makespan == 2 * (M + P - 1)
    for r in range(P):
        assert sim.bubble(r) == pytest.approx((P - 1) / (M + P - 1), abs=1e-12)
        assert sim.ranks[r]["bubble_over_ideal"] == pytest.approx((P - 1) / M, abs=1e-12)


@pytest.mark.parametrize("P,M", [(2, 4), (4, 8), (4, 2)])
def test_1f1b_holds_fewer_microbatches_than_gpipe(P, M):
    g = [r["peak_inflight"] for r in par.simulate(par.gpipe(P, M)).ranks]
    f = [r["peak_inflight"] for r in par.simulate(par.one_f_one_b(P, M)).ranks]
    assert g == [M] * P
    assert f == [min(P - r, M) for r in range(P)]


def test_interleaving_divides_the_bubble_by_v():
    P, M, v = 4, 8, 2
    sim = par.simulate(par.interleaved_1f1b(P, M, v))
    for stats in sim.ranks:
        assert stats["bubble_over_ideal"] == pytest.approx((P - 1) / M / v, abs=1e-12)


@pytest.mark.parametrize("P,M", [(3, 5), (4, 8)])
def test_zero_bubble_h1_idles_a_third_of_1f1b(P, M):
    costs = par.Costs.uniform(P, 1.0, 1.0, 1.0)  # T_F = T_B = T_W = 1
    zb = par.simulate(par.zb_h1(P, M), costs)
    f1 = par.simulate(par.one_f_one_b(P, M), costs)
    assert [r["idle"] for r in zb.ranks] == [P - 1] * P        # (P-1)(T_F + T_B - T_W)
    assert [r["idle"] for r in f1.ranks] == [3 * (P - 1)] * P  # (P-1)(T_F + T_B + T_W)


def test_timeline_is_lists_of_dicts():
    P, M = 2, 3
    program = par.one_f_one_b(P, M)
    sim = par.simulate(program)
    assert [len(rank) for rank in sim.timeline] == [2 * M] * P
    first = sim.timeline[0][0]
    assert first == {"action": "0F0", "chunk": 0, "op": "F", "microbatch": 0, "start": 0.0, "end": 1.0}
    for r, rank in enumerate(sim.timeline):
        assert [a["action"] for a in rank] == program.actions[r]
        assert all(a["end"] > a["start"] for a in rank)
        assert all(a["start"] >= b["end"] for a, b in zip(rank[1:], rank))  # in order, no overlap
    assert max(a["end"] for rank in sim.timeline for a in rank) == sim.makespan


def test_lowering_adds_messages_and_keeps_the_timeline():
    compute = par.one_f_one_b(4, 8)
    lowered = par.lower(compute)
    assert not compute.has_comm() and lowered.has_comm()
    assert lowered.count("SEND_F", 0) == 8 and lowered.count("RECV_B", 0) == 8
    assert par.check(lowered).ok
    assert par.simulate(lowered).makespan == par.simulate(compute).makespan


def test_async_lowering_keeps_the_asynchronous_timeline():
    compute = par.interleaved_1f1b(2, 4, 2)
    costs = par.Costs.uniform(4, 0.5, 1.0)
    blocking, async_ = par.lower(compute), par.lower_async(compute)
    assert async_.async_sends and not blocking.async_sends and par.check(async_).ok
    assert par.simulate(async_, costs).makespan == par.simulate(compute, costs).makespan == 13.5
    assert par.simulate(blocking, costs).makespan == 15.5  # blocking sends wait (lowered for F = B)


def test_program_text_round_trip():
    program = par.lower(par.zb_h1(3, 4))
    again = par.Program.parse(str(program))
    assert again.actions == program.actions
    assert (again.num_ranks, again.num_chunks, again.num_microbatches) == (3, 3, 4)


def test_validator_rejects_a_backward_before_its_forward():
    program = par.one_f_one_b(2, 2)
    actions = program.actions
    assert actions[1] == ["1F0", "1B0", "1F1", "1B1"]
    actions[1] = ["1B0", "1F0", "1F1", "1B1"]
    program.actions = actions
    report = par.check(program)
    assert not report.ok and not report
    assert [v.rule for v in report.violations] == ["F before B"]
    assert report.violations[0].rank == 1 and report.violations[0].index == 0
    assert "[1B0]!" in report.grid
    with pytest.raises(mp.Error) as err:
        par.validate(program)
    assert str(err.value) == str(report)  # the C++ report, word for word
    assert "1B0 runs before 1F0 on rank 1" in str(err.value)
    with pytest.raises(mp.Error, match="1B0 runs before 1F0"):
        par.simulate(program)


def test_validator_finds_the_deadlock_of_the_naive_lowering():
    program = par.Program.read(os.path.join(EXAMPLES, "naive_1f1b_deadlock.txt"))
    report = par.check(program)
    assert report.lowered and {v.rule for v in report.violations} == {"deadlock"}
    assert "[0SEND_F1]!" in report.grid and "stuck" in report.grid
    assert par.check(par.Program.read(os.path.join(EXAMPLES, "fixed_1f1b.txt"))).ok
    # The naive lists are right when sends do not block.
    async_ = par.Program.read(os.path.join(EXAMPLES, "naive_1f1b_async.txt"))
    assert async_.async_sends and par.check(async_).ok
    assert async_.actions == program.actions


def test_bad_schedules_raise_with_the_cpp_message():
    with pytest.raises(mp.Error, match="nope"):
        par.make_schedule("nope", 2, 4)
    with pytest.raises(mp.Error):
        par.gpipe(0, 4)
    with pytest.raises(mp.Error, match="'2Q1'"):
        par.Program.parse("ranks 2\nrank 0: 0F0 2Q1\n")
    with pytest.raises(mp.Error, match="one list per rank"):
        par.Program(2, 2, 2, actions=[["0F0"]])


def test_gantt_svg_is_written_atomically(tmp_path):
    program = par.one_f_one_b(4, 8)
    sim = par.simulate(program)
    svg = par.gantt_svg(program, sim, title="1F1B, P=4, M=8 (simulated)")
    assert svg.lstrip().startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "1F1B, P=4, M=8 (simulated)" in svg
    path = tmp_path / "chart.svg"
    par.write_text_file(str(path), svg)
    assert path.read_text() == svg
    assert os.listdir(tmp_path) == ["chart.svg"]  # no temporary left behind
    assert "rank 3" in par.gantt(program, sim)


def test_partition_by_cost_is_optimal():
    cost = [4.0, 1.0, 3.0, 2.0, 6.0, 1.0, 2.0]
    P = 3
    best = min(
        max(sum(cost[a:b]) for a, b in zip((0,) + cuts, cuts + (len(cost),)))
        for cuts in itertools.combinations(range(1, len(cost)), P - 1))
    part = par.by_cost(cost, P)
    assert part.num_stages() == P and part.bounds[0] == 0 and part.bounds[-1] == len(cost)
    rep = par.report(part, par.LayerCosts(cost))
    assert max(s["cost"] for s in rep.stages) == best
    assert rep.stages[rep.bottleneck]["cost"] == best
    assert rep.balance == pytest.approx(sum(cost) / P / best)
    assert par.uniform(7, 3).bounds == [0, 2, 4, 7]
    with pytest.raises(mp.Error):
        par.by_cost(cost, 8)  # more stages than layers
