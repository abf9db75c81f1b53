// bench_schedules: the schedule benchmark. Sweeps schedule x P x M (x v) x checkpoint mode on a
// model of identical blocks (Linear+ReLU blocks, or --model gpt: transformer blocks) and prints one
// table — step time, samples/s, speed-up over one rank, the bubble measured from a trace next to
// the closed form and the simulator fed with the step's own costs, peak stashed activations on
// the first and last rank, and the GEMM efficiency at the micro-batch size — also as CSV and SVGs.
// --dp adds data-parallel replicas of each pipeline, with the gradient all-reduce's time and the
// share of it hidden behind backward. Measured mode runs the ranks for real (threads, or processes
// under mpirun with --comm mpi);
// --replay times each chunk's F and B once, alone, and lays the step out on P virtual devices with
// the simulator. Run: build/bench_schedules [--tiny] [--replay]; docs/performance.md.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "autograd/functions.h"
#include "autograd/node.h"
#include "benchmarks/schedule_sweep.h"
#include "nn/nn.h"
#include "nn/transformer.h"
#include "parallel/cost_model.h"
#include "parallel/gantt_svg.h"
#include "parallel/generators.h"
#include "parallel/launch.h"
#include "parallel/lowering.h"
#include "parallel/pipe.h"
#include "parallel/trace.h"
#include "tensor/threads.h"

using namespace minipipe;
namespace mp = minipipe::parallel;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Mean over ranks of the bubble of total time.
double mean_bubble(const mp::Simulation& s) {
  double b = 0;
  for (const mp::RankStats& r : s.ranks) b += r.bubble_of_total;
  return s.ranks.empty() ? 0.0 : b / static_cast<double>(s.ranks.size());
}

// The mean bubble of `prog` with these F and B costs and messages that take no time.
double compute_only_bubble(const mp::Program& prog, mp::Costs costs) {
  costs.latency = 0;
  costs.bandwidth = std::numeric_limits<double>::infinity();
  return mean_bubble(mp::simulate(prog, costs));
}

// ---- measured: the ranks run the step for real ----

void fill_from_trace(const bench::SweepOptions& o, const bench::Row& cfg, const mp::Trace& t, bench::Result& out);

// One configuration on `comm` (P·dp ranks: dp replicas of a P-stage pipeline, each on B/dp rows);
// rank 0 of comm fills `out`. Timed steps use overlap; with dp > 1 the same steps run again with
// the all-reduce after backward, to measure its whole time.
void run_measured(const bench::SweepOptions& o, const bench::Row& cfg, mp::Communicator& comm, bench::Result& out) {
  auto model = bench::make_model(o);
  mp::Grid grid = mp::make_grid(comm, cfg.P, cfg.dp);
  mp::PipeOptions po;
  po.stages = cfg.P;
  po.microbatches = cfg.M;
  po.schedule = cfg.schedule;
  po.virtual_chunks = cfg.v;
  po.checkpoint = mp::parse_checkpoint(cfg.checkpoint);
  po.loss = bench::loss();
  po.async_sends = !o.blocking_sends;
  mp::Pipe pipe(model, *grid.pipeline, po);
  optim::SGD sgd(pipe.parameters(), {.lr = 1e-4});  // pipedream / 2bw step it inside the pipeline
  if (pipe.asynchronous()) pipe.set_optimizer(sgd);
  const bench::Batch batch = bench::make_batch(o);
  const int64_t shard = o.batch / cfg.dp, first = grid.replica * shard;
  const Tensor x = ops::narrow(batch.x, 0, first, shard), y = ops::narrow(batch.y, 0, first, shard);
  mp::Tracer tracer(*grid.pipeline);
  std::vector<double> times, waits[2];
  for (bool overlap : {true, false}) {
    if (!overlap && cfg.dp == 1) break;
    mp::DataParallel dp(pipe.parameters(), *grid.data,
                        {.bucket_mb = o.bucket_mb, .overlap = overlap, .backwards_per_step = cfg.M});
    for (int s = 0; s < o.warmup + o.steps; ++s) {
      comm.barrier();
      const auto t0 = Clock::now();
      pipe.zero_grad();
      pipe.train_step(x, y, first);
      dp.finish_gradients();
      comm.barrier();
      if (s < o.warmup) continue;
      if (overlap) times.push_back(seconds(t0, Clock::now()));
      waits[overlap ? 0 : 1].push_back(dp.exposed_seconds());
    }
    if (overlap) {
      // The trace of replica 0's pipeline (the last overlapped step), gathered on its rank 0.
      const mp::Trace t = grid.replica == 0 ? tracer.gather(pipe.executor(), bench::label(cfg, "measured")) : mp::Trace{};
      if (comm.rank() == 0) fill_from_trace(o, cfg, t, out);
    }
  }
  if (pipe.asynchronous()) {  // the first and the last rank's weight-version bytes, to rank 0
    Tensor bytes = zeros({cfg.P}, DType::Float64);
    bytes.data_ptr<double>()[grid.pipeline->rank()] = static_cast<double>(pipe.peak_weight_version_bytes());
    grid.pipeline->all_reduce(bytes);
    out.versions_first = bytes.data_ptr<double>()[0];
    out.versions_last = bytes.data_ptr<double>()[cfg.P - 1];
  }
  if (comm.rank() != 0) return;
  out.step_s = median(times);
  if (cfg.dp > 1) {
    out.allreduce_s = median(waits[1]);
    out.hidden = out.allreduce_s > 0 ? std::max(0.0, 1 - median(waits[0]) / out.allreduce_s) : 0;
  }
}

// What rank 0 takes from a traced step: bubbles (measured, and the simulator fed with the step's own
// costs), peak stashed bytes on the first and last rank, the mean action, and the SVG charts.
void fill_from_trace(const bench::SweepOptions& o, const bench::Row& cfg, const mp::Trace& t, bench::Result& out) {
  const mp::Simulation m = mp::measured(t), p = mp::predicted(t);
  out.bubble_measured = mean_bubble(m);
  out.bubble_simulated = mean_bubble(p);
  out.bubble_stages = compute_only_bubble(t.program, mp::measured_costs(t));
  out.peak_first = m.ranks.front().peak_inflight_bytes;
  out.peak_last = m.ranks.back().peak_inflight_bytes;
  out.busy_first = m.ranks.front().busy;
  out.busy_last = m.ranks.back().busy;
  out.mean_action_s = 0;
  size_t n = 0;
  for (const auto& list : t.ranks)
    for (const mp::ActionRecord& r : list) out.mean_action_s += r.end - r.start, ++n;
  out.mean_action_s /= std::max<size_t>(n, 1);
  if (!o.svg_dir.empty()) {
    mp::SvgOptions so;
    so.time_scale = 1e3;
    so.time_unit = "ms";
    so.makespan = std::max(m.makespan, p.makespan);
    so.title = t.label + ": bubble " + bench::pct(out.bubble_measured) + "% (mean over ranks)";
    so.subtitle = "bench_schedules, measured: one step traced on every rank";
    mp::write_text_file(o.svg_dir + "/" + bench::file_stem(cfg) + "_measured.svg", mp::gantt_svg(t.program, m, so), "svg");
    so.title = bench::label(cfg, "predicted") + ": bubble " + bench::pct(out.bubble_simulated) + "% (mean over ranks)";
    so.subtitle = "simulator fed with the traced step's per-chunk F/B times and message latency";
    mp::write_text_file(o.svg_dir + "/" + bench::file_stem(cfg) + "_predicted.svg", mp::gantt_svg(t.program, p, so), "svg");
  }
}

// ---- replay: each chunk's F and B timed once, alone; the step laid out by the simulator ----

bench::Result run_replay(const bench::SweepOptions& o, const bench::Row& cfg) {
  auto model = bench::make_model(o);
  const int C = cfg.P * cfg.v;
  const mp::Partition part = mp::uniform(static_cast<int>(model->size()), C);
  const mp::Checkpoint mode = mp::parse_checkpoint(cfg.checkpoint);
  const bench::Batch batch = bench::make_batch(o);
  const int64_t rows = o.batch / cfg.M;
  Tensor x0 = ops::narrow(batch.x, 0, 0, rows), y0 = ops::narrow(batch.y, 0, 0, rows);
  mp::Costs costs = mp::Costs::uniform(C, 0.0, 0.0);
  costs.activation_bytes.assign(static_cast<size_t>(C), 0.0);
  costs.message_bytes.assign(static_cast<size_t>(C), 0.0);
  std::vector<double> copy_times;
  const auto& account = current_memory_account();
  for (int c = 0; c < C; ++c) {
    auto chunk = model->slice(static_cast<size_t>(part.begin(c)), static_cast<size_t>(part.end(c)));
    const bool last = c == C - 1;
    std::vector<double> f, b;
    double stash = 0;
    for (int rep = 0; rep < 1 + o.steps; ++rep) {
      Tensor x = ops::clone(x0);  // every chunk's input has the model's width: [rows, d] or [rows, T, d]
      if (c > 0) x.set_requires_grad(true);
      const int64_t live0 = account->live();
      auto t0 = Clock::now();
      Tensor root;
      const bool checkpointed = mode == mp::Checkpoint::Always || (mode == mp::Checkpoint::ExceptLast && !last);
      {
        std::optional<NoGradGuard> no_grad;  // checkpointed chunks keep no graph in F
        if (checkpointed) no_grad.emplace();
        Tensor y = chunk->forward(x);
        root = last ? bench::loss()(y, y0) : y;
      }
      auto t1 = Clock::now();
      if (!last) costs.message_bytes[static_cast<size_t>(c)] = static_cast<double>(root.nbytes());
      if (checkpointed) root = Tensor();  // only the input is kept
      else if (!last) root = autograd::without_data(root);  // sent: its data goes, its graph stays
      stash = static_cast<double>(account->live() - live0) + (c > 0 ? static_cast<double>(x.nbytes()) : 0.0);
      auto t2 = Clock::now();
      if (checkpointed) {
        Tensor y = chunk->forward(x);
        root = last ? bench::loss()(y, y0) : y;
      }
      if (last) root.backward(scalar_tensor(1.0 / cfg.M, root.dtype()));
      else root.backward(randn(root.sizes(), root.dtype()));
      auto t3 = Clock::now();
      if (rep > 0) f.push_back(seconds(t0, t1)), b.push_back(seconds(t2, t3));
      root = Tensor();
      chunk->zero_grad();
      // A local message is one copy of the boundary tensor on the receiving rank.
      const auto t4 = Clock::now();
      Tensor copy = ops::clone(x0);
      copy_times.push_back(seconds(t4, Clock::now()));
    }
    costs.forward[static_cast<size_t>(c)] = median(f);
    costs.backward[static_cast<size_t>(c)] = median(b);
    costs.activation_bytes[static_cast<size_t>(c)] = std::max(0.0, stash);
  }
  costs.latency = median(copy_times);
  const mp::Program compute = mp::make_schedule(cfg.schedule, cfg.P, cfg.M, cfg.v);
  const mp::Program prog = o.blocking_sends ? mp::lower(compute, costs) : mp::lower_async(compute);
  const mp::Simulation sim = mp::simulate(prog, costs);
  bench::Result r;
  r.step_s = sim.makespan;
  r.bubble_simulated = mean_bubble(sim);
  r.bubble_stages = compute_only_bubble(prog, costs);
  r.bubble_measured = -1;
  r.peak_first = sim.ranks.front().peak_inflight_bytes;
  r.peak_last = sim.ranks.back().peak_inflight_bytes;
  if (!o.svg_dir.empty()) {
    mp::SvgOptions so;
    so.time_scale = 1e3;
    so.time_unit = "ms";
    so.title = bench::label(cfg, "replay") + ": bubble " + bench::pct(r.bubble_simulated) + "% (mean over ranks)";
    so.subtitle = "replay: each chunk's F and B timed alone, laid out on " + std::to_string(cfg.P) +
                  " virtual devices by the simulator";
    mp::write_text_file(o.svg_dir + "/" + bench::file_stem(cfg) + "_replay.svg", mp::gantt_svg(prog, sim, so), "svg");
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  init_runtime(argv);
  CLI::App app{"Sweep pipeline schedules on a model of identical blocks: step time, bubble, memory"};
  bench::SweepOptions o;
  o.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    o.finish();
    set_num_threads(1);
    if (!o.svg_dir.empty()) std::filesystem::create_directories(o.svg_dir);
    std::vector<bench::Row> rows = bench::sweep(o);
    bench::Table table(o);
    if (o.replay) {
      table.header();
      for (bench::Row& row : rows) table.row(row, run_replay(o, row));
    } else {
      // One launch for the whole sweep: each configuration runs on the first P·dp ranks (a
      // sub-communicator), the others wait; under mpi that is the only way to vary P in one job.
      mp::LaunchOptions lo;
      lo.backend = mp::parse_backend(o.comm);
      lo.ranks = o.max_ranks();
      lo.threads_per_rank = 1;
      mp::launch(lo, [&](mp::RankContext& ctx) {
        MP_CHECK(ctx.comm.size() >= o.max_ranks(), "bench_schedules: the sweep needs ", o.max_ranks(),
                 " ranks, mpirun started ", ctx.comm.size());
        if (ctx.comm.rank() == 0) table.header();
        // One configuration on the first P·dp ranks; every rank takes part in the split and barrier.
        auto measure = [&](const bench::SweepOptions& opts, const bench::Row& row) {
          const int used = row.P * row.dp;
          auto sub = ctx.comm.split(ctx.comm.rank() < used ? 0 : 1, ctx.comm.rank());
          bench::Result res;
          if (ctx.comm.rank() < used) run_measured(opts, row, *sub, res);
          ctx.comm.barrier();
          return res;
        };
        // --rounds: the whole sweep again and again, so the rows interleave in time; each row is
        // printed in the last round, as its median round.
        std::vector<std::vector<bench::Result>> results(rows.size());
        for (int round = 0; round < o.rounds; ++round)
          for (size_t i = 0; i < rows.size(); ++i) {
            results[i].push_back(measure(o, rows[i]));
            if (ctx.comm.rank() == 0 && round == o.rounds - 1) table.row(rows[i], bench::median_round(results[i]));
          }
        // The baseline once more (its charts stay the sweep's): how far the machine drifted meanwhile.
        auto baseline = std::find_if(rows.begin(), rows.end(), [](const bench::Row& r) { return r.baseline; });
        if (baseline != rows.end()) {
          bench::SweepOptions again = o;
          again.svg_dir.clear();
          const bench::Result res = measure(again, *baseline);
          if (ctx.comm.rank() == 0) table.baseline_again(res.step_s);
        }
        if (ctx.comm.rank() == 0) table.footer();
      });
    }
    if (o.replay) table.footer();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_schedules: error: %s\n", e.what());
    return 1;
  }
}
