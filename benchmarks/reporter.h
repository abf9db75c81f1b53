// The console reporter the benchmarks share: it keeps each repetition's counters and times, shows
// only the medians on the console, and hands the medians and the best to a subclass's table.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace minipipe::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

class MedianReporter : public benchmark::ConsoleReporter {
 public:
  // One run's values: each counter by name, and "real_time", "cpu_time" per iteration.
  using Values = std::map<std::string, double>;

  // Keeps the runs that have all these counters.
  explicit MedianReporter(std::vector<std::string> counters) : counters_(std::move(counters)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    bool has_median = false;
    for (const Run& r : runs) {
      if (r.error_occurred || !std::ranges::all_of(counters_, [&](const auto& c) { return r.counters.count(c); }))
        continue;
      Values v = {{"real_time", r.GetAdjustedRealTime()}, {"cpu_time", r.GetAdjustedCPUTime()}};
      for (const std::string& c : counters_) v[c] = r.counters.at(c).value;
      if (r.run_type == Run::RT_Iteration) samples_[r.run_name.str()].push_back(v);
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median") {
        aggregates_[r.run_name.str()] = v;
        has_median = true;
      }
    }
    // Console: the median of each benchmark when there are repetitions, else its one run.
    std::vector<Run> shown;
    for (const Run& r : runs)
      if (has_median ? r.aggregate_name == "median" : r.run_type == Run::RT_Iteration) shown.push_back(r);
    ConsoleReporter::ReportRuns(shown);
  }

 protected:
  // Per benchmark (run name): the median of each value over the repetitions (Google Benchmark's
  // own median where only the aggregates were reported).
  std::map<std::string, Values> medians() const {
    std::map<std::string, Values> out = aggregates_;
    for (const auto& [name, runs] : samples_)
      for (const auto& [key, _] : runs.front()) {
        std::vector<double> column;
        for (const Values& v : runs) column.push_back(v.at(key));
        out[name][key] = median(column);
      }
    return out;
  }

  // The best (largest) value of a counter over a benchmark's repetitions; NAN if none was kept.
  double best(const std::string& name, const std::string& counter) const {
    auto it = samples_.find(name);
    if (it == samples_.end()) return NAN;
    double b = -INFINITY;
    for (const Values& v : it->second) b = std::max(b, v.at(counter));
    return b;
  }

 private:
  std::vector<std::string> counters_;
  std::map<std::string, Values> aggregates_;              // Google Benchmark's "median" aggregate
  std::map<std::string, std::vector<Values>> samples_;  // one per repetition
};

}  // namespace minipipe::bench
