// The machine's float32 peak, shared by the benchmarks: the formula from /proc/cpuinfo (lanes x
// 2 FMA units x 2 flops x clock) and an FMA probe that measures what one core sustains.
// docs/performance.md explains why the two differ on Zen 4 (512-bit FMAs run as two halves).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace minipipe::bench {

struct Peak {
  std::string model = "?";
  int family = 0;
  double mhz = 0;
  int lanes = 8;             // float32 lanes of the widest vector unit the flags advertise
  double formula = 0;        // lanes × 2 FMA units × 2 flops × clock, GFLOP/s per core
  double zen4 = 0;           // Zen 4 runs 512-bit FMAs as two 256-bit halves: 8 lanes, same formula
  double measured = 0;       // FMA probe below, GFLOP/s on one core
};

inline Peak read_cpuinfo() {
  Peak p;
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  auto value = [](const std::string& l) { return l.substr(l.find(':') + 2); };
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 && p.model == "?") p.model = value(line);
    else if (line.rfind("cpu family", 0) == 0 && p.family == 0) p.family = std::stoi(value(line));
    else if (line.rfind("cpu MHz", 0) == 0 && p.mhz == 0) p.mhz = std::stod(value(line));
    else if (line.rfind("flags", 0) == 0 && line.find(" avx512f") != std::string::npos) p.lanes = 16;
  }
  p.formula = p.lanes * 2 * 2 * p.mhz / 1e3;
  if (p.family == 25 && p.lanes == 16) p.zen4 = 8 * 2 * 2 * p.mhz / 1e3;
  return p;
}

// Twelve independent FMA chains (more than latency 4 × 2 pipes), so the loop runs at the FMA
// units' throughput. Best of five 0.1 s runs: on a shared machine the best is the least disturbed.
// V: the register type (__m512 or __m256), kLanes float32 lanes in it.
template <typename V, int kLanes, typename Set, typename Fma>
double fma_probe(Set set, Fma fma) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    V a[12];
    for (auto& v : a) v = set(1.0f);
    const V m = set(0.999999f), c = set(1e-6f);
    const int64_t iters = 20'000'000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i) {
      for (auto& v : a) v = fma(v, m, c);
      asm volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]), "+v"(a[6]),
                   "+v"(a[7]), "+v"(a[8]), "+v"(a[9]), "+v"(a[10]), "+v"(a[11]));
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 12.0 * iters * kLanes * 2 / s / 1e9);
  }
  return best;
}

// The probe on the widest registers the build targets (0 when built without FMA,
// MINIPIPE_NATIVE=OFF: the formula peak is used).
inline double fma_probe_gflops() {
#if defined(__AVX512F__)
  return fma_probe<__m512, 16>([](float x) { return _mm512_set1_ps(x); },
                               [](__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); });
#elif defined(__FMA__)
  return fma_probe<__m256, 8>([](float x) { return _mm256_set1_ps(x); },
                              [](__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); });
#else
  return 0.0;
#endif
}

// The same probe on 256-bit registers (ymm). On Zen 4 it matches the 512-bit one: both end up on
// the same two 256-bit FMA pipes (docs/performance.md). 0 when built without FMA.
inline double fma_probe_ymm_gflops() {
#if defined(__FMA__)
  return fma_probe<__m256, 8>([](float x) { return _mm256_set1_ps(x); },
                              [](__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); });
#else
  return 0.0;
#endif
}

// The clock a busy core really runs at (a KVM guest's cpu MHz is the nominal one): a chain of
// dependent integer adds retires one add per cycle. Best of five runs of ~0.1 s.
inline double clock_probe_ghz() {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    uint64_t x = 0;
    const int64_t iters = 50'000'000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i)
      asm volatile(
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
          : "+r"(x));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 8.0 * iters / s / 1e9);
  }
  return best;
}

inline void print_peak(const Peak& p) {
  std::printf("CPU: %s (family %d), cpu MHz %.0f (the nominal clock a KVM guest reports, not the boost)\n",
              p.model.c_str(), p.family, p.mhz);
  std::printf("peak, formula:  %d lanes x 2 FMA units x 2 flops x %.0f MHz = %.1f GFLOP/s per core\n", p.lanes,
              p.mhz, p.formula);
  if (p.zen4 > 0)
    std::printf("peak, Zen 4:    512-bit FMAs run as two 256-bit halves, 32 flops/cycle: 8 x 2 x 2 x %.0f MHz = "
                "%.1f GFLOP/s per core; ~114 at a 3.55 GHz boost\n",
                p.mhz, p.zen4);
  // The clock the probe implies: its GFLOP/s over the flops per cycle the core really sustains.
  const int flops_per_cycle = p.zen4 > 0 ? 32 : 4 * p.lanes;
  if (p.measured > 0)
    std::printf("peak, measured: FMA probe, one core = %.1f GFLOP/s (= %d flops/cycle at %.2f GHz)\n", p.measured,
                flops_per_cycle, p.measured / flops_per_cycle);
}

}  // namespace minipipe::bench
