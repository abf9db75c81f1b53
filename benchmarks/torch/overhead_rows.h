// The rows of the per-call overhead benchmark and their table, shared by both sides so the names
// and the printed lines match: benchmarks/bench_overhead.cpp (minipipe) and torch_overhead.cpp
// (libtorch). Header-only on Google Benchmark; run_benchmarks.sh --libtorch pairs the rows by name.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "benchmarks/reporter.h"

namespace minipipe::bench {

enum class OverheadRow { AddNoGrad, AddGrad, LinearNoGrad, LinearGrad, LinearFwdBwd, TrainStep };

struct OverheadRowInfo {
  OverheadRow row;
  const char* name;
  const char* what;
};

inline const std::vector<OverheadRowInfo>& overhead_rows() {
  static const std::vector<OverheadRowInfo> rows = {
      {OverheadRow::AddNoGrad, "add/nograd", "a + b, 1 element each, no input requires grad"},
      {OverheadRow::AddGrad, "add/grad", "a + b, both require grad: one graph node recorded"},
      {OverheadRow::LinearNoGrad, "linear8/fwd/nograd", "Linear(8, 8) on x [1, 8] under NoGradGuard"},
      {OverheadRow::LinearGrad, "linear8/fwd/grad", "the same, recording the graph"},
      {OverheadRow::LinearFwdBwd, "linear8/fwd+bwd", "sum(Linear(x)).backward(), gradients accumulating"},
      {OverheadRow::TrainStep, "linear8/step", "cross_entropy, zero_grad (to none), backward, AdamW step"},
  };
  return rows;
}

inline std::string overhead_name(const OverheadRowInfo& r, int threads) {
  return "overhead/" + std::string(r.name) + "/threads:" + std::to_string(threads);
}

// fn(benchmark::State&, OverheadRow, int threads): one benchmark per row and thread count.
template <class Fn>
void register_overhead_rows(const std::vector<int>& threads, Fn fn) {
  for (const OverheadRowInfo& r : overhead_rows())
    for (int t : threads)
      benchmark::RegisterBenchmark(overhead_name(r, t).c_str(), fn, r.row, t)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
}

// The table: median and best microseconds per call over the repetitions.
class OverheadReporter : public MedianReporter {
 public:
  OverheadReporter(std::string side, std::vector<int> threads)
      : MedianReporter({}), side_(std::move(side)), threads_(std::move(threads)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (!r.error_occurred && r.run_type == Run::RT_Iteration) {
        auto [it, fresh] = fastest_.try_emplace(r.run_name.str(), r.GetAdjustedRealTime());
        if (!fresh) it->second = std::min(it->second, r.GetAdjustedRealTime());
      }
    MedianReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto res = medians();
    std::printf("\n%s per-call overhead: microseconds per call (wall), median and best over the repetitions\n\n",
                side_.c_str());
    std::printf("%-20s %3s %10s %10s  %s\n", "row", "thr", "us/call", "best", "what");
    for (const OverheadRowInfo& r : overhead_rows())
      for (int t : threads_) {
        const std::string name = overhead_name(r, t) + "/real_time";
        auto it = res.find(name);
        if (it == res.end()) continue;
        std::printf("%-20s %3d %10.3f %10.3f  %s\n", r.name, t, it->second.at("real_time"), fastest_.at(name), r.what);
      }
  }

 private:
  std::string side_;
  std::vector<int> threads_;
  std::map<std::string, double> fastest_;  // per run name: the smallest time per call
};

}  // namespace minipipe::bench
