// train_mlp: an MLP (default 784-512-256-10, ReLU) on Fashion-MNIST, the foundation's example
// trainer. AdamW (or SGD with momentum) with cosine decay; one line per epoch, a live progress
// line in between. Run: ./run.sh [--epochs 3] or build/train_mlp --help.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "nn/checkpoint.h"
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
  std::string schedule = "cosine";
  int64_t warmup = 0;
  uint64_t seed = 0;
  int threads = 0;
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

std::shared_ptr<nn::Sequential> make_mlp(int64_t in, const std::vector<int64_t>& hidden, int64_t out, double dropout) {
  auto model = std::make_shared<nn::Sequential>();
  int64_t width = in;
  for (int64_t h : hidden) {
    model->push_back(std::make_shared<nn::Linear>(width, h));
    model->push_back(std::make_shared<nn::ReLU>());
    if (dropout > 0) model->push_back(std::make_shared<nn::Dropout>(dropout));
    width = h;
  }
  model->push_back(std::make_shared<nn::Linear>(width, out));
  return model;
}

double accuracy(nn::Sequential& model, const nn::Dataset& test) {
  NoGradGuard no_grad;
  model.eval();
  int64_t correct = 0;
  const int64_t n = test.inputs.size(0), chunk = 1000;
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t len = std::min(chunk, n - s);
    Tensor pred = argmax(model(ops::narrow(test.inputs, 0, s, len)), 1);
    correct += static_cast<int64_t>(ops::sum(ops::eq(pred, ops::narrow(test.targets, 0, s, len))).item());
  }
  model.train();
  return static_cast<double>(correct) / static_cast<double>(n);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Config& cfg) {
  if (cfg.threads > 0) set_num_threads(cfg.threads);
  MP_CHECK(cfg.epochs > 0, "--epochs must be positive, got ", cfg.epochs);
  MP_CHECK(cfg.batch > 0, "--batch must be positive, got ", cfg.batch);
  MP_CHECK(cfg.optimizer == "adamw" || cfg.optimizer == "sgd", "--optimizer must be adamw or sgd, got ", cfg.optimizer);
  MP_CHECK(cfg.schedule == "cosine" || cfg.schedule == "constant", "--schedule must be cosine or constant, got ",
           cfg.schedule);
  manual_seed(cfg.seed);

  nn::Dataset train = nn::load_fashion_mnist(cfg.data, true);
  nn::Dataset test = nn::load_fashion_mnist(cfg.data, false);
  auto model = make_mlp(train.inputs.size(1), parse_sizes(cfg.hidden), 10, cfg.dropout);
  if (!cfg.load.empty()) {
    nn::load(*model, cfg.load);
    std::printf("loaded %s\n", cfg.load.c_str());
  }
  std::printf("model: %s\nparameters: %lld, train %lld / test %lld images, threads %d\n", model->repr().c_str(),
              static_cast<long long>(model->num_parameters()), static_cast<long long>(train.inputs.size(0)),
              static_cast<long long>(test.inputs.size(0)), get_num_threads());

  std::unique_ptr<optim::Optimizer> opt;
  if (cfg.optimizer == "adamw")
    opt = std::make_unique<optim::AdamW>(model->parameters(), optim::AdamWOptions{.lr = cfg.lr, .weight_decay = cfg.weight_decay});
  else
    opt = std::make_unique<optim::SGD>(model->parameters(), optim::SGDOptions{.lr = cfg.lr, .momentum = cfg.momentum,
                                                                              .weight_decay = cfg.weight_decay, .nesterov = true});

  nn::DataLoader loader(train, nn::DataLoaderOptions(cfg.batch).seed(cfg.seed));
  const int64_t steps_per_epoch = loader.num_batches();
  const int64_t total = cfg.max_steps > 0 ? std::min<int64_t>(cfg.max_steps, steps_per_epoch * cfg.epochs)
                                          : steps_per_epoch * cfg.epochs;
  const bool live = isatty(fileno(stderr));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t step = 0;
  double acc = 0;
  for (int epoch = 1; epoch <= cfg.epochs && step < total; ++epoch) {
    const auto te = std::chrono::steady_clock::now();
    loader.reset(epoch);
    double loss_sum = 0;
    int64_t batches = 0, samples = 0;
    while (step < total) {
      auto batch = loader.next();
      if (!batch) break;
      opt->set_lr(cfg.schedule == "cosine" ? optim::cosine_lr(step, total, cfg.lr, cfg.min_lr, cfg.warmup) : cfg.lr);
      Tensor loss = cross_entropy((*model)(batch->inputs), batch->targets);
      opt->zero_grad();
      loss.backward();
      opt->step();
      loss_sum += loss.item();
      ++batches;
      ++step;
      samples += batch->inputs.size(0);
      if (live && (batches % 20 == 0))
        std::fprintf(stderr, "\r  epoch %d  batch %lld/%lld  loss %.4f  %.0f samples/s ", epoch,
                     static_cast<long long>(batches), static_cast<long long>(steps_per_epoch), loss_sum / batches,
                     samples / seconds_since(te));
    }
    if (live) std::fprintf(stderr, "\r%80s\r", "");
    const double epoch_s = seconds_since(te);
    acc = accuracy(*model, test);
    std::printf("epoch %2d  train loss %.4f  test acc %.2f%%  %6.0f samples/s  elapsed %.1fs\n", epoch,
                loss_sum / std::max<int64_t>(batches, 1), 100 * acc, samples / epoch_s, seconds_since(t0));
    std::fflush(stdout);
  }
  std::printf("final test accuracy: %.2f%% after %lld steps\n", 100 * acc, static_cast<long long>(step));
  if (!cfg.save.empty()) {
    nn::save(*model, cfg.save);
    std::printf("saved %s\n", cfg.save.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  minipipe::init_runtime(argv);  // passive OpenMP waits unless the user chose (tensor/threads.h)
  CLI::App app{"Train an MLP on Fashion-MNIST with minipipe"};
  Config cfg;
  app.add_option("--hidden", cfg.hidden, "hidden layer sizes, comma-separated")->capture_default_str();
  app.add_option("--epochs", cfg.epochs, "epochs")->capture_default_str();
  app.add_option("--max-steps", cfg.max_steps, "stop after this many optimizer steps (-1: no limit)")->capture_default_str();
  app.add_option("--batch", cfg.batch, "batch size")->capture_default_str();
  app.add_option("--lr", cfg.lr, "peak learning rate")->capture_default_str();
  app.add_option("--min-lr", cfg.min_lr, "learning rate at the end of the cosine decay")->capture_default_str();
  app.add_option("--optimizer", cfg.optimizer, "adamw or sgd (Nesterov momentum)")->capture_default_str();
  app.add_option("--momentum", cfg.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", cfg.weight_decay, "weight decay")->capture_default_str();
  app.add_option("--dropout", cfg.dropout, "dropout after each hidden layer")->capture_default_str();
  app.add_option("--schedule", cfg.schedule, "cosine or constant")->capture_default_str();
  app.add_option("--warmup", cfg.warmup, "linear warm-up steps")->capture_default_str();
  app.add_option("--seed", cfg.seed, "random seed (init and shuffling)")->capture_default_str();
  app.add_option("--threads", cfg.threads, "intra-op threads (0: OpenMP's default)")->capture_default_str();
  app.add_option("--data", cfg.data, "directory with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--save", cfg.save, "write a safetensors checkpoint here at the end");
  app.add_option("--load", cfg.load, "start from this safetensors checkpoint");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_mlp: error: %s\n", e.what());
    return 1;
  }
}
