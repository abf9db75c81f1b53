// torch_overhead: the libtorch twin of benchmarks/bench_overhead.cpp — the same rows (1-element
// adds, Linear(8 -> 8) on one row, an AdamW step), names and table, microseconds per call.
// Built with -DMINIPIPE_LIBTORCH=ON; run: build-bench/torch_overhead [--threads 1], or through
// benchmarks/run_benchmarks.sh --libtorch, which pairs its rows with bench_overhead's.
#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>

#include "benchmarks/torch/overhead_rows.h"
#include "benchmarks/torch/torch_common.h"

namespace {

using minipipe::bench::OverheadRow;

void bm_row(benchmark::State& st, OverheadRow row, int threads) {
  minipipe::bench::set_torch_threads(threads);
  torch::manual_seed(0);
  torch::nn::Linear lin(8, 8);
  torch::Tensor x = torch::randn({1, 8}), label = torch::tensor({int64_t{3}});
  torch::Tensor a = torch::randn({1}), b = torch::randn({1});
  switch (row) {
    case OverheadRow::AddNoGrad:
      for (auto _ : st) benchmark::DoNotOptimize(torch::add(a, b).data_ptr());
      break;
    case OverheadRow::AddGrad:  // records an add node per call
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      for (auto _ : st) benchmark::DoNotOptimize(torch::add(a, b).data_ptr());
      break;
    case OverheadRow::LinearNoGrad:
      for (auto _ : st) {
        torch::NoGradGuard guard;
        benchmark::DoNotOptimize(lin->forward(x).data_ptr());
      }
      break;
    case OverheadRow::LinearGrad:
      for (auto _ : st) benchmark::DoNotOptimize(lin->forward(x).data_ptr());
      break;
    case OverheadRow::LinearFwdBwd:  // gradients accumulate into .grad call after call
      for (auto _ : st) lin->forward(x).sum().backward();
      break;
    case OverheadRow::TrainStep: {  // AdamW as minipipe's AdamWOptions{}: lr 1e-3, (0.9, 0.999), 1e-8, wd 1e-2
      torch::optim::AdamW opt(lin->parameters(),
                              torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(1e-2));
      for (auto _ : st) {
        torch::Tensor loss = torch::nn::functional::cross_entropy(lin->forward(x), label);
        minipipe::bench::zero_grad_to_none(opt);
        loss.backward();
        opt.step();
      }
      break;
    }
  }
  benchmark::DoNotOptimize(lin->weight.data_ptr());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"libtorch per-call overhead: 1-element adds, Linear(8) forward/backward, an AdamW step (us/call)"};
  std::vector<int> threads = {1};
  app.add_option("--threads", threads, "thread counts to run")->delimiter(',')->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  minipipe::bench::init_torch();
  minipipe::bench::register_overhead_rows(threads, bm_row);
  minipipe::bench::OverheadReporter reporter("libtorch", threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
