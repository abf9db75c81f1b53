// show_partition: cut a real model into pipeline stages and say why. Profiles every layer's
// forward + backward on one micro-batch, then prints the uniform, by_params and by_time
// partitions side by side with per-stage parameters, measured cost and the bytes each cut sends.
//   build/show_partition --model mlp --stages 3
//   build/show_partition --model gpt --stages 4 --microbatch 8
#include <CLI/CLI.hpp>
#include <cstdio>

#include "nn/nn.h"
#include "nn/transformer.h"
#include "parallel/profile.h"
#include "tensor/threads.h"

using namespace minipipe;

namespace {

struct Config {
  std::string model = "mlp";
  int stages = 3;
  int64_t microbatch = 32;
  int repeats = 5;
  int threads = 1;
  int64_t gpt_layers = 6;
};

// train_mlp's model: 784-512-256-10 with ReLUs, five layers to cut.
std::shared_ptr<nn::Sequential> make_mlp() {
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(784, 512), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(512, 256),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(256, 10)});
}

void show(const char* name, const parallel::Partition& p, const parallel::LayerCosts& costs) {
  std::printf("\n%s:\n%s", name, parallel::report(p, costs).table().c_str());
}

int run(const Config& cfg) {
  set_num_threads(cfg.threads);
  MP_CHECK(cfg.model == "mlp" || cfg.model == "gpt", "--model must be mlp or gpt, got ", cfg.model);
  MP_CHECK(cfg.microbatch >= 1, "--microbatch must be positive, got ", cfg.microbatch);
  manual_seed(0);
  std::shared_ptr<nn::Sequential> model;
  Tensor sample;
  if (cfg.model == "mlp") {
    model = make_mlp();
    sample = randn({cfg.microbatch, 784});
  } else {
    nn::GPTConfig g;
    g.n_layer = cfg.gpt_layers;
    g.context = 64;
    model = nn::make_gpt(g);
    Generator gen(1);
    std::vector<int64_t> ids(static_cast<size_t>(cfg.microbatch * g.context));
    for (auto& i : ids) i = static_cast<int64_t>(gen.below(static_cast<uint64_t>(g.vocab_size)));
    sample = from_vector(ids, {cfg.microbatch, g.context});
  }
  MP_CHECK(cfg.stages >= 1 && static_cast<size_t>(cfg.stages) <= model->size(), "--stages ", cfg.stages,
           ": the ", cfg.model, " has ", model->size(), " layers, so 1..", model->size(), " stages");
  std::printf("model %s: %zu layers, %lld parameters; micro-batch %s; %d stages\n", cfg.model.c_str(), model->size(),
              static_cast<long long>(model->num_parameters()), shape_str(sample.sizes()).c_str(), cfg.stages);
  auto costs = parallel::profile_layers(*model, sample, {.warmup = 1, .repeats = cfg.repeats});
  std::printf("\nper layer (cost = median seconds of forward + backward over %d runs):\n", cfg.repeats);
  std::printf("layer  %-18s %12s %14s %14s\n", "type", "params", "cost", "output bytes");
  for (size_t i = 0; i < model->size(); ++i)
    std::printf("%-6zu %-18s %12lld %14.6g %14lld\n", i, (*model)[i]->type_name().c_str(),
                static_cast<long long>(costs.params[i]), costs.cost[i], static_cast<long long>(costs.output_bytes[i]));
  show("uniform (equal layer counts)", parallel::uniform(costs.num_layers(), cfg.stages), costs);
  show("by_params (fewest parameters on the heaviest stage)", parallel::by_params(costs.params, cfg.stages), costs);
  show("by_time (slowest stage as fast as possible)", parallel::by_cost(costs.cost, cfg.stages), costs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  minipipe::init_runtime(argv);  // passive OpenMP waits unless the user chose (tensor/threads.h)
  CLI::App app{"Profile a model and show how the partitioner cuts it into pipeline stages"};
  Config cfg;
  app.add_option("--model", cfg.model, "mlp (train_mlp's) or gpt (train_gpt's blocks)")->capture_default_str();
  app.add_option("--stages", cfg.stages, "pipeline stages")->capture_default_str();
  app.add_option("--microbatch", cfg.microbatch, "rows (mlp) or sequences (gpt) per micro-batch")->capture_default_str();
  app.add_option("--repeats", cfg.repeats, "timed runs per layer (the median is used)")->capture_default_str();
  app.add_option("--threads", cfg.threads, "intra-op threads")->capture_default_str();
  app.add_option("--gpt-layers", cfg.gpt_layers, "transformer blocks in the gpt model")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "show_partition: error: %s\n", e.what());
    return 1;
  }
}
