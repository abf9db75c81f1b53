// bench_matmul: GFLOP/s (2·n·k·m / time) of minipipe's matmul next to a direct OpenBLAS
// cblas_sgemm on the same buffers, float32, 1 and 2 threads, for square sizes and the MLP's
// shapes; then a table with the ratio and the efficiency against the machine's float32 peak.
// Run: build/bench_matmul [--threads 1,2] [--benchmark_repetitions=5 ...]; see docs/performance.md.
#include <cblas.h>
#include <immintrin.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <benchmark/benchmark.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "benchmarks/peak.h"
#include "benchmarks/reporter.h"
#include "tensor/threads.h"

using namespace minipipe;
using namespace minipipe::bench;

namespace {

#ifdef MINIPIPE_BLAS
constexpr const char* kBackend = "one cblas_sgemm call into OpenBLAS per GEMM (MINIPIPE_BLAS=ON)";
#else
constexpr const char* kBackend = "Eigen's own GEMM (MINIPIPE_BLAS=OFF)";
#endif


// ---- the benchmarks ----

struct GemmShape {
  std::string name;
  int64_t n, k, m;
  bool trans_a = false, trans_b = false;  // operand stored as [k, n] (resp. [m, k]) and used transposed
  int64_t batch = 1;                      // > 1: [batch, n, k] @ [batch, k, m]
};

// Square sizes, then the train_mlp default (784-512-256-10, batch 128): y = x W^T for each
// layer, then its backward dW = g^T x and dx = g W (no dx for the first layer: the images need
// no gradient). Last, batched products: attention scores for 12 heads (T = 128, head dim 64),
// and three big matrices (an odd count for two threads). minipipe runs one GEMM per thread;
// the cblas baseline loops over the batch with the BLAS threaded inside each GEMM.
std::vector<GemmShape> shapes() {
  std::vector<GemmShape> s;
  for (int64_t n : {128, 256, 512, 1024, 2048}) s.push_back({"sq" + std::to_string(n), n, n, n, false, false});
  const int64_t b = 128;
  const int64_t widths[] = {784, 512, 256, 10};
  for (int l = 0; l < 3; ++l) {
    const int64_t in = widths[l], out = widths[l + 1];
    const std::string fc = "fc" + std::to_string(l + 1);
    s.push_back({fc + ".fwd", b, in, out, false, true});    // x [B,in] @ W^T, W [out,in]
    s.push_back({fc + ".dW", out, b, in, true, false});     // g^T [out,B] @ x [B,in]
    if (l > 0) s.push_back({fc + ".dx", b, out, in, false, false});  // g [B,out] @ W [out,in]
  }
  s.push_back({"bmm.att", 128, 64, 128, false, false, 12});  // q [12,128,64] @ k^T [12,64,128]
  s.push_back({"bmm.3x512", 512, 512, 512, false, false, 3});
  return s;
}

struct Operands {
  Tensor a, b;  // [n, k] and [k, m], possibly transposed views
  std::vector<float> c;
};

Operands make_operands(const GemmShape& s) {
  Generator gen(42);
  Operands o;
  if (s.batch > 1) {
    o.a = uniform({s.batch, s.n, s.k}, -1, 1, {}, &gen);
    o.b = uniform({s.batch, s.k, s.m}, -1, 1, {}, &gen);
  } else {
    o.a = s.trans_a ? ops::transpose(uniform({s.k, s.n}, -1, 1, {}, &gen), 0, 1) : uniform({s.n, s.k}, -1, 1, {}, &gen);
    o.b = s.trans_b ? ops::transpose(uniform({s.m, s.k}, -1, 1, {}, &gen), 0, 1) : uniform({s.k, s.m}, -1, 1, {}, &gen);
  }
  o.c.assign(s.batch * s.n * s.m, 0.0f);
  return o;
}

void sgemm(const GemmShape& s, const Operands& o, float* c) {
  // Row-major: a stored [n,k] (lda k) or [k,n] (lda n); b stored [k,m] (ldb m) or [m,k] (ldb k).
  for (int64_t i = 0; i < s.batch; ++i)
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, s.trans_b ? CblasTrans : CblasNoTrans,
                s.n, s.m, s.k, 1.0f, o.a.data_ptr<float>() + i * s.n * s.k, s.trans_a ? s.n : s.k,
                o.b.data_ptr<float>() + i * s.k * s.m, s.trans_b ? s.k : s.m, 0.0f, c + i * s.n * s.m, s.m);
}

// The check before any timing: minipipe's result against cblas (both sum k products in float32;
// they may differ in order, so the tolerance is relative to the sum of |a||b|).
double max_error(const GemmShape& s) {
  Operands o = make_operands(s);
  sgemm(s, o, o.c.data());
  Tensor c = ops::matmul(o.a, o.b);
  const float* pc = c.data_ptr<float>();
  double worst = 0;
  for (int64_t i = 0; i < s.batch * s.n * s.m; ++i) worst = std::max(worst, std::abs(double(pc[i]) - o.c[i]) / s.k);
  return worst;
}

void set_flops(benchmark::State& st, const GemmShape& s) {
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * s.batch * s.n * s.k * s.m, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_minipipe(benchmark::State& st, GemmShape s, int threads) {
  set_num_threads(threads);
  Operands o = make_operands(s);
  for (auto _ : st) {
    Tensor c = ops::matmul(o.a, o.b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_flops(st, s);
}

void bm_openblas(benchmark::State& st, GemmShape s, int threads) {
  set_num_threads(threads);
  Operands o = make_operands(s);
  for (auto _ : st) {
    sgemm(s, o, o.c.data());
    benchmark::DoNotOptimize(o.c.data());
    benchmark::ClobberMemory();
  }
  set_flops(st, s);
}

// ---- the summary table ----

// Per benchmark: the median over repetitions of GFLOP/s, wall and CPU time, and the best GFLOP/s
// (the least disturbed repetition). "busy" = process CPU time / (wall time x threads): near 1
// when the benchmark had its cores to itself, lower when other work on the machine took them.
struct Summary {
  double gflops = NAN, real = NAN, cpu = NAN, best = NAN;
};

class TableReporter : public MedianReporter {
 public:
  TableReporter(Peak peak, std::vector<std::string> shape_order)
      : MedianReporter({"GFLOP/s"}), peak_(std::move(peak)), shape_order_(std::move(shape_order)) {}

  void Finalize() override {
    ConsoleReporter::Finalize();
    // name: matmul/<impl>/<shape>/threads:<t>
    std::map<std::pair<std::string, int>, std::map<std::string, Summary>> rows;
    for (const auto& [name, v] : medians()) {
      std::vector<std::string> parts;
      std::stringstream ss(name);
      for (std::string p; std::getline(ss, p, '/');) parts.push_back(p);
      if (parts.size() >= 4)
        rows[{parts[2], std::stoi(parts[3].substr(parts[3].find(':') + 1))}][parts[1]] = {
            v.at("GFLOP/s"), v.at("real_time"), v.at("cpu_time"), best(name, "GFLOP/s")};
    }
    const double ref = peak_.measured > 0 ? peak_.measured : peak_.formula;
    std::printf("\nminipipe GEMM: %s\n", kBackend);
    print_peak(peak_);
    std::printf("GFLOP/s: median and best over the repetitions; ratio = minipipe / openblas (medians); %%peak = "
                "median / (threads x %.1f GFLOP/s, the %s peak per core)\n\n",
                ref, peak_.measured > 0 ? "measured" : "formula");
    std::printf("%-9s %3s %9s %9s %7s %8s %8s %8s %8s %5s %5s\n", "shape", "thr", "minipipe", "openblas", "ratio",
                "best mp", "best ob", "%peak mp", "%peak ob", "busy", "busy");
    for (const std::string& shape : shape_order_)
      for (int t = 1; t <= 64; ++t) {
        auto row = rows.find({shape, t});
        if (row == rows.end()) continue;
        const Summary mp = row->second["minipipe"], ob = row->second["openblas"];
        std::printf("%-9s %3d %9.1f %9.1f %7.3f %8.1f %8.1f %7.1f%% %7.1f%% %5.2f %5.2f\n", shape.c_str(), t, mp.gflops,
                    ob.gflops, mp.gflops / ob.gflops, mp.best, ob.best, 100 * mp.gflops / (t * ref),
                    100 * ob.gflops / (t * ref), mp.cpu / (mp.real * t), ob.cpu / (ob.real * t));
      }
  }

 private:
  Peak peak_;
  std::vector<std::string> shape_order_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"minipipe matmul vs OpenBLAS cblas_sgemm, GFLOP/s"};
  std::vector<int> threads = {1, 2};
  bool no_probe = false;
  app.add_option("--threads", threads, "thread counts to run (each benchmark sets its own)")->delimiter(',');
  app.add_flag("--no-probe", no_probe, "skip the FMA peak probe");
  CLI11_PARSE(app, argc, argv);

  Peak peak = read_cpuinfo();
  if (!no_probe) peak.measured = fma_probe_gflops();
  std::printf("minipipe GEMM: %s\n", kBackend);
  print_peak(peak);
  if (!no_probe) {  // the two checks behind docs/performance.md's reading of the peak
    std::printf("peak, measured: the same probe on 256-bit (ymm) registers = %.1f GFLOP/s\n", fma_probe_ymm_gflops());
    std::printf("clock, measured: a dependent-add loop (1 add per cycle) = %.2f GHz\n", clock_probe_ghz());
  }

  set_num_threads(1);
  for (const GemmShape& s : shapes()) {
    const double err = max_error(s);
    MP_CHECK(err < 1e-5, "bench_matmul: ", s.name, " differs from cblas_sgemm by ", err, " (relative to k)");
  }
  std::printf("check: minipipe matmul == cblas_sgemm within 1e-5 * k on every shape\n\n");

  for (const GemmShape& s : shapes())
    for (int t : threads)
      for (const char* impl : {"minipipe", "openblas"}) {
        const std::string name = "matmul/" + std::string(impl) + "/" + s.name + "/threads:" + std::to_string(t);
        auto* b = std::string(impl) == "minipipe" ? benchmark::RegisterBenchmark(name.c_str(), bm_minipipe, s, t)
                                                   : benchmark::RegisterBenchmark(name.c_str(), bm_openblas, s, t);
        b->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
      }
  std::vector<std::string> order;
  for (const GemmShape& s : shapes()) order.push_back(s.name);
  TableReporter reporter(peak, order);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
