// bench_overhead: what minipipe costs per call when the arithmetic is nothing — dispatch,
// allocation and autograd bookkeeping — on 1-element adds and a Linear(8 -> 8) on one row, up to
// a whole AdamW training step; microseconds per call, beside its libtorch twin
// (benchmarks/torch/torch_overhead.cpp: the same rows, names and table).
// Run: build/bench_overhead [--threads 1] [--benchmark_repetitions=3 ...]; see docs/performance.md.
#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>
#include <cstdio>

#include "benchmarks/torch/overhead_rows.h"
#include "benchmarks/reporter.h"
#include "nn/nn.h"
#include "tensor/threads.h"

using namespace minipipe;

namespace {

// x: [1, 8] -> y: [1, 8], the layer every Linear row runs.
struct Fixture {
  explicit Fixture(int threads) {
    set_num_threads(threads);
    manual_seed(0);
    lin = std::make_shared<nn::Linear>(8, 8);
    x = randn({1, 8});
    label = from_vector(std::vector<int64_t>{3});
  }
  std::shared_ptr<nn::Linear> lin;
  Tensor x, label;
};

void bm_row(benchmark::State& st, bench::OverheadRow row, int threads) {
  Fixture f(threads);
  Tensor a = randn({1}), b = randn({1});
  switch (row) {
    case bench::OverheadRow::AddNoGrad:
      for (auto _ : st) benchmark::DoNotOptimize(add(a, b).raw_data());
      break;
    case bench::OverheadRow::AddGrad:  // records an add node per call
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      for (auto _ : st) benchmark::DoNotOptimize(add(a, b).raw_data());
      break;
    case bench::OverheadRow::LinearNoGrad:
      for (auto _ : st) {
        NoGradGuard guard;
        benchmark::DoNotOptimize(f.lin->forward(f.x).raw_data());
      }
      break;
    case bench::OverheadRow::LinearGrad:
      for (auto _ : st) benchmark::DoNotOptimize(f.lin->forward(f.x).raw_data());
      break;
    case bench::OverheadRow::LinearFwdBwd:  // gradients accumulate into .grad call after call
      for (auto _ : st) sum(f.lin->forward(f.x)).backward();
      break;
    case bench::OverheadRow::TrainStep: {  // bench_mlp_step's step on the smallest layer
      optim::AdamW opt(f.lin->parameters(), optim::AdamWOptions{});
      for (auto _ : st) {
        Tensor loss = cross_entropy(f.lin->forward(f.x), f.label);
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
      break;
    }
  }
  benchmark::DoNotOptimize(f.lin->weight.raw_data());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"minipipe per-call overhead: 1-element adds, Linear(8) forward/backward, an AdamW step (us/call)"};
  std::vector<int> threads = {1};
  app.add_option("--threads", threads, "thread counts to run")->delimiter(',')->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  bench::register_overhead_rows(threads, bm_row);
  bench::OverheadReporter reporter("minipipe", threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
