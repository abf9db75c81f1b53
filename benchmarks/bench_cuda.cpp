// bench_cuda: the CUDA backend's kernels on one GPU — GB/s of the memory-bound ops (copy, add, exp,
// GELU, softmax, LayerNorm, AdamW, SGD) and TFLOP/s of float32 GEMMs (and TF32 with --tf32), each next
// to the device's peak computed from its properties. Timed with CUDA events on the compute stream:
// the median of --reps runs after --warmup; then the caching allocator's counters. Prints "no CUDA
// device" (and exits 0) where there is none.
// Run: build/bench_cuda [--device 0] [--reps 50] [--tf32]; scripts/gpu_check.sh runs it.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

#ifdef MINIPIPE_CUDA
#include "tensor/cuda/context.h"
#include "tensor/cuda/runtime.h"
#endif

using namespace minipipe;

#ifdef MINIPIPE_CUDA
namespace {

struct Peaks {
  double gbps = 0;    // DRAM: 2 (double data rate) x memory clock x bus width
  double tflops = 0;  // float32 FMA: SMs x 128 lanes x 2 flops x core clock (Ampere / Hopper)
};

Peaks peaks(int device) {
  int sms = 0, clock_khz = 0, mem_khz = 0, bus_bits = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
  return {2.0 * mem_khz * 1e3 * bus_bits / 8 / 1e9, sms * 128.0 * 2 * clock_khz * 1e3 / 1e12};
}

// The median milliseconds of `reps` calls of fn, each between two events on the compute stream.
double median_ms(int device, int warmup, int reps, const std::function<void()>& fn) {
  cudaStream_t s = cuda::compute_stream(device);
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  std::nth_element(ms.begin(), ms.begin() + static_cast<long>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace
#endif

int main(int argc, char** argv) {
  CLI::App app{"minipipe's CUDA kernels: GB/s and TFLOP/s next to the GPU's peak"};
  int device = 0, reps = 50, warmup = 5;
  bool tf32 = false;
  app.add_option("--device", device, "CUDA device index")->capture_default_str();
  app.add_option("--reps", reps, "timed runs per op (the median is printed)")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed runs first")->capture_default_str();
  app.add_flag("--tf32", tf32, "also time GEMMs with TF32 tensor cores");
  CLI11_PARSE(app, argc, argv);
  if (cuda_device_count() == 0) {
    std::printf("no CUDA device (%s)\n", cuda_is_built() ? "cudaGetDeviceCount found none, or no usable driver"
                                                          : "this build has no CUDA backend");
    return 0;
  }
#ifdef MINIPIPE_CUDA
  try {
    const Device d = parse_device("cuda:" + std::to_string(device));
    const Peaks peak = peaks(device);
    std::printf("%s (cuda:%d): peak %.0f GB/s DRAM, %.1f TFLOP/s float32 FMA (from its properties)\n",
                cuda::device_name(device).c_str(), device, peak.gbps, peak.tflops);
    std::printf("median of %d runs after %d warm-up runs, CUDA events on the compute stream\n\n", reps, warmup);
    std::printf("%-22s %14s %10s %10s %7s\n", "op", "shape", "ms", "GB/s", "%peak");
    for (int64_t rows : {int64_t{1024}, int64_t{16384}}) {
      const int64_t C = 1024, n = rows * C;
      const Tensor x = randn({rows, C}).to(d), y = randn({rows, C}).to(d), w = randn({C}).to(d), b = randn({C}).to(d);
      const Tensor m = zeros({rows, C}, {DType::Float32, d}), v = zeros({rows, C}, {DType::Float32, d});
      const double f = 4.0 * static_cast<double>(n);  // bytes of one float32 tensor of the shape
      struct Row {
        const char* name;
        double bytes;
        std::function<void()> run;
      };
      const std::vector<Row> table = {
          {"copy", 2 * f, [&] { ops::clone(x); }},
          {"add", 3 * f, [&] { ops::add(x, y); }},
          {"add (bias)", 2 * f, [&] { ops::add(x, b); }},
          {"exp", 2 * f, [&] { ops::exp(x); }},
          {"gelu", 2 * f, [&] { ops::gelu(x); }},
          {"softmax (rows)", 2 * f, [&] { ops::softmax(x, 1); }},
          {"layernorm", 2 * f, [&] { ops::layernorm(x, w, b, 1e-5); }},
          {"sum (rows)", f, [&] { ops::sum(x, {1}); }},
          {"adamw step", 7 * f, [&] {
             ops::adamw_step_(x, y, m, v, {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
                                          .step = 1});
           }},
          {"sgd step (momentum)", 5 * f, [&] { ops::sgd_step_(x, y, m, {.lr = 1e-4, .momentum = 0.9}); }},
      };
      for (const Row& r : table) {
        const double ms = median_ms(device, warmup, reps, r.run);
        const double gbps = r.bytes / (ms * 1e-3) / 1e9;
        std::printf("%-22s %14s %10.4f %10.1f %6.1f%%\n", r.name, shape_str({rows, C}).c_str(), ms, gbps,
                    100 * gbps / peak.gbps);
      }
    }
    std::printf("\n%-22s %14s %10s %10s %7s\n", "GEMM (a @ b)", "n = k = m", "ms", "TFLOP/s", "%peak");
    for (bool use_tf32 : {false, true}) {
      if (use_tf32 && !tf32) continue;
      cuda::set_allow_tf32(use_tf32);
      for (int64_t n : {int64_t{512}, int64_t{1024}, int64_t{2048}, int64_t{4096}, int64_t{8192}}) {
        const Tensor a = randn({n, n}).to(d), bm = randn({n, n}).to(d);
        const double ms = median_ms(device, warmup, reps, [&] { ops::matmul(a, bm); });
        const double tflops = 2.0 * n * n * n / (ms * 1e-3) / 1e12;
        std::printf("%-22s %14lld %10.4f %10.2f %6.1f%%\n", use_tf32 ? "float32, TF32 cores" : "float32",
                    static_cast<long long>(n), ms, tflops, 100 * tflops / peak.tflops);
      }
    }
    cuda::set_allow_tf32(false);
    const cuda::AllocatorStats mem = cuda::allocator_stats(device);
    std::printf("\ncaching allocator on cuda:%d: peak %.1f MiB in blocks in use, %.1f MiB cached now, "
                "%lld cudaMalloc calls, %lld blocks reused\n",
                device, static_cast<double>(mem.peak_in_use) / (1 << 20), static_cast<double>(mem.cached) / (1 << 20),
                static_cast<long long>(mem.device_allocs), static_cast<long long>(mem.reuses));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: error: %s\n", e.what());
    return 1;
  }
#endif
  return 0;
}
