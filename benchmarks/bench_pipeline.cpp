// bench_pipeline: what the pipeline machinery itself costs. The same training step (forward, loss,
// backward, AdamW) written as the plain loop and run through Pipe with one stage and one
// micro-batch — the executor, its stash bookkeeping and records, the loss broadcast — on
// train_mlp's MLP, train_gpt's GPT and a tiny MLP whose step is short enough to show fixed costs.
// Interleaved repetitions; the table prints the medians and pipe / plain.
// Run: build/bench_pipeline [--benchmark_repetitions=9]; see docs/pipeline.md.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <functional>

#include "benchmarks/reporter.h"
#include "nn/nn.h"
#include "nn/transformer.h"
#include "parallel/comm_local.h"
#include "parallel/pipe.h"
#include "tensor/threads.h"

using namespace minipipe;

namespace {

struct Workload {
  std::string name;
  std::function<std::shared_ptr<nn::Sequential>()> model;
  Tensor x, y;
  parallel::LossFn loss;
};

std::shared_ptr<nn::Sequential> mlp(std::vector<int64_t> w) {
  Generator init(0);
  auto m = std::make_shared<nn::Sequential>();
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    if (i > 0) m->push_back(std::make_shared<nn::ReLU>());
    m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(w[i], w[i + 1]).generator(&init)));
  }
  return m;
}

Tensor labels(int64_t n, int64_t classes, Generator& g, Shape shape) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& l : v) l = static_cast<int64_t>(g.below(static_cast<uint64_t>(classes)));
  return from_vector(v, std::move(shape));
}

std::vector<Workload> workloads() {
  Generator g(1);
  auto ce = [](const Tensor& out, const Tensor& y) { return cross_entropy(out, y); };
  std::vector<Workload> w;
  w.push_back({"mlp 784-512-256-10 b128", [] { return mlp({784, 512, 256, 10}); }, randn({128, 784}, {}, &g),
               labels(128, 10, g, {128}), ce});
  nn::GPTConfig cfg;  // train_gpt's default model and batch
  cfg.vocab_size = 114;
  cfg.context = 64;
  cfg.n_layer = 4;
  cfg.n_head = 4;
  cfg.d_model = 128;
  w.push_back({"gpt 4x128 ctx64 b32", [cfg] { Generator init(0); return nn::make_gpt(cfg, &init); },
               labels(32 * 64, 114, g, {32, 64}), labels(32 * 64, 114, g, {32, 64}),
               [](const Tensor& out, const Tensor& y) { return nn::gpt_loss(out, y); }});
  w.push_back({"mlp 64-64-10 b32", [] { return mlp({64, 64, 10}); }, randn({32, 64}, {}, &g), labels(32, 10, g, {32}), ce});
  return w;
}

void bm_plain(benchmark::State& st, const Workload& w) {
  auto model = w.model();
  optim::AdamW opt(model->parameters(), {});
  for (auto _ : st) {
    opt.zero_grad();
    Tensor loss = w.loss(model->forward(w.x), w.y);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item());
  }
}

void bm_pipe(benchmark::State& st, const Workload& w) {
  auto model = w.model();
  auto comms = parallel::make_local_world(1);
  parallel::PipeOptions o;
  o.loss = w.loss;
  parallel::Pipe pipe(model, *comms[0], o);
  optim::AdamW opt(pipe.parameters(), {});
  for (auto _ : st) {
    opt.zero_grad();
    benchmark::DoNotOptimize(pipe.train_step(w.x, w.y));
    opt.step();
  }
}

class TableReporter : public bench::MedianReporter {
 public:
  explicit TableReporter(std::vector<std::string> names) : MedianReporter({}), names_(std::move(names)) {}
  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto res = medians();
    std::printf("\nmedian step time, 1 intra-op thread; pipe = Pipe with 1 stage and 1 micro-batch\n");
    std::printf("%-26s %12s %12s %12s\n", "workload", "plain ms", "pipe ms", "pipe/plain");
    for (const std::string& n : names_) {
      auto a = res.find("plain/" + n + "/real_time"), b = res.find("pipe/" + n + "/real_time");
      if (a == res.end() || b == res.end()) continue;
      const double plain = a->second.at("real_time"), pipe = b->second.at("real_time");
      std::printf("%-26s %12.4f %12.4f %12.3f\n", n.c_str(), plain, pipe, pipe / plain);
    }
  }

 private:
  std::vector<std::string> names_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  set_num_threads(1);
  static const std::vector<Workload> ws = workloads();
  std::vector<std::string> names;
  for (const Workload& w : ws) {
    names.push_back(w.name);
    benchmark::RegisterBenchmark(("plain/" + w.name).c_str(), bm_plain, w)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("pipe/" + w.name).c_str(), bm_pipe, w)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  TableReporter reporter(names);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
