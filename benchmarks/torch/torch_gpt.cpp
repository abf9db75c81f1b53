// torch_gpt: the libtorch twin of benchmarks/bench_gpt.cpp — one whole GPT training step (forward,
// loss, zero_grad, backward, clip to norm 1, AdamW) on a fixed batch: the same models (nn/transformer.h's
// structure: token + position embedding, pre-LN blocks with a fused QKV Linear, causal attention,
// GELU-tanh MLP 4x, final LayerNorm, untied LM head without bias), the same AdamW groups and
// hyperparameters, benchmark names and timing. Attention is nanoGPT's composed one (q k^T, mask,
// softmax, att v): libtorch 1.13 has no public fused attention.
// Built with -DMINIPIPE_LIBTORCH=ON; run: build-bench/torch_gpt [--threads 1,2], or through
// benchmarks/run_benchmarks.sh --libtorch.
#include <CLI/CLI.hpp>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "benchmarks/reporter.h"
#include "benchmarks/torch/torch_common.h"
#include "benchmarks/workloads.h"

namespace {

using Model = minipipe::bench::GptWorkload;
// bench_gpt's models (its composed-attention A/B row is minipipe-only).
const std::vector<Model>& kModels = minipipe::bench::kGptWorkloads;
constexpr int64_t kVocab = minipipe::bench::kGptVocab;

// Pre-LN block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)).  x: [B, T, C] -> [B, T, C]
struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t c, int64_t h, int64_t context) : heads(h) {
    ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c}).eps(1e-5)));
    qkv = register_module("qkv", torch::nn::Linear(c, 3 * c));
    proj = register_module("proj", torch::nn::Linear(c, c));
    ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c}).eps(1e-5)));
    fc = register_module("fc", torch::nn::Linear(c, 4 * c));
    fc_proj = register_module("fc_proj", torch::nn::Linear(4 * c, c));
    future = torch::ones({context, context}, torch::kBool).triu(1);  // true above the diagonal
  }

  // x: [B, T, C] -> qkv [B, T, 3C] -> q, k, v [B, H, T, hd] -> softmax(q k^T / sqrt(hd)) v
  torch::Tensor attention(const torch::Tensor& x) {
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2), hd = C / heads;
    auto parts = qkv->forward(x).split(C, 2);
    auto heads_of = [&](const torch::Tensor& t) { return t.view({B, T, heads, hd}).transpose(1, 2); };
    torch::Tensor q = heads_of(parts[0]), k = heads_of(parts[1]), v = heads_of(parts[2]);
    torch::Tensor att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hd)));
    att = torch::softmax(att.masked_fill(future.narrow(0, 0, T).narrow(1, 0, T), -INFINITY), -1);
    return proj->forward(torch::matmul(att, v).transpose(1, 2).contiguous().view({B, T, C}));
  }

  torch::Tensor forward(torch::Tensor x) {
    x = x + attention(ln_1->forward(x));
    return x + fc_proj->forward(torch::gelu(fc->forward(ln_2->forward(x)), "tanh"));
  }

  int64_t heads;
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, fc{nullptr}, fc_proj{nullptr};
  torch::Tensor future;  // [context, context] causal mask
};
TORCH_MODULE(Block);

// [embedding, blocks, LayerNorm, LM head]: tokens [B, T] -> logits [B, T, V]
struct GPTImpl : torch::nn::Module {
  explicit GPTImpl(const Model& m) {
    wte = register_module("wte", torch::nn::Embedding(kVocab, m.d_model));
    wpe = register_module("wpe", torch::nn::Embedding(m.context, m.d_model));
    for (int64_t i = 0; i < m.layers; ++i) blocks.push_back(register_module("h" + std::to_string(i), Block(m.d_model, m.heads, m.context)));
    ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({m.d_model}).eps(1e-5)));
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(m.d_model, kVocab).bias(false)));
    // GPT-2 init as make_gpt: matmul and embedding weights N(0, 0.02), residual projections
    // N(0, 0.02 / sqrt(2 L)), biases 0, LayerNorm 1 and 0 (as constructed).
    torch::NoGradGuard guard;
    const double resid = 0.02 / std::sqrt(2.0 * static_cast<double>(m.layers));
    for (auto& item : named_parameters()) {
      const std::string& name = item.key();
      torch::Tensor& p = item.value();
      if (name.find("ln_") != std::string::npos) continue;
      const bool is_resid = name.ends_with("proj.weight");
      if (name.ends_with("bias")) p.zero_();
      else p.normal_(0.0, is_resid ? resid : 0.02);
    }
  }

  torch::Tensor forward(const torch::Tensor& tokens) {
    const int64_t T = tokens.size(1);
    torch::Tensor x = wte->forward(tokens) + wpe->weight.narrow(0, 0, T);
    for (auto& b : blocks) x = b->forward(x);
    return lm_head->forward(ln_f->forward(x));
  }

  // AdamW groups as nn::gpt_param_groups: decay on every Linear's weight (LM head included),
  // none on biases, LayerNorm weights and the embedding tables.
  std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> param_groups() {
    std::vector<torch::Tensor> decay, no_decay;
    for (auto& item : named_parameters()) {
      const std::string& name = item.key();
      const bool matmul_weight = name.ends_with(".weight") && name.find("ln_") == std::string::npos &&
                                 name.find("wte") == std::string::npos && name.find("wpe") == std::string::npos;
      (matmul_weight ? decay : no_decay).push_back(item.value());
    }
    return {decay, no_decay};
  }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  std::vector<Block> blocks;
  torch::nn::LayerNorm ln_f{nullptr};
  torch::nn::Linear lm_head{nullptr};
};
TORCH_MODULE(GPT);

void bm_step(benchmark::State& st, Model m, int threads) {
  minipipe::bench::set_torch_threads(threads);
  torch::manual_seed(1);
  GPT model(m);
  // bench_gpt: AdamW(gpt_param_groups(model, 0.1), lr 1e-4, betas (0.9, 0.95), eps 1e-8).
  auto [decay, no_decay] = model->param_groups();
  auto opts = [](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(1e-4).betas({0.9, 0.95}).eps(1e-8).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, opts(0.1));
  groups.emplace_back(no_decay, opts(0.0));
  torch::optim::AdamW opt(groups, torch::optim::AdamWOptions(1e-4).betas({0.9, 0.95}).eps(1e-8));
  torch::Tensor xy = torch::randint(kVocab, {m.batch, m.context + 1}, torch::kLong);
  torch::Tensor x = xy.narrow(1, 0, m.context).contiguous(), y = xy.narrow(1, 1, m.context).contiguous();
  const auto params = model->parameters();

  using clock = std::chrono::steady_clock;
  double fwd = 0, bwd = 0, upd = 0;
  for (auto _ : st) {
    const auto t0 = clock::now();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x).view({-1, kVocab}), y.view({-1}));
    const auto t1 = clock::now();
    minipipe::bench::zero_grad_to_none(opt);
    loss.backward();
    const auto t2 = clock::now();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    const auto t3 = clock::now();
    fwd += std::chrono::duration<double>(t1 - t0).count();
    bwd += std::chrono::duration<double>(t2 - t1).count();
    upd += std::chrono::duration<double>(t3 - t2).count();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  // FLOPs per token = 6 N + 12 L T C, N = weights entering a matmul (Linear weights and biases, LM head).
  int64_t n_matmul = 0, n_params = 0;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    n_params += item.value().numel();
    if (name.find("ln_") == std::string::npos && name.find("wte") == std::string::npos &&
        name.find("wpe") == std::string::npos)
      n_matmul += item.value().numel();
  }
  const double flops_per_token = 6.0 * static_cast<double>(n_matmul) + 12.0 * static_cast<double>(m.layers * m.context * m.d_model);
  const double tokens = static_cast<double>(m.batch * m.context);
  const double n = static_cast<double>(st.iterations());
  st.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GFLOP/s"] = benchmark::Counter(1e-9 * flops_per_token * tokens, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["params"] = static_cast<double>(n_params);
  st.counters["fwd_ms"] = 1e3 * fwd / n;
  st.counters["bwd_ms"] = 1e3 * bwd / n;
  st.counters["opt_ms"] = 1e3 * upd / n;
}

// The table: medians over the repetitions, as bench_gpt's (without the peak columns).
class TableReporter : public minipipe::bench::MedianReporter {
 public:
  explicit TableReporter(std::vector<int> threads)
      : MedianReporter({"tokens/s", "GFLOP/s", "params", "fwd_ms", "bwd_ms", "opt_ms"}), threads_(std::move(threads)) {}

  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto res = medians();
    std::printf("\nlibtorch GPT step; FLOPs per token = 6 N + 12 L T C. busy = CPU time / (wall x threads)\n\n");
    std::printf("%-22s %3s %9s %10s %8s %8s %8s %8s %6s\n", "model", "thr", "params", "tokens/s", "GFLOP/s", "fwd ms",
                "bwd ms", "opt ms", "busy");
    for (const Model& m : kModels)
      for (int t : threads_) {
        const std::string prefix = "gpt_step/" + m.name + "/threads:" + std::to_string(t) + "/";
        auto it = std::find_if(res.begin(), res.end(), [&](const auto& kv) { return kv.first.starts_with(prefix); });
        if (it == res.end()) continue;
        const auto& r = it->second;
        std::printf("%-22s %3d %9.0f %10.0f %8.1f %8.1f %8.1f %8.1f %6.2f\n", m.name.c_str(), t, r.at("params"),
                    r.at("tokens/s"), r.at("GFLOP/s"), r.at("fwd_ms"), r.at("bwd_ms"), r.at("opt_ms"),
                    r.at("cpu_time") / (r.at("real_time") * t));
      }
  }

 private:
  std::vector<int> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);  // takes the --benchmark_* flags, leaves ours
  CLI::App app{"libtorch GPT training step: tokens/s, the twin of bench_gpt"};
  std::vector<int> threads = {1, 2};
  bool no_probe = false;
  app.add_option("--threads", threads, "thread counts to run")->delimiter(',')->check(CLI::PositiveNumber);
  app.add_flag("--no-probe", no_probe, "accepted for bench_gpt's command line (no probe here)");
  CLI11_PARSE(app, argc, argv);

  minipipe::bench::init_torch();
  for (const Model& m : kModels)
    for (int t : threads) {
      const std::string name = "gpt_step/" + m.name + "/threads:" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), bm_step, m, t)
          ->UseRealTime()
          ->MeasureProcessCPUTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(2.0);
    }
  TableReporter reporter(threads);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
