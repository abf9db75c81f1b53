// bench_gpt: training throughput of the GPT (nn/transformer.h) — one whole step (forward, loss,
// backward, clip, AdamW) on a fixed batch — for train_gpt's default model and a larger one:
// tokens/s and achieved GFLOP/s next to the machine's float32 peak, 1 and 2 threads.
// FLOPs per token = 6 N + 12 L T C (PaLM appendix B, as llm.c / nanoGPT count them): N = weights
// that enter a matmul (Linear layers and the LM head), L layers, T context, C width.
// Run: build/bench_gpt [--threads 1,2] [--benchmark_repetitions=3 ...]; figures in docs/gpt.md.
#include <immintrin.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <benchmark/benchmark.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "nn/transformer.h"
#include "benchmarks/peak.h"
#include "benchmarks/reporter.h"
#include "benchmarks/workloads.h"
#include "tensor/threads.h"

using namespace minipipe;
using namespace minipipe::bench;

namespace {

using Model = bench::GptWorkload;
// The shared workloads (benchmarks/workloads.h), and an A/B row of our own: the one-node attention's gain.
const std::vector<Model> kModels = [] {
  std::vector<Model> m = bench::kGptWorkloads;
  m.push_back({"L4-C128-H4-T64-B32-composed", 4, 128, 4, 64, 32, false});
  return m;
}();
constexpr int64_t kVocab = bench::kGptVocab;

nn::GPTConfig config_of(const Model& m) {
  nn::GPTConfig c;
  c.vocab_size = kVocab;
  c.n_layer = m.layers;
  c.d_model = m.d_model;
  c.n_head = m.heads;
  c.context = m.context;
  return c;
}

// ---- the benchmark: one training step ----

void bm_step(benchmark::State& st, Model m, int threads) {
  set_num_threads(threads);
  const nn::GPTConfig cfg = config_of(m);
  Generator init(1), data(2);
  auto model = nn::make_gpt(cfg, &init);
  for (size_t i = 1; i + 2 < model->size(); ++i)
    std::static_pointer_cast<nn::TransformerBlock>((*model)[i])->attn->fused = m.fused_attention;
  optim::AdamW opt(nn::gpt_param_groups(*model, 0.1), optim::AdamWOptions{.lr = 1e-4, .beta2 = 0.95});
  std::vector<int64_t> ids(static_cast<size_t>(m.batch * (m.context + 1)));
  for (auto& i : ids) i = static_cast<int64_t>(data.below(kVocab));
  Tensor xy = from_vector(ids, {m.batch, m.context + 1});
  Tensor x = ops::contiguous(ops::narrow(xy, 1, 0, m.context)), y = ops::contiguous(ops::narrow(xy, 1, 1, m.context));

  using clock = std::chrono::steady_clock;
  double fwd = 0, bwd = 0, upd = 0;
  for (auto _ : st) {
    const auto t0 = clock::now();
    Tensor loss = nn::gpt_loss(model->forward(x), y);
    const auto t1 = clock::now();
    opt.zero_grad();
    loss.backward();
    const auto t2 = clock::now();
    optim::clip_grad_norm_(model->parameters(), 1.0);
    opt.step();
    const auto t3 = clock::now();
    fwd += std::chrono::duration<double>(t1 - t0).count();
    bwd += std::chrono::duration<double>(t2 - t1).count();
    upd += std::chrono::duration<double>(t3 - t2).count();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  const double tokens = static_cast<double>(m.batch * m.context);
  const double flops_per_token = static_cast<double>(nn::gpt_flops_per_token(*model, cfg));
  const double n = static_cast<double>(st.iterations());
  st.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] = benchmark::Counter(1e-9 * flops_per_token * tokens, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["MFLOP/token"] = flops_per_token / 1e6;
  st.counters["params"] = static_cast<double>(model->num_parameters());
  st.counters["fwd_ms"] = 1e3 * fwd / n;
  st.counters["bwd_ms"] = 1e3 * bwd / n;
  st.counters["opt_ms"] = 1e3 * upd / n;
}

// ---- the summary: medians over repetitions (or over the single run) ----

class TableReporter : public MedianReporter {
 public:
  TableReporter(Peak peak, std::vector<int> threads)
      : MedianReporter({"tokens/s", "GFLOP/s", "params", "fwd_ms", "bwd_ms", "opt_ms"}), peak_(peak),
        threads_(std::move(threads)) {}

  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto res = medians();
    const double ref = peak_.measured > 0 ? peak_.measured : peak_.formula;
    std::printf("\nFLOPs per token = 6 N + 12 L T C (N = matmul weights incl. LM head; attention's q k^T and att v "
                "over the full T x T)\n");
    std::printf("%%peak = GFLOP/s / (threads x %.1f GFLOP/s per core, the %s float32 peak)\n", ref,
                peak_.measured > 0 ? "measured FMA" : "formula");
    std::printf("busy = process CPU time / (wall time x threads): near 1 when the run had its cores to itself\n\n");
    std::printf("%-22s %3s %9s %10s %8s %7s %8s %8s %8s %6s\n", "model", "thr", "params", "tokens/s", "GFLOP/s",
                "%peak", "fwd ms", "bwd ms", "opt ms", "busy");
    for (const Model& m : kModels)
      for (int t : threads_) {
        // Run names carry suffixes (/min_time:2.000/process_time/real_time): match the prefix.
        const std::string prefix = "gpt_step/" + m.name + "/threads:" + std::to_string(t) + "/";
        auto it = std::find_if(res.begin(), res.end(), [&](const auto& kv) { return kv.first.starts_with(prefix); });
        if (it == res.end()) continue;
        const auto& r = it->second;
        std::printf("%-22s %3d %9.0f %10.0f %8.1f %6.1f%% %8.1f %8.1f %8.1f %6.2f\n", m.name.c_str(), t,
                    r.at("params"), r.at("tokens/s"), r.at("GFLOP/s"), 100 * r.at("GFLOP/s") / (t * ref),
                    r.at("fwd_ms"), r.at("bwd_ms"), r.at("opt_ms"), r.at("cpu_time") / (r.at("real_time") * t));
      }
  }

 private:
  Peak peak_;
  std::vector<int> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"minipipe GPT training step: tokens/s and GFLOP/s"};
  std::vector<int> threads = {1, 2};
  bool no_probe = false;
  app.add_option("--threads", threads, "thread counts to run")->delimiter(',');
  app.add_flag("--no-probe", no_probe, "skip the FMA peak probe");
  CLI11_PARSE(app, argc, argv);

  Peak peak = read_cpuinfo();
  if (!no_probe) peak.measured = fma_probe_gflops();
  std::printf("float32 peak per core: formula %d lanes x 2 FMA units x 2 flops x %.0f MHz = %.1f GFLOP/s", peak.lanes,
              peak.mhz, peak.formula);
  if (peak.family == 25 && peak.lanes == 16)
    std::printf("; Zen 4 runs a 512-bit FMA as two 256-bit halves: %.1f at this nominal clock, ~114 at a "
                "3.55 GHz boost",
                peak.formula / 2);
  std::printf("\n");
  if (peak.measured > 0) std::printf("float32 peak per core, measured (FMA probe): %.1f GFLOP/s\n", peak.measured);

  for (const Model& m : kModels)
    for (int t : threads) {
      const std::string name = "gpt_step/" + m.name + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), bm_step, m, t)
          ->UseRealTime()
          ->MeasureProcessCPUTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(2.0);
    }
  TableReporter reporter(peak, threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
