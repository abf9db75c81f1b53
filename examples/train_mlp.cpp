// train_mlp: an MLP (default 784-512-256-10, ReLU) on Fashion-MNIST, trained on one device, as a
// pipeline, with data parallelism, or both: --stages P cuts it into P stages, --dp R replicates the
// pipeline R times on shards of each batch; the P·R ranks are threads with --comm local, processes
// under mpirun with --comm mpi. Each shard goes in --microbatches M, scheduled by --schedule.
// AdamW (or SGD with momentum) with cosine decay; one line per epoch, a live progress line between.
// Run: ./run.sh [--epochs 3] or build/train_mlp --help.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "examples/pipeline_flags.h"
#include "examples/trace_flags.h"
#include "nn/data_loader.h"
#include "nn/idx.h"
#include "nn/nn.h"
#include "tensor/threads.h"

using namespace minipipe;

namespace {

struct Config {
  std::string hidden = "512,256";
  int epochs = 10;
  int64_t max_steps = -1;
  int64_t batch = 128;
  double lr = 1e-3;
  double min_lr = 0.0;
  std::string optimizer = "adamw";
  double momentum = 0.9;
  double weight_decay = 1e-2;
  double dropout = 0.0;
  std::string lr_schedule = "cosine";
  int64_t warmup = 0;
  uint64_t seed = 0;
  std::string data = nn::kFashionMnistDir;
  std::string save, load;
};

std::vector<int64_t> parse_sizes(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    MP_CHECK(!item.empty() && *end == '\0' && v > 0, "--hidden: expected positive integers separated by commas, got '",
             s, "'");
    out.push_back(v);
  }
  return out;
}

// Weights drawn from a generator seeded with `seed`: the same model on every rank and for every P.
std::shared_ptr<nn::Sequential> make_mlp(int64_t in, const std::vector<int64_t>& hidden, int64_t out, double dropout,
                                         uint64_t seed) {
  Generator init(seed);
  auto model = std::make_shared<nn::Sequential>();
  int64_t width = in;
  for (int64_t h : hidden) {
    model->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(width, h).generator(&init)));
    model->push_back(std::make_shared<nn::ReLU>());
    if (dropout > 0) model->push_back(std::make_shared<nn::Dropout>(dropout));
    width = h;
  }
  model->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(width, out).generator(&init)));
  return model;
}

// Test accuracy, 1000 images at a time through the pipeline (forward only, eval mode).
double accuracy(parallel::Pipe& pipe, const nn::Dataset& test) {
  int64_t correct = 0;
  const int64_t n = test.inputs.size(0), chunk = 1000;
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t len = std::min(chunk, n - s);
    correct += static_cast<int64_t>(
        pipe.evaluate(ops::narrow(test.inputs, 0, s, len), ops::narrow(test.targets, 0, s, len),
                      [](const Tensor& out, const Tensor& y) { return ops::sum(ops::eq(argmax(out, 1), y)).item(); }));
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Config& cfg, const examples::PipelineFlags& flags, const examples::TraceFlags& trace,
        const std::string& fingerprint) {
  MP_CHECK(cfg.epochs > 0, "--epochs must be positive, got ", cfg.epochs);
  MP_CHECK(cfg.batch > 0, "--batch must be positive, got ", cfg.batch);
  MP_CHECK(cfg.optimizer == "adamw" || cfg.optimizer == "sgd", "--optimizer must be adamw or sgd, got ", cfg.optimizer);
  MP_CHECK(cfg.lr_schedule == "cosine" || cfg.lr_schedule == "constant",
           "--lr-schedule must be cosine or constant, got ", cfg.lr_schedule);
  flags.check();
  flags.check_batch(cfg.batch);

  nn::Dataset train = nn::load_fashion_mnist(cfg.data, true);
  nn::Dataset test = nn::load_fashion_mnist(cfg.data, false);
  std::vector<std::shared_ptr<nn::Sequential>> replicas;  // one per replica this process runs
  for (int i = 0; i < flags.model_copies(); ++i)
    replicas.push_back(make_mlp(train.inputs.size(1), parse_sizes(cfg.hidden), 10, cfg.dropout, cfg.seed));
  const int64_t shard = cfg.batch / flags.dp;
  const Tensor profile_sample = ops::narrow(train.inputs, 0, 0, shard / flags.microbatches);

  // Every rank runs this: a thread each under --comm local, a process each under mpirun.
  parallel::launch(flags.launch(), [&](parallel::RankContext& ctx) {
    const bool lead = ctx.comm.rank() == 0;
    parallel::Grid grid = flags.grid(ctx.comm);
    auto model = replicas[static_cast<size_t>(flags.copy_of(ctx.comm.rank(), grid))];
    parallel::Pipe pipe(model, *grid.pipeline,
                        flags.pipe(ctx, grid, cfg.seed, [](const Tensor& out, const Tensor& y) { return cross_entropy(out, y); },
                                   profile_sample, fingerprint));
    parallel::DataParallel dp(pipe.parameters(), *grid.data, flags.data_parallel());
    if (!cfg.load.empty()) {
      pipe.load(cfg.load);
      if (lead) std::printf("loaded %s\n", cfg.load.c_str());
    }
    if (lead)
      std::printf("model: %s\nparameters: %lld, train %lld / test %lld images\n", model->repr().c_str(),
                  static_cast<long long>(model->num_parameters()), static_cast<long long>(train.inputs.size(0)),
                  static_cast<long long>(test.inputs.size(0)));
    examples::print_start(ctx, grid, pipe);
    examples::TraceFlags traced = trace;  // replica 0's pipeline traces; the others run the same steps
    if (grid.replica != 0) traced.dir.clear();
    examples::StepTracer tracer(traced, *grid.pipeline);

    std::unique_ptr<optim::Optimizer> opt;  // over this rank's parameters (with --zero1, its share)
    if (cfg.optimizer == "adamw")
      opt = std::make_unique<optim::AdamW>(dp.optimizer_params(),
                                           optim::AdamWOptions{.lr = cfg.lr, .weight_decay = cfg.weight_decay});
    else
      opt = std::make_unique<optim::SGD>(dp.optimizer_params(), optim::SGDOptions{.lr = cfg.lr, .momentum = cfg.momentum,
                                                                              .weight_decay = cfg.weight_decay,
                                                                              .nesterov = true});
    if (pipe.asynchronous()) pipe.set_optimizer(*opt);  // pipedream / 2bw step it inside train_step
    nn::DataLoader loader(train, nn::DataLoaderOptions(cfg.batch).seed(cfg.seed));
    const int64_t steps_per_epoch = loader.num_batches();
    const int64_t total = cfg.max_steps > 0 ? std::min<int64_t>(cfg.max_steps, steps_per_epoch * cfg.epochs)
                                            : steps_per_epoch * cfg.epochs;
    trace.check_within(total);
    const bool live = lead && isatty(fileno(stderr));
    const auto t0 = std::chrono::steady_clock::now();
    int64_t step = 0, skipped = 0;
    double acc = 0;
    for (int epoch = 1; epoch <= cfg.epochs && step < total; ++epoch) {
      const auto te = std::chrono::steady_clock::now();
      loader.reset(epoch);
      double loss_sum = 0;
      int64_t batches = 0, samples = 0;
      while (step < total) {
        auto batch = loader.next();
        if (!batch) break;
        const int64_t rows = batch->size();
        if (rows % (flags.dp * flags.microbatches) != 0) {  // the epoch's short last batch, when it does not split
          ++skipped;
          continue;
        }
        opt->set_lr(cfg.lr_schedule == "cosine" ? optim::cosine_lr(step, total, cfg.lr, cfg.min_lr, cfg.warmup) : cfg.lr);
        dp.zero_grad();  // every gradient: with --zero1 the optimizer holds only a share
        // This replica's shard of the batch; the gradients are averaged over the replicas.
        const int64_t part = rows / flags.dp, first = grid.replica * part;
        const double loss = pipe.train_step(ops::narrow(batch->inputs, 0, first, part),
                                            ops::narrow(batch->targets, 0, first, part), first);
        tracer.after_step(pipe, step + 1, ctx.comm.backend());
        dp.finish_gradients();
        loss_sum += dp.average(loss);
        if (!pipe.asynchronous()) opt->step();
        dp.after_step();
        ++batches;
        ++step;
        samples += batch->size();
        if (live && (batches % 20 == 0))
          std::fprintf(stderr, "\r  epoch %d  batch %lld/%lld  loss %.4f  %.0f samples/s ", epoch,
                       static_cast<long long>(batches), static_cast<long long>(steps_per_epoch), loss_sum / batches,
                       samples / seconds_since(te));
      }
      if (live) std::fprintf(stderr, "\r%80s\r", "");
      const double epoch_s = seconds_since(te);
      acc = accuracy(pipe, test);
      if (lead) {
        std::printf("epoch %2d  train loss %.4f  test acc %.2f%%  %6.0f samples/s  elapsed %.1fs\n", epoch,
                    loss_sum / std::max<int64_t>(batches, 1), 100 * acc, samples / epoch_s, seconds_since(t0));
        std::fflush(stdout);
      }
    }
    examples::print_memory(ctx, pipe, *opt, flags.zero1);
    examples::print_data_parallel(ctx, dp);
    if (lead) {
      if (skipped > 0)
        std::printf("skipped %lld short batches that %d replicas x %d micro-batches do not divide\n",
                    static_cast<long long>(skipped), flags.dp, flags.microbatches);
      std::printf("final test accuracy: %.2f%% after %lld steps\n", 100 * acc, static_cast<long long>(step));
    }
    if (!cfg.save.empty()) {
      if (grid.replica == 0) pipe.save(cfg.save);  // the replicas hold the same weights
      ctx.comm.barrier();
      if (lead) std::printf("saved %s\n", cfg.save.c_str());
    }
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  minipipe::init_runtime(argv);  // passive OpenMP waits unless the user chose (tensor/threads.h)
  CLI::App app{"Train an MLP on Fashion-MNIST with minipipe, on one device or as a pipeline"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  Config cfg;
  examples::PipelineFlags flags;
  app.add_option("--hidden", cfg.hidden, "hidden layer sizes, comma-separated")->capture_default_str();
  app.add_option("--epochs", cfg.epochs, "epochs")->capture_default_str();
  app.add_option("--max-steps", cfg.max_steps, "stop after this many optimizer steps (-1: no limit)")->capture_default_str();
  app.add_option("--batch", cfg.batch, "batch size")->capture_default_str();
  app.add_option("--lr", cfg.lr, "peak learning rate")->capture_default_str();
  app.add_option("--min-lr", cfg.min_lr, "learning rate at the end of the cosine decay")->capture_default_str();
  app.add_option("--lr-schedule", cfg.lr_schedule, "learning-rate schedule: cosine or constant")->capture_default_str();
  app.add_option("--optimizer", cfg.optimizer, "adamw or sgd (Nesterov momentum)")->capture_default_str();
  app.add_option("--momentum", cfg.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", cfg.weight_decay, "weight decay")->capture_default_str();
  app.add_option("--dropout", cfg.dropout, "dropout after each hidden layer")->capture_default_str();
  app.add_option("--warmup", cfg.warmup, "linear warm-up steps")->capture_default_str();
  app.add_option("--seed", cfg.seed, "random seed (init, shuffling, dropout)")->capture_default_str();
  app.add_option("--data", cfg.data, "directory with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--save", cfg.save, "write a safetensors checkpoint here at the end");
  app.add_option("--load", cfg.load, "start from this safetensors checkpoint");
  flags.add_to(app);
  examples::TraceFlags trace;
  trace.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(cfg, flags, trace, examples::fingerprint(app));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_mlp: error: %s\n", e.what());
    return 1;
  }
}
