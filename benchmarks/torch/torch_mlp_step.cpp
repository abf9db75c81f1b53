// torch_mlp_step: the libtorch twin of benchmarks/bench_mlp_step.cpp — one whole MLP training step
// (forward, cross_entropy, zero_grad, backward, AdamW step) on a fixed random batch, the same
// models, batches, optimizer, benchmark names and timing (Google Benchmark, wall time per step).
// Built with -DMINIPIPE_LIBTORCH=ON; run: build-bench/torch_mlp_step [--threads 1,2], or through
// benchmarks/run_benchmarks.sh --libtorch.
#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>

#include "benchmarks/reporter.h"
#include "benchmarks/torch/torch_common.h"
#include "benchmarks/workloads.h"

namespace {

using MlpConfig = minipipe::bench::MlpWorkload;
const std::vector<MlpConfig>& kConfigs = minipipe::bench::kMlpWorkloads;  // bench_mlp_step's models

torch::nn::Sequential make_mlp(const std::vector<int64_t>& w) {
  torch::nn::Sequential model;
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    if (i > 0) model->push_back(torch::nn::ReLU());
    model->push_back(torch::nn::Linear(w[i], w[i + 1]));
  }
  return model;
}

void bm_step(benchmark::State& st, MlpConfig cfg, int threads) {
  minipipe::bench::set_torch_threads(threads);
  torch::manual_seed(0);
  auto model = make_mlp(cfg.widths);
  // minipipe's AdamWOptions{}: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2.
  torch::optim::AdamW opt(model->parameters(),
                          torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(1e-2));
  torch::Tensor x = torch::randn({cfg.batch, cfg.widths.front()});
  torch::Tensor y = torch::randint(cfg.widths.back(), {cfg.batch}, torch::kLong);

  using clock = std::chrono::steady_clock;
  double fwd = 0, bwd = 0, upd = 0;
  for (auto _ : st) {
    const auto t0 = clock::now();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    const auto t1 = clock::now();
    minipipe::bench::zero_grad_to_none(opt);
    loss.backward();
    const auto t2 = clock::now();
    opt.step();
    const auto t3 = clock::now();
    fwd += std::chrono::duration<double>(t1 - t0).count();
    bwd += std::chrono::duration<double>(t2 - t1).count();
    upd += std::chrono::duration<double>(t3 - t2).count();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  st.counters["params"] = static_cast<double>(params);
  st.counters["samples/s"] = benchmark::Counter(static_cast<double>(cfg.batch), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] = benchmark::Counter(6e-9 * static_cast<double>(params) * static_cast<double>(cfg.batch),
                                              benchmark::Counter::kIsIterationInvariantRate);
  const double n = static_cast<double>(st.iterations());
  st.counters["fwd_ms"] = 1e3 * fwd / n;
  st.counters["bwd_ms"] = 1e3 * bwd / n;
  st.counters["adamw_ms"] = 1e3 * upd / n;
}

// The table: medians over the repetitions, as bench_mlp_step's (without the peak columns).
class TableReporter : public minipipe::bench::MedianReporter {
 public:
  explicit TableReporter(std::vector<int> threads)
      : MedianReporter({"samples/s", "GFLOP/s", "fwd_ms", "bwd_ms", "adamw_ms"}), threads_(std::move(threads)) {}

  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto res = medians();
    std::printf("\nlibtorch MLP step; FLOPs per step = 6 x params x batch. Medians; best = best repetition\n\n");
    std::printf("%-22s %3s %10s %10s %8s %7s %7s %8s %8s\n", "model/batch", "thr", "samples/s", "best", "GFLOP/s",
                "fwd ms", "bwd ms", "adamw ms", "speedup");
    for (const MlpConfig& cfg : kConfigs) {
      double base = NAN;
      for (int t : threads_) {
        const std::string name = "mlp_step/" + cfg.name + "/threads:" + std::to_string(t) + "/real_time";
        auto it = res.find(name);
        if (it == res.end()) continue;
        const auto& r = it->second;
        if (std::isnan(base)) base = r.at("samples/s");
        std::printf("%-22s %3d %10.0f %10.0f %8.1f %7.2f %7.2f %8.2f %8.2f\n", cfg.name.c_str(), t,
                    r.at("samples/s"), best(name, "samples/s"), r.at("GFLOP/s"), r.at("fwd_ms"), r.at("bwd_ms"),
                    r.at("adamw_ms"), r.at("samples/s") / base);
      }
    }
  }

 private:
  std::vector<int> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"libtorch: one MLP training step (forward, backward, AdamW), the twin of bench_mlp_step"};
  std::vector<int> threads = {1, 2};
  app.add_option("--threads", threads, "thread counts to run")->delimiter(',')->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  minipipe::bench::init_torch();
  for (const MlpConfig& cfg : kConfigs)
    for (int t : threads) {
      const std::string name = "mlp_step/" + cfg.name + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), bm_step, cfg, t)->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  TableReporter reporter(threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
