// Tests of traces (parallel/trace.h), the SVG Gantt chart (parallel/gantt_svg.h) and checkpointing
// as simulator costs (parallel/cost_model.h): the measured bubble on a synthetic trace with a known
// answer, costs recovered from a trace made of a simulation, the Chrome JSON of a real 2-rank step
// (its events, flows and counters), clock offsets, one SVG row per rank, the files written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "parallel/comm_local.h"
#include "parallel/cost_model.h"
#include "parallel/gantt_svg.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/trace.h"
#include "tests/pipeline_models.h"
#include "tests/temp_dir_test.h"

namespace mp = minipipe::parallel;
using namespace minipipe;

namespace {

mp::ActionRecord rec(const std::string& action, double start, double end, int64_t stash = 0) {
  mp::ActionRecord r;
  r.action = mp::parse_action(action);
  r.start = start;
  r.end = end;
  r.stash_bytes = stash;
  return r;
}

// A trace whose records are a simulated timeline: what a perfectly predictable run would record.
mp::Trace trace_of(const mp::Program& p, const mp::Simulation& sim, const mp::Costs& c) {
  mp::Trace t;
  t.program = p;
  for (const auto& line : sim.timeline) {
    std::vector<mp::ActionRecord> list;
    int64_t stash = 0;
    for (const mp::TimedAction& a : line) {
      const int64_t bytes = static_cast<int64_t>(c.activation_bytes[static_cast<size_t>(a.action.chunk)]);
      if (a.action.op == mp::Op::F) stash += bytes;
      if (a.action.op == mp::Op::B) stash -= bytes;
      mp::ActionRecord r{a.action, a.start, a.end};
      r.stash_bytes = stash;
      if (a.action.op == mp::Op::SEND_F) r.bytes = static_cast<int64_t>(c.message_bytes[static_cast<size_t>(a.action.chunk)]);
      list.push_back(r);
    }
    t.ranks.push_back(list);
  }
  return t;
}

}  // namespace

TEST(MeasuredBubble, SyntheticTraceWithAKnownAnswer) {
  // Rank 0: F0 [0,1], F1 [1,2], a send [2,2.5], idle, B0 [4,6], B1 [7,9]: busy 6 of a 10-long step.
  // Rank 1: starts late, F0 [1.5,2.5], B0 [2.5,4.5], F1 [5,6], B1 [6,10]: busy 8.
  mp::Trace t;
  t.program = mp::one_f_one_b(2, 2);
  t.ranks = {{rec("0F0", 0, 1, 100), rec("0F1", 1, 2, 250), rec("0SEND_F1", 2, 2.5, 250), rec("0B0", 4, 6, 150),
              rec("0B1", 7, 9, 0)},
             {rec("1F0", 1.5, 2.5, 40), rec("1B0", 2.5, 4.5, 0), rec("1F1", 5, 6, 40), rec("1B1", 6, 10, 0)}};
  const mp::Simulation m = mp::measured(t);
  EXPECT_DOUBLE_EQ(m.makespan, 10.0);
  ASSERT_EQ(m.ranks.size(), 2u);
  EXPECT_DOUBLE_EQ(m.ranks[0].busy, 6.0);
  EXPECT_DOUBLE_EQ(m.ranks[0].comm, 0.5);
  EXPECT_DOUBLE_EQ(m.ranks[0].idle, 4.0);
  EXPECT_DOUBLE_EQ(m.ranks[0].bubble_of_total, 0.4);
  EXPECT_DOUBLE_EQ(m.ranks[0].bubble_over_ideal, 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(m.ranks[1].bubble_of_total, 0.2);
  EXPECT_DOUBLE_EQ(m.ranks[1].bubble_over_ideal, 0.25);
  EXPECT_EQ(m.ranks[0].peak_inflight, 2);
  EXPECT_EQ(m.ranks[1].peak_inflight, 1);
  EXPECT_DOUBLE_EQ(m.ranks[0].peak_inflight_bytes, 250.0);
  EXPECT_DOUBLE_EQ(m.ranks[1].peak_inflight_bytes, 40.0);
  // Per chunk means: F on chunk 0 = 1, B on chunk 0 = 2, F on chunk 1 = 1, B on chunk 1 = (2 + 4) / 2.
  const mp::Costs c = mp::measured_costs(t);
  EXPECT_DOUBLE_EQ(c.forward[0], 1.0);
  EXPECT_DOUBLE_EQ(c.backward[0], 2.0);
  EXPECT_DOUBLE_EQ(c.forward[1], 1.0);
  EXPECT_DOUBLE_EQ(c.backward[1], 3.0);
  EXPECT_DOUBLE_EQ(c.activation_bytes[0], 125.0);  // F0 stashed 100, F1 150
}

TEST(MeasuredBubble, ATraceOfASimulationGivesBackItsCostsAndItsStepTime) {
  for (const char* s : {"gpipe", "1f1b", "interleaved"})
    for (bool async : {false, true}) {
      const int v = std::string(s) == "interleaved" ? 2 : 1, C = 3 * v;
      mp::Costs c = mp::Costs::uniform(C, 1.0, 2.0);
      for (int i = 0; i < C; ++i) c.forward[static_cast<size_t>(i)] += 0.25 * i, c.backward[static_cast<size_t>(i)] += 0.5 * i;
      c.activation_bytes.assign(static_cast<size_t>(C), 64.0);
      c.message_bytes.assign(static_cast<size_t>(C), 16.0);
      c.latency = 0.125;
      const mp::Program p = async ? mp::lower_async(mp::make_schedule(s, 3, 6, v)) : mp::lower(mp::make_schedule(s, 3, 6, v), c);
      const mp::Simulation sim = mp::simulate(p, c);
      const mp::Trace t = trace_of(p, sim, c);
      const mp::Costs got = mp::measured_costs(t);
      for (int i = 0; i < C; ++i) {
        EXPECT_NEAR(got.forward[static_cast<size_t>(i)], c.forward[static_cast<size_t>(i)], 1e-12) << s;
        EXPECT_NEAR(got.backward[static_cast<size_t>(i)], c.backward[static_cast<size_t>(i)], 1e-12) << s;
        EXPECT_DOUBLE_EQ(got.activation_bytes[static_cast<size_t>(i)], 64.0) << s;
      }
      EXPECT_NEAR(got.latency, 0.125, 1e-12) << s;
      const mp::Simulation m = mp::measured(t), pred = mp::predicted(t);
      EXPECT_NEAR(m.makespan, sim.makespan, 1e-12) << s;
      EXPECT_NEAR(pred.makespan, sim.makespan, 1e-9) << s;
      for (size_t r = 0; r < m.ranks.size(); ++r)
        EXPECT_NEAR(m.ranks[r].bubble_of_total, sim.ranks[r].bubble_of_total, 1e-12) << s << " rank " << r;
    }
}

TEST(MeasuredBubble, ClosedForm) {
  EXPECT_DOUBLE_EQ(mp::closed_form_bubble(mp::one_f_one_b(4, 8)), 3.0 / 11.0);
  EXPECT_DOUBLE_EQ(mp::closed_form_bubble(mp::gpipe(2, 4)), 1.0 / 5.0);
  EXPECT_DOUBLE_EQ(mp::closed_form_bubble(mp::interleaved_1f1b(4, 8, 2)), 3.0 / 19.0);
  EXPECT_EQ(mp::closed_form_bubble(mp::interleaved_1f1b(4, 6, 2)), -1.0);  // P does not divide M
  EXPECT_EQ(mp::closed_form_bubble(mp::forward_only(2, 4)), -1.0);
}

TEST(CheckpointCosts, RecomputeInBackwardAndStashOnlyTheInput) {
  mp::Costs c = mp::Costs::uniform(3, 1.0, 2.0);
  c.activation_bytes = {100, 100, 100};
  c.message_bytes = {10, 20, 0};
  const mp::Costs always = mp::with_checkpointing(c, mp::Checkpoint::Always, 3);
  EXPECT_EQ(always.backward, (std::vector<double>{3, 3, 3}));
  EXPECT_EQ(always.activation_bytes, (std::vector<double>{0, 10, 20}));
  EXPECT_EQ(always.message_bytes, c.message_bytes);
  const mp::Costs except = mp::with_checkpointing(c, mp::Checkpoint::ExceptLast, 3);
  EXPECT_EQ(except.backward, (std::vector<double>{3, 3, 2}));
  EXPECT_EQ(except.activation_bytes, (std::vector<double>{0, 10, 100}));
  const mp::Costs never = mp::with_checkpointing(c, mp::Checkpoint::Never, 3);
  EXPECT_EQ(never.backward, c.backward);
  EXPECT_EQ(never.activation_bytes, c.activation_bytes);
}

// A real 2-rank step on the local communicator, traced; rank 0's trace.
mp::Trace real_trace(const std::string& schedule, int M, int v) {
  using namespace minipipe::test_util;
  auto model = build_model(ModelKind::Mlp, DType::Float32, 0.0, 1);
  const Batch b = make_batch(ModelKind::Mlp, DType::Float32, 8, 2);
  mp::Trace out;
  mp::launch({.ranks = 2, .threads_per_rank = 1}, [&](mp::RankContext& ctx) {
    mp::Pipe pipe(model, ctx.comm,
                  {.stages = 2, .microbatches = M, .schedule = schedule, .virtual_chunks = v, .loss = loss_of(ModelKind::Mlp)});
    mp::Tracer tracer(ctx.comm);
    EXPECT_EQ(tracer.clock_offsets(), (std::vector<double>{0.0, 0.0}));  // threads share one clock
    pipe.train_step(b.x, b.y);
    pipe.zero_grad();
    pipe.train_step(b.x, b.y);
    mp::Trace t = tracer.gather(pipe.executor(), "test");
    if (ctx.comm.rank() == 0) out = t;
    else EXPECT_TRUE(t.ranks.empty());
  });
  return out;
}

TEST(TraceLocal, EveryRankRecordsItsProgramOnOneTimeBase) {
  const mp::Trace t = real_trace("1f1b", 4, 1);
  ASSERT_EQ(t.ranks.size(), 2u);
  double first = 1e9;
  for (int r = 0; r < 2; ++r) {
    const auto& prog = t.program.on(r);
    ASSERT_EQ(t.ranks[static_cast<size_t>(r)].size(), prog.size());
    for (size_t i = 0; i < prog.size(); ++i) {
      const mp::ActionRecord& a = t.ranks[static_cast<size_t>(r)][i];
      EXPECT_EQ(a.action, prog[i]);
      EXPECT_LE(a.start, a.end);
      if (i > 0) { EXPECT_GE(a.start, t.ranks[static_cast<size_t>(r)][i - 1].end); }
      first = std::min(first, a.start);
    }
  }
  EXPECT_GE(first, 0.0);
  EXPECT_LT(first, 0.05);  // the earliest rank's step began at 0
  // Causality across ranks: a receive cannot end before its send began.
  for (const auto& list : t.ranks)
    for (const mp::ActionRecord& a : list) {
      if (a.action.op != mp::Op::RECV_F && a.action.op != mp::Op::RECV_B) continue;
      const mp::Action send = mp::matching_comm(a.action);
      for (const mp::ActionRecord& s : t.ranks[static_cast<size_t>(t.program.rank_of(send.chunk))])
        if (s.action == send) { EXPECT_GE(a.end, s.start) << mp::to_string(a.action); }
    }
  const mp::Simulation m = mp::measured(t);
  for (const mp::RankStats& s : m.ranks) {
    EXPECT_GT(s.busy, 0.0);
    EXPECT_GT(s.bubble_of_total, 0.0);
    EXPECT_LT(s.bubble_of_total, 1.0);
  }
}

TEST(TraceLocal, ChromeJsonHasEveryActionFlowsAndCounters) {
  const mp::Trace t = real_trace("interleaved", 2, 2);
  const nlohmann::json doc = nlohmann::json::parse(mp::chrome_trace_json(t));
  size_t actions = 0, sends = 0;
  for (const auto& list : t.ranks)
    for (const mp::ActionRecord& a : list) {
      ++actions;
      sends += a.action.op == mp::Op::SEND_F || a.action.op == mp::Op::SEND_B;
    }
  ASSERT_GT(sends, 0u);
  std::map<std::string, size_t> count;
  std::map<int64_t, std::pair<double, double>> flows;  // id -> (send ts, recv ts)
  std::set<int> pids, named;
  for (const auto& e : doc.at("traceEvents")) {
    const std::string ph = e.at("ph");
    ++count[ph];
    if (ph == "X") {
      pids.insert(e.at("pid").get<int>());
      EXPECT_GE(e.at("dur").get<double>(), 0.0);
      EXPECT_NO_THROW(mp::parse_action(e.at("name").get<std::string>()));
    }
    if (ph == "M" && e.at("name") == "process_name") named.insert(e.at("pid").get<int>());
    if (ph == "s") flows[e.at("id").get<int64_t>()].first = e.at("ts").get<double>();
    if (ph == "f") {
      flows[e.at("id").get<int64_t>()].second = e.at("ts").get<double>();
      EXPECT_EQ(e.at("bp"), "e");
    }
    if (ph == "C") { EXPECT_TRUE(e.at("args").contains("bytes")); }
  }
  EXPECT_EQ(count["X"], actions);
  EXPECT_EQ(count["C"], actions);
  EXPECT_EQ(count["s"], sends);
  EXPECT_EQ(count["f"], sends);
  EXPECT_EQ(flows.size(), sends);  // one id per message, each with both ends
  for (const auto& [id, ts] : flows) EXPECT_GE(ts.second, ts.first) << id;
  EXPECT_EQ(pids, (std::set<int>{0, 1}));
  EXPECT_EQ(named, (std::set<int>{0, 1}));
}

TEST(ClockOffsets, PingPongOnOneClockFindsAboutZero) {
  mp::launch({.ranks = 3, .threads_per_rank = 1}, [&](mp::RankContext& ctx) {
    const std::vector<double> off = mp::measure_clock_offsets(ctx.comm, 8);
    ASSERT_EQ(off.size(), 3u);
    EXPECT_EQ(off[0], 0.0);
    for (double o : off) EXPECT_LT(std::abs(o), 2e-3);  // the same clock: within half a round trip
  });
}

TEST(GanttSvg, OneRowPerRankEveryComputeActionAndTheBubble) {
  mp::Costs c = mp::Costs::uniform(3, 1.0, 2.0);
  const mp::Program p = mp::lower(mp::one_f_one_b(3, 4), c);
  const mp::Simulation sim = mp::simulate(p, c);
  const std::string svg = mp::gantt_svg(p, sim, {.title = "1f1b <P=3>", .subtitle = "test"});
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("1f1b &lt;P=3&gt;"), std::string::npos);  // escaped
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = svg.find(what); at != std::string::npos; at = svg.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<g class=\"rank\""), 3u);
  EXPECT_EQ(count("<rect class=\"F\""), 12u);
  EXPECT_EQ(count("<rect class=\"B\""), 12u);
  EXPECT_EQ(count("<rect class=\"idle\""), 3u);
  EXPECT_EQ(count("fill=\"url(#idle)\"/>"), 4u);  // shaded: the three rows and the legend
  // Each row ends with its bubble: 1F1B with P=3, M=4: (P-1)/(M+P-1) = 33.3%.
  EXPECT_EQ(count(">bubble 33.3%<"), 3u);
}

class TraceFiles : public minipipe::test_util::TempDirTest {
 protected:
  TraceFiles() : TempDirTest("minipipe_trace_") {}
};

TEST_F(TraceFiles, WritesJsonBothChartsAndTheTable) {
  const mp::Trace t = real_trace("gpipe", 2, 1);
  mp::write_trace_files(t, path("out"));
  for (const char* f : {"trace.json", "measured.svg", "predicted.svg", "bubble.txt"})
    EXPECT_TRUE(std::filesystem::exists(path("out/") + f)) << f;
  std::ifstream in(path("out/bubble.txt"));
  const std::string table((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(std::regex_search(table, std::regex(R"(\n0 +[0-9.]+ +[0-9.]+ +0\.\d{4} +0\.\d{4} +0\.3333\n)"))) << table;
}
