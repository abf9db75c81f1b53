// bench_elementwise: GB/s (bytes read + written / time) of minipipe's elementwise ops,
// reductions and softmax on 1M and 16M float32 elements, 1 and 2 threads, next to a plain
// memcpy (the machine's practical bandwidth) and memcpy into fresh buffers (what allocating the
// output costs). Tensors are [rows, 1024]; the bias is [1024].
// Run: build/bench_elementwise [--threads 1,2] [--benchmark_repetitions=5 ...]; see docs/performance.md.
#include <omp.h>
#include <sys/mman.h>

#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>

#include "benchmarks/reporter.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/threads.h"

using namespace minipipe;

namespace {

constexpr int64_t kCols = 1024;

// The memcpy reference points: into a buffer allocated once, into a fresh malloc per call (what a
// fresh op output pays: first-touch page faults), and into a fresh buffer on transparent huge
// pages (madvise; 512x fewer faults).
enum class Copy { none, reused, fresh, fresh_thp };

struct Op {
  std::string name;
  // Bytes moved per call, for an [r, c] input: what the op must read and write at least.
  std::function<double(int64_t r, int64_t c)> bytes;
  std::function<Tensor(const Tensor& x, const Tensor& y, const Tensor& bias)> run;
  Copy copy = Copy::none;
  bool positive = false;  // inputs in (0, 3] rather than [-3, 3] (log's domain)
};

std::vector<Op> op_table() {
  auto f = [](double v) { return v * sizeof(float); };
  return {
      // Reference points: memcpy into a buffer allocated once (bandwidth), and minipipe's clone
      // (a fresh output each call, as every op below allocates one).
      {"memcpy", [=](int64_t r, int64_t c) { return f(2.0 * r * c); }, nullptr, Copy::reused},
      {"memcpy_new", [=](int64_t r, int64_t c) { return f(2.0 * r * c); }, nullptr, Copy::fresh},
      {"memcpy_thp", [=](int64_t r, int64_t c) { return f(2.0 * r * c); }, nullptr, Copy::fresh_thp},
      {"clone", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::clone(x); }},
      {"add", [=](int64_t r, int64_t c) { return f(3.0 * r * c); },
       [](const Tensor& x, const Tensor& y, const Tensor&) { return ops::add(x, y); }},
      {"add_bias", [=](int64_t r, int64_t c) { return f(2.0 * r * c + c); },
       [](const Tensor& x, const Tensor&, const Tensor& b) { return ops::add(x, b); }},
      {"mul", [=](int64_t r, int64_t c) { return f(3.0 * r * c); },
       [](const Tensor& x, const Tensor& y, const Tensor&) { return ops::mul(x, y); }},
      {"relu", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::relu(x); }},
      {"gelu", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::gelu(x); }},
      {"exp", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::exp(x); }},
      {"log", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::log(x); }, Copy::none, true},
      {"tanh", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::tanh(x); }},
      {"sigmoid", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::sigmoid(x); }},
      {"sum_dim0", [=](int64_t r, int64_t c) { return f(1.0 * r * c + c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::sum(x, {0}); }},
      {"sum_last", [=](int64_t r, int64_t c) { return f(1.0 * r * c + r); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::sum(x, {-1}); }},
      {"softmax", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::softmax(x, -1); }},
      {"log_softmax", [=](int64_t r, int64_t c) { return f(2.0 * r * c); },
       [](const Tensor& x, const Tensor&, const Tensor&) { return ops::log_softmax(x, -1); }},
  };
}

// memcpy split into one contiguous range per thread.
void parallel_memcpy(float* dst, const float* src, int64_t n, int threads) {
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t b = n * t / nt, e = n * (t + 1) / nt;
    std::memcpy(dst + b, src + b, (e - b) * sizeof(float));
  }
}

void bm_op(benchmark::State& st, Op op, int64_t numel, int threads) {
  set_num_threads(threads);
  const int64_t rows = numel / kCols;
  Generator gen(7);
  Tensor x = op.positive ? uniform({rows, kCols}, 1e-3, 3, {}, &gen) : uniform({rows, kCols}, -3, 3, {}, &gen);
  Tensor y = uniform({rows, kCols}, -3, 3, {}, &gen);
  Tensor bias = uniform({kCols}, -1, 1, {}, &gen);
  if (op.run) {
    for (auto _ : st) {
      Tensor out = op.run(x, y, bias);
      benchmark::DoNotOptimize(out.raw_data());
    }
  } else if (op.copy == Copy::reused) {
    Tensor dst = zeros({rows, kCols});
    for (auto _ : st) {
      parallel_memcpy(dst.data_ptr<float>(), x.data_ptr<float>(), numel, threads);
      benchmark::ClobberMemory();
    }
  } else {
    const size_t bytes = static_cast<size_t>(numel) * sizeof(float), huge = size_t{2} << 20;
    for (auto _ : st) {
      float* dst = op.copy == Copy::fresh
                       ? static_cast<float*>(std::malloc(bytes))
                       : static_cast<float*>(std::aligned_alloc(huge, (bytes + huge - 1) / huge * huge));
      if (op.copy == Copy::fresh_thp) ::madvise(dst, bytes, MADV_HUGEPAGE);  // a hint: may be refused
      parallel_memcpy(dst, x.data_ptr<float>(), numel, threads);
      benchmark::DoNotOptimize(dst);
      benchmark::ClobberMemory();
      std::free(dst);
    }
  }
  st.counters["GB/s"] = benchmark::Counter(op.bytes(rows, kCols) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

std::string size_name(int64_t numel) { return std::to_string(numel >> 20) + "M"; }

// ---- the summary table: medians over the repetitions ----

class TableReporter : public bench::MedianReporter {
 public:
  TableReporter(std::vector<std::string> ops, std::vector<std::string> sizes, std::vector<int> threads)
      : MedianReporter({"GB/s"}), ops_(std::move(ops)), sizes_(std::move(sizes)), threads_(std::move(threads)) {}

  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto res = medians();
    auto get = [&](const std::string& op, const std::string& size, int t) {
      auto it = res.find("elementwise/" + op + "/" + size + "/threads:" + std::to_string(t) + "/real_time");
      return it == res.end() ? NAN : it->second.at("GB/s");
    };
    std::printf("\nGB/s = bytes read + written / time (medians); %%copy = GB/s / memcpy's GB/s at the same size and threads\n\n");
    std::printf("%-11s %5s", "op", "size");
    for (int t : threads_) std::printf("   GB/s t%d  %%copy", t);
    if (threads_.size() > 1) std::printf("  t%d/t%d", threads_.back(), threads_.front());
    std::printf("\n");
    for (const auto& size : sizes_)
      for (const auto& op : ops_) {
        bool ran = false;  // skip ops a --benchmark_filter left out
        for (int t : threads_) ran = ran || !std::isnan(get(op, size, t));
        if (!ran) continue;
        std::printf("%-11s %5s", op.c_str(), size.c_str());
        for (int t : threads_) std::printf("  %9.2f %5.0f%%", get(op, size, t), 100 * get(op, size, t) / get("memcpy", size, t));
        if (threads_.size() > 1)
          std::printf("  %5.2f", get(op, size, threads_.back()) / get(op, size, threads_.front()));
        std::printf("\n");
      }
  }

 private:
  std::vector<std::string> ops_, sizes_;
  std::vector<int> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"minipipe elementwise ops, reductions and softmax, GB/s next to memcpy"};
  std::vector<int> threads = {1, 2};
  std::vector<int64_t> mega = {1, 16};
  app.add_option("--threads", threads, "thread counts to run")->delimiter(',');
  app.add_option("--sizes", mega, "tensor sizes in Mi float32 elements")->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> op_names, size_names;
  for (const Op& op : op_table()) op_names.push_back(op.name);
  for (int64_t mi : mega) {
    const int64_t numel = mi << 20;
    size_names.push_back(size_name(numel));
    for (const Op& op : op_table())
      for (int t : threads) {
        const std::string name = "elementwise/" + op.name + "/" + size_name(numel) + "/threads:" + std::to_string(t);
        benchmark::RegisterBenchmark(name.c_str(), bm_op, op, numel, t)->UseRealTime()->Unit(benchmark::kMicrosecond);
      }
  }
  TableReporter reporter(op_names, size_names, threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
