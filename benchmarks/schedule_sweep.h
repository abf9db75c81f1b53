// bench_schedules' sweep: its flags, the model of identical blocks and its batch, the list of
// configurations, the GEMM efficiency at a micro-batch's rows, and the table (console and CSV).
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "examples/pipeline_flags.h"
#include "nn/nn.h"
#include "nn/transformer.h"
#include "parallel/data_parallel.h"
#include "parallel/generators.h"
#include "parallel/grid.h"
#include "parallel/pipe.h"
#include "parallel/gantt_svg.h"
#include "parallel/trace.h"

namespace minipipe::bench {

struct SweepOptions {
  std::string model = "mlp";  // mlp: Linear(d, d)+ReLU blocks; gpt: transformer blocks
  std::vector<std::string> schedules = {"gpipe", "1f1b", "interleaved"};
  std::vector<int> stages = {1, 2, 4};
  std::vector<int> microbatches = {1, 2, 4, 8};
  int virtual_chunks = 2;
  std::vector<std::string> checkpoints = {"never", "always"};
  std::vector<int> dps = {1};  // data-parallel replicas of the pipeline
  double bucket_mb = 25;
  std::string comm = "local";
  bool replay = false, tiny = false, blocking_sends = false;
  int steps = 5, warmup = 2;
  int rounds = 1;  // measured: the whole sweep this many times, each row's median round reported
  int64_t batch = 256, width = 1024, blocks = 8, context = 64;
  std::string csv, svg_dir;

  void add_to(CLI::App& app) {
    app.add_option("--model", model, "mlp (Linear+ReLU blocks) or gpt (transformer blocks)")->capture_default_str()
        ->check(CLI::IsMember({"mlp", "gpt"}));
    app.add_option("--schedules", schedules, "schedules to sweep")->delimiter(',');
    app.add_option("--stages", stages, "P values")->delimiter(',');
    app.add_option("--microbatches", microbatches, "M values")->delimiter(',');
    app.add_option("--virtual", virtual_chunks, "v for the interleaved schedule")->capture_default_str();
    app.add_option("--checkpoint", checkpoints, "checkpoint modes")->delimiter(',');
    app.add_option("--dp", dps, "data-parallel replicas R of each pipeline (P x R ranks; measured only)")
        ->delimiter(',');
    app.add_option("--bucket-mb", bucket_mb, "data parallel: gradient bucket size in MiB")->capture_default_str();
    app.add_option("--comm", comm, "local (ranks are threads) or mpi (under mpirun -np max P)")->capture_default_str();
    app.add_flag("--blocking-sends", blocking_sends,
                 "sends that wait until their receive is posted (lower); default: sends that do not block (lower_async)");
    app.add_flag("--replay", replay, "time each chunk's F and B alone, lay the step out on P virtual devices");
    app.add_flag("--tiny", tiny, "a sweep of seconds (what CI runs): width 64, 4 blocks, batch 16, P 1,2, M 1,2,4");
    app.add_option("--steps", steps, "timed steps per configuration (median)")->capture_default_str();
    app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
    app.add_option("--rounds", rounds,
                   "measured: run the whole sweep this many times and report each row's median round (the rows "
                   "interleave in time, so a slow minute on a shared machine hits all of them)")
        ->capture_default_str();
    app.add_option("--batch", batch, "rows per step (B; gpt: sequences)")->capture_default_str();
    app.add_option("--width", width, "d: block width (gpt: d_model)")->capture_default_str();
    app.add_option("--blocks", blocks, "identical blocks in the model")->capture_default_str();
    app.add_option("--context", context, "gpt: tokens per sequence")->capture_default_str();
    app.add_option("--csv", csv, "also write the table here");
    app.add_option("--svg-dir", svg_dir, "write each configuration's Gantt chart(s) here (with --rounds: the last round's)");
  }
  void finish() {
    if (tiny) {
      width = 64, blocks = 4, batch = 16, context = 8, steps = 2, warmup = 1;
      stages = {1, 2};
      microbatches = {1, 2, 4};
    }
    MP_CHECK(!stages.empty() && !microbatches.empty() && !schedules.empty() && !checkpoints.empty(),
             "bench_schedules: empty sweep");
    for (int P : stages) MP_CHECK(P >= 1, "--stages must be >= 1, got ", P);
    for (int R : dps) MP_CHECK(R >= 1, "--dp must be >= 1, got ", R);
    MP_CHECK(!replay || max_dp() == 1, "bench_schedules: --replay lays out one pipeline; --dp needs a measured run");
    for (const std::string& s : schedules)
      MP_CHECK(!replay || parallel::async_mode_of(s) == parallel::AsyncMode::None, "bench_schedules: --replay and ",
               s, " do not combine: the asynchronous schedules' in-pipeline optimizer steps and weight copies are "
               "part of their step, so they need a measured run");
    for (int M : microbatches)
      for (int R : dps)
        MP_CHECK(M >= 1 && batch % (static_cast<int64_t>(M) * R) == 0, "--batch ", batch, " must split into --dp ", R,
                 " x M = ", M);
    for (const std::string& c : checkpoints) parallel::parse_checkpoint(c);
    MP_CHECK(width >= 1 && blocks >= 1 && steps >= 1 && warmup >= 0, "bench_schedules: bad sizes");
    MP_CHECK(rounds >= 1, "--rounds must be >= 1, got ", rounds);
    MP_CHECK(!replay || rounds == 1, "bench_schedules: --rounds repeats measured runs; --replay times each chunk once");
  }
  int max_stages() const { return *std::max_element(stages.begin(), stages.end()); }
  int max_dp() const { return *std::max_element(dps.begin(), dps.end()); }
  int max_ranks() const { return max_stages() * max_dp(); }
};

struct Row {
  std::string schedule;
  int P = 1, M = 1, v = 1;
  std::string checkpoint = "never";
  bool baseline = false;  // P = 1, M = 1: what speed-up is measured against
  int dp = 1;             // replicas of the pipeline, each on B / dp rows
};

struct Result {
  double step_s = 0, bubble_measured = -1, bubble_simulated = 0, peak_first = 0, peak_last = 0, mean_action_s = 0;
  // The bubble these stages have by their own compute alone: the simulator fed with the step's per-chunk
  // F and B times and free messages. With sends that do not block it equals the formula's when the
  // stages cost the same, and is larger when they do not (the first rank's backward skips the first
  // layer's input gradient, which nothing needs); with blocking sends it also counts their waits.
  double bubble_stages = -1;
  // dp > 1: the gradient all-reduce's wait after backward without overlap (its whole time), and the
  // share of it overlap hid behind backward: 1 - wait with overlap / wait without.
  double allreduce_s = -1, hidden = -1;
  // pipedream / 2bw: the weight versions' bytes (the live weights included) at their peak on the first
  // and the last rank; -1 for the flushed schedules.
  double versions_first = -1, versions_last = -1;
  // Measured rows: the compute time (F, B, W) of the first and the last rank in the traced step —
  // unequal stages show here; -1 in replay rows.
  double busy_first = -1, busy_last = -1;
};

// The round whose step time is the median (the lower middle of an even count): its bubbles, bytes
// and busy times go with the step time they were traced in.
inline Result median_round(std::vector<Result> rounds) {
  std::sort(rounds.begin(), rounds.end(), [](const Result& a, const Result& b) { return a.step_s < b.step_s; });
  return rounds[(rounds.size() - 1) / 2];
}

struct Batch {
  Tensor x, y;
};

// `blocks` identical blocks; every block maps [rows, d] (gpt: [rows, T, d]) to the same shape.
inline std::shared_ptr<nn::Sequential> make_model(const SweepOptions& o) {
  Generator init(0);
  if (o.model == "gpt") {
    nn::GPTConfig cfg;
    cfg.vocab_size = 16;
    cfg.context = o.context;
    cfg.n_layer = o.blocks;
    cfg.n_head = 4;
    cfg.d_model = o.width;
    auto gpt = nn::make_gpt(cfg, &init);
    return gpt->slice(1, static_cast<size_t>(1 + o.blocks));  // the blocks alone
  }
  auto m = std::make_shared<nn::Sequential>();
  for (int64_t i = 0; i < o.blocks; ++i)
    m->push_back(std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::Linear>(nn::LinearOptions(o.width, o.width).generator(&init)),
        std::make_shared<nn::ReLU>()}));
  return m;
}

inline Batch make_batch(const SweepOptions& o) {
  Generator g(1);
  Shape s = o.model == "gpt" ? Shape{o.batch, o.context, o.width} : Shape{o.batch, o.width};
  return {randn(s, {}, &g), randn(s, {}, &g)};
}

// Mean squared error against a random target: a loss that needs no head, so every block is equal.
inline parallel::LossFn loss() {
  return [](const Tensor& out, const Tensor& y) {
    Tensor d = out - y;
    return mean(d * d);
  };
}

inline std::string label(const Row& r, const std::string& how) {
  return r.schedule + " P=" + std::to_string(r.P) + " M=" + std::to_string(r.M) + " v=" + std::to_string(r.v) +
         (r.dp > 1 ? " dp=" + std::to_string(r.dp) : "") + " checkpoint " + r.checkpoint + " (" + how + ")";
}
inline std::string file_stem(const Row& r) {
  return r.schedule + "_P" + std::to_string(r.P) + "_M" + std::to_string(r.M) + "_v" + std::to_string(r.v) +
         (r.dp > 1 ? "_dp" + std::to_string(r.dp) : "") + "_" + r.checkpoint;
}
inline std::string pct(double x) { return (std::ostringstream() << std::fixed << std::setprecision(1) << 100 * x).str(); }

// The configurations: first the baseline (P = 1, M = 1, no checkpointing), then every schedule x P
// x M x checkpoint that exists (interleaved: v chunks per rank and an M it accepts; every chunk
// needs a block). P = 1 rows appear once, under 1f1b (every schedule is the same on one rank).
inline std::vector<Row> sweep(const SweepOptions& o) {
  std::vector<Row> rows = {{"1f1b", 1, 1, 1, "never", true}};
  for (int R : o.dps)
    for (const std::string& s : o.schedules)
      for (int P : o.stages)
        for (int M : o.microbatches)
          for (const std::string& ck : o.checkpoints) {
            const int v = s == "interleaved" ? o.virtual_chunks : 1;
            if ((P == 1 && s != "1f1b") || (P == 1 && M == 1 && ck == "never" && R == 1) || P * v > o.blocks) continue;
            if (parallel::async_mode_of(s) != parallel::AsyncMode::None && R > 1) continue;  // no data parallelism
            try {
              parallel::make_schedule(s, P, M, v);
            } catch (const Error&) {
              continue;  // an M the interleaved schedule cannot group
            }
            rows.push_back({s, P, M, v, ck, false, R});
          }
  return rows;
}

// The efficiency of the blocks' GEMMs at a micro-batch's rows relative to the full batch's, on one
// thread: GFLOP/s(rows) / GFLOP/s(full) over the three GEMMs a Linear [d, d] runs per training
// pass, as the executor runs them: forward x W^T and input gradient dY W ([rows, d] x [d, d]) and
// weight gradient dY^T x ([d, rows] x [rows, d]) added into .grad() (beta = 1) — in the step's
// order: the forward through `blocks` distinct weights, then the backward through them in reverse,
// so each weight comes from memory twice per pass, as in the step (one warm [d, d] weight flatters
// small micro-batches: packing it costs as much at 32 rows as at 256; running a weight's three GEMMs
// back to back, as an earlier version did, read it once and put one rank's step at M = 8 at 0.93 of
// its own ideal). Smaller micro-batches run each GEMM less efficiently, which is why the best M is
// not simply the largest. The two sizes are timed alternately (best of 5, ~1 GFLOP each), so a busy
// moment or a clock change hits both.
inline double gemm_efficiency(int64_t rows, int64_t full, int64_t d, int blocks) {
  Generator g(2);
  std::vector<Tensor> w, dw;
  for (int b = 0; b < blocks; ++b) {
    w.push_back(randn({d, d}, {}, &g));
    dw.push_back(zeros({d, d}));
  }
  auto best_seconds_per_flop = [&](int64_t n, double& best) {
    const Tensor x = randn({n, d}, {}, &g), dy = randn({n, d}, {}, &g);
    const double flops = blocks * 3 * 2.0 * static_cast<double>(n) * static_cast<double>(d) * static_cast<double>(d);
    const int reps = static_cast<int>(std::clamp(1e9 / flops, 2.0, 5000.0));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      for (int b = 0; b < blocks; ++b) ops::matmul(x, ops::transpose(w[b], 0, 1));
      for (int b = blocks - 1; b >= 0; --b) {
        ops::matmul(dy, w[b]);
        ops::addmm_(dw[b], ops::transpose(dy, 0, 1), x);
      }
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps / flops);
  };
  double small = 1e9, large = 1e9;
  for (int k = 0; k < 5; ++k) best_seconds_per_flop(rows, small), best_seconds_per_flop(full, large);
  return large / small;
}

// What the executor adds per action to record it (executor.cpp: two steady_clock reads, the rank's
// memory account, one ActionRecord appended), timed over many records: nanoseconds per action.
inline double record_cost_ns() {
  using Clock = std::chrono::steady_clock;
  const auto& account = current_memory_account();
  std::vector<parallel::ActionRecord> records;
  double best = 1e9;
  for (int k = 0; k < 5; ++k) {
    records.clear();
    const auto t0 = Clock::now();
    for (int i = 0; i < 4096; ++i) {
      parallel::ActionRecord rec{parallel::Action{0, parallel::Op::F, i}};
      rec.start = std::chrono::duration<double>(Clock::now() - t0).count();
      rec.end = std::chrono::duration<double>(Clock::now() - t0).count();
      rec.live_bytes = account->live();
      records.push_back(rec);
    }
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count() / 4096 * 1e9);
  }
  return best;
}

class Table {
 public:
  explicit Table(const SweepOptions& o) : o_(o) {}
  void header() {
    const int64_t d = o_.width;
    std::printf("bench_schedules: %s model, %lld identical blocks of width %lld, batch %lld%s; 1 intra-op thread per "
                "rank; %d timed steps (median)%s; %s\n",
                o_.model.c_str(), static_cast<long long>(o_.blocks), static_cast<long long>(d),
                static_cast<long long>(o_.batch), o_.model == "gpt" ? (" x " + std::to_string(o_.context) + " tokens").c_str() : "",
                o_.steps,
                o_.rounds > 1 ? (", the median of " + std::to_string(o_.rounds) + " rounds of the sweep").c_str() : "",
                o_.blocking_sends ? "blocking sends" : "sends that do not block");
    if (o_.replay)
      std::printf("REPLAY: each chunk's F and B timed alone on this core, the step laid out on P virtual devices by the "
                  "simulator (not a measured run; the bubble column is the simulator's)\n");
    else
      std::printf("MEASURED on the %s communicator: %d ranks at most on %d cores%s\n", o_.comm.c_str(),
                  o_.max_ranks(), cores_here(), o_.max_ranks() > cores_here() ? "; rows marked * have more ranks than cores: threads share cores, "
                                                   "so the timeline is not that of P devices (see --replay)"
                                                 : "");
    std::printf("%-12s %2s %2s %1s %2s %-6s | %9s %10s %7s %7s %6s %7s | %8s %8s %8s %8s | %10s %10s | %8s%s%s\n",
                "schedule", "P", "M", "v", "dp", "ckpt", "step ms", "samples/s", "speedup", "ideal", "/ideal", "/stages",
                "measured", "formula", "simul.", "stages", "act first", "act last", "GEMM eff", o_.max_dp() > 1 ? " | allreduce ms  hidden" : "",
                async() ? " | wver first  wver last" : "");
    csv_ << "mode,schedule,P,M,v,dp,checkpoint,step_ms,samples_per_s,speedup,ideal_speedup,of_ideal,bubble_measured,"
              "bubble_formula,bubble_simulated,act_bytes_first,act_bytes_last,gemm_efficiency,allreduce_ms,hidden,"
              "weight_version_bytes_first,weight_version_bytes_last,busy_ms_first,busy_ms_last,bubble_stages,"
              "ideal_speedup_stages,of_ideal_stages\n";
  }
  void row(const Row& r, const Result& res) {
    const int64_t d = o_.width, per_row = o_.model == "gpt" ? o_.context : 1;
    if (r.baseline) baseline_s_ = res.step_s;
    if (res.mean_action_s > 0) action_s_.push_back(res.mean_action_s);
    // M = 1 is the full batch: its efficiency ratio is 1 by definition (not a second, noisy timing).
    const int split = r.M * r.dp;  // a micro-batch holds B / (dp M) rows
    if (!gemm_.count(split))
      gemm_[split] = split == 1 ? 1.0 : gemm_efficiency(o_.batch / split * per_row, o_.batch * per_row, d, o_.blocks);
    const double g = gemm_[split];
    const double formula = parallel::closed_form_bubble(parallel::make_schedule(r.schedule, r.P, r.M, r.v));
    // Ideal speed-up over one rank on the whole batch: P dp ranks busy (1 - bubble) of the time,
    // each GEMM at the micro-batch's efficiency (the all-reduce counted as free).
    const double ideal = formula < 0 ? -1 : r.P * r.dp * (1 - formula) * g;
    // The same with the bubble these stages have by their own compute (the formula assumes equal
    // stages): what the target is judged against.
    const double ideal_stages = res.bubble_stages < 0 ? -1 : r.P * r.dp * (1 - res.bubble_stages) * g;
    const double speedup = baseline_s_ > 0 ? baseline_s_ / res.step_s : 0;
    const bool over = !o_.replay && r.P * r.dp > cores_here();
    auto bubble = [](double b) { return b < 0 ? std::string("-") : (std::ostringstream() << std::fixed << std::setprecision(3) << b).str(); };
    auto ratio = [&](double ideal_speedup) {
      return ideal_speedup > 0 && speedup > 0
                 ? (std::ostringstream() << std::fixed << std::setprecision(2) << speedup / ideal_speedup).str()
                 : std::string("-");
    };
    std::string dp_cols;
    if (o_.max_dp() > 1)
      dp_cols = res.allreduce_s < 0 ? " |            -       -"
                                    : (std::ostringstream() << " | " << std::fixed << std::setprecision(3)
                                                            << std::setw(12) << 1e3 * res.allreduce_s << " "
                                                            << std::setw(6) << std::setprecision(1) << 100 * res.hidden
                                                            << "%").str();
    std::string async_cols;
    if (async())
      async_cols = res.versions_first < 0 ? " |          -          -"
                                          : " | " + pad(examples::format_bytes(res.versions_first), 10) + " " +
                                                pad(examples::format_bytes(res.versions_last), 10);
    std::printf("%-12s %2d %2d %1d %2d %-6s | %9.3f %10.0f %7.2f %7s %6s %7s | %8s %8s %8s %8s | %10s %10s | %8.2f%s%s\n",
                (r.schedule + (over ? "*" : "")).c_str(), r.P, r.M, r.v, r.dp, r.checkpoint.c_str(), 1e3 * res.step_s,
                o_.batch / res.step_s, speedup, ideal < 0 ? "-" : (std::ostringstream() << std::fixed << std::setprecision(2) << ideal).str().c_str(),
                ratio(ideal).c_str(), ratio(ideal_stages).c_str(), bubble(res.bubble_measured).c_str(),
                bubble(formula).c_str(), bubble(res.bubble_simulated).c_str(), bubble(res.bubble_stages).c_str(),
                examples::format_bytes(res.peak_first).c_str(),
                examples::format_bytes(res.peak_last).c_str(), g, dp_cols.c_str(), async_cols.c_str());
    std::fflush(stdout);
    csv_ << (o_.replay ? "replay" : "measured-" + o_.comm) << ',' << r.schedule << ',' << r.P << ',' << r.M << ','
           << r.v << ',' << r.dp << ',' << r.checkpoint << ',' << 1e3 * res.step_s << ',' << o_.batch / res.step_s << ',' << speedup
           << ',' << ideal << ',' << (ideal > 0 ? speedup / ideal : -1) << ',' << res.bubble_measured << ',' << formula << ',' << res.bubble_simulated << ','
           << res.peak_first << ',' << res.peak_last << ',' << g << ',' << 1e3 * res.allreduce_s << ',' << res.hidden
           << ',' << res.versions_first << ',' << res.versions_last << ',' << (res.busy_first < 0 ? -1 : 1e3 * res.busy_first)
           << ',' << (res.busy_last < 0 ? -1 : 1e3 * res.busy_last) << ',' << res.bubble_stages << ',' << ideal_stages
           << ',' << (ideal_stages > 0 ? speedup / ideal_stages : -1) << '\n';
  }
  // The baseline timed again after the sweep: the speed-ups carry noise of the order of the change.
  void baseline_again(double step_s) const {
    if (baseline_s_ <= 0) return;
    std::printf("baseline (P=1, M=1) again after the sweep: %.3f ms against %.3f ms at its start (%+.1f%%): the "
                "speed-ups carry noise of that order\n",
                1e3 * step_s, 1e3 * baseline_s_, 100 * (step_s / baseline_s_ - 1));
  }
  void footer() {
    std::printf("speedup = step time of P=1, M=1 / this step time; ideal = P * dp * (1 - formula bubble) * GEMM eff; "
                "/ideal = speedup / ideal; /stages = the same with the stages bubble;\n"
                "bubble = idle / step time, mean over ranks: measured from a traced step, formula (P-1)/(v*M+P-1) "
                "(equal stages), simulated from that step's own per-action costs%s, stages = the same with free "
                "messages (the schedule on these stages' compute);\n"
                "act = peak activation bytes stashed for backward on the first and the last rank; GEMM eff = GFLOP/s "
                "of the blocks' forward, input- and weight-gradient GEMMs ([d, d] weights, in turn) at B/(dp M) rows / "
                "at B rows (one thread)%s\n",
                o_.replay ? " (replay: the only bubble there is)" : "",
                o_.max_dp() > 1 ? ";\nallreduce = the gradient all-reduce's wait after backward with --no-overlap (its whole "
                                  "time), hidden = the share of it overlap hid behind backward (rank 0, median)"
                                : "");
    if (async())
      std::printf("pipedream / 2bw rows: their steps include each stage's optimizer steps (SGD, one per micro-batch or "
                  "window) and weight-version copies, the flushed rows' none; wver = the weight versions' bytes at their "
                  "peak, the live weights included (2bw: --window = M)\n");
    if (!action_s_.empty()) {
      double mean = 0;
      for (double a : action_s_) mean += a / static_cast<double>(action_s_.size());
      const double ns = record_cost_ns();
      std::printf("recording (on in every step): %.0f ns per action against a mean action of %.1f us in this sweep "
                  "(%.2g%%)\n",
                  ns, 1e6 * mean, 100 * ns * 1e-9 / mean);
    }
    if (!o_.csv.empty()) parallel::write_text_file(o_.csv, csv_.str(), "bench_schedules --csv");
  }

 private:
  // The machine's cores (not this process's affinity: mpirun may bind each rank to one).
  static int cores_here() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }
  static std::string pad(const std::string& s, size_t w) { return std::string(w > s.size() ? w - s.size() : 0, ' ') + s; }
  bool async() const {
    for (const std::string& s : o_.schedules)
      if (parallel::async_mode_of(s) != parallel::AsyncMode::None) return true;
    return false;
  }
  const SweepOptions& o_;
  std::ostringstream csv_;
  double baseline_s_ = 0;
  std::map<int, double> gemm_;
  std::vector<double> action_s_;
};

}  // namespace minipipe::bench
