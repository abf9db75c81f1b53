// bench_mlp_step: one whole MLP training step (forward, cross_entropy, backward, AdamW step) on
// a fixed random batch: samples/s and achieved GFLOP/s, 1 and 2 threads, next to the float32
// peak. FLOPs are counted as 6 x parameters x batch per step (2 forward + 4 backward).
// Run: build/bench_mlp_step [--threads 1,2] [--benchmark_repetitions=5 ...]; see docs/performance.md.
#include <immintrin.h>

#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "benchmarks/peak.h"
#include "benchmarks/reporter.h"
#include "benchmarks/workloads.h"
#include "nn/nn.h"
#include "tensor/allocator.h"
#include "tensor/threads.h"

using namespace minipipe;

namespace {

using MlpConfig = bench::MlpWorkload;
const std::vector<MlpConfig>& kConfigs = bench::kMlpWorkloads;  // shared with the libtorch twin

std::shared_ptr<nn::Sequential> make_mlp(const std::vector<int64_t>& w) {
  auto model = std::make_shared<nn::Sequential>();
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    if (i > 0) model->push_back(std::make_shared<nn::ReLU>());
    model->push_back(std::make_shared<nn::Linear>(w[i], w[i + 1]));
  }
  return model;
}


void bm_step(benchmark::State& st, MlpConfig cfg, int threads) {
  set_num_threads(threads);
  manual_seed(0);
  auto model = make_mlp(cfg.widths);
  optim::AdamW opt(model->parameters(), optim::AdamWOptions{});
  Generator gen(1);
  Tensor x = randn({cfg.batch, cfg.widths.front()}, {}, &gen);
  std::vector<int64_t> labels(cfg.batch);
  for (auto& l : labels) l = static_cast<int64_t>(gen.below(cfg.widths.back()));
  Tensor y = from_vector(labels);

  using clock = std::chrono::steady_clock;
  double fwd = 0, bwd = 0, upd = 0;
  const int64_t allocs_before = host_allocator_stats().system_allocs;
  for (auto _ : st) {
    const auto t0 = clock::now();
    Tensor loss = cross_entropy((*model)(x), y);
    const auto t1 = clock::now();
    opt.zero_grad();
    loss.backward();
    const auto t2 = clock::now();
    opt.step();
    const auto t3 = clock::now();
    fwd += std::chrono::duration<double>(t1 - t0).count();
    bwd += std::chrono::duration<double>(t2 - t1).count();
    upd += std::chrono::duration<double>(t3 - t2).count();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  // Blocks taken from the system per step: ~0 once the caching allocator is warm, every tensor
  // of the step with MINIPIPE_CACHING_ALLOCATOR=0.
  st.counters["sys_allocs/step"] = benchmark::Counter(
      static_cast<double>(host_allocator_stats().system_allocs - allocs_before), benchmark::Counter::kAvgIterations);
  const double params = static_cast<double>(model->num_parameters());
  st.counters["params"] = params;
  st.counters["samples/s"] = benchmark::Counter(static_cast<double>(cfg.batch), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] = benchmark::Counter(6e-9 * params * cfg.batch, benchmark::Counter::kIsIterationInvariantRate);
  const double n = static_cast<double>(st.iterations());
  st.counters["fwd_ms"] = 1e3 * fwd / n;
  st.counters["bwd_ms"] = 1e3 * bwd / n;
  st.counters["adamw_ms"] = 1e3 * upd / n;
}

// ---- the summary table: medians over the repetitions, and the best samples/s; allocs = blocks
// taken from the system per step (tensor/allocator.h) ----

class TableReporter : public bench::MedianReporter {
 public:
  TableReporter(std::pair<double, double> peaks, std::vector<int> threads)
      : MedianReporter({"samples/s", "GFLOP/s", "fwd_ms", "bwd_ms", "adamw_ms", "sys_allocs/step"}), peaks_(peaks),
        threads_(std::move(threads)) {}

  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto res = medians();
    std::printf("\nFLOPs per step = 6 x params x batch (2 forward, 4 backward; this slightly overcounts: the "
                "first layer's input gradient is never computed)\n");
    std::printf("peak per core: %.1f GFLOP/s by the formula (lanes x 2 FMA x 2 flops x cpuinfo clock), %.1f "
                "measured (FMA probe); %%peak = GFLOP/s / (threads x measured). Medians; best = best repetition\n\n",
                peaks_.first, peaks_.second);
    std::printf("%-22s %3s %10s %10s %8s %7s %7s %7s %8s %8s %7s\n", "model/batch", "thr", "samples/s", "best",
                "GFLOP/s", "%peak", "fwd ms", "bwd ms", "adamw ms", "speedup", "allocs");
    for (const MlpConfig& cfg : kConfigs) {
      double base = NAN;
      for (int t : threads_) {
        const std::string name = "mlp_step/" + cfg.name + "/threads:" + std::to_string(t) + "/real_time";
        auto it = res.find(name);
        if (it == res.end()) continue;
        const auto& r = it->second;
        if (std::isnan(base)) base = r.at("samples/s");
        std::printf("%-22s %3d %10.0f %10.0f %8.1f %6.1f%% %7.2f %7.2f %8.2f %8.2f %7.1f\n", cfg.name.c_str(), t,
                    r.at("samples/s"), best(name, "samples/s"), r.at("GFLOP/s"),
                    100 * r.at("GFLOP/s") / (t * peaks_.second), r.at("fwd_ms"), r.at("bwd_ms"), r.at("adamw_ms"),
                    r.at("samples/s") / base, r.at("sys_allocs/step"));
      }
    }
  }

 private:
  std::pair<double, double> peaks_;  // per core: formula, measured
  std::vector<int> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"one MLP training step (forward, backward, AdamW): samples/s and GFLOP/s"};
  std::vector<int> threads = {1, 2};
  app.add_option("--threads", threads, "thread counts to run")->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  for (const MlpConfig& cfg : kConfigs)
    for (int t : threads) {
      const std::string name = "mlp_step/" + cfg.name + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), bm_step, cfg, t)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  const double formula = bench::read_cpuinfo().formula, measured = bench::fma_probe_gflops();
  TableReporter reporter({formula, measured > 0 ? measured : formula}, threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
