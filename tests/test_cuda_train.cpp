// Whole-model checks on cuda:0: a small MLP and a tiny GPT (dropout on, counter-based masks) train
// a few AdamW steps from the same initial weights on the CPU and on the GPU, and every step's loss
// must agree to float32 rounding. What scripts/gpu_check.sh runs as its "training step"; skipped
// without a device.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include <filesystem>

#include "nn/checkpoint.h"
#include "nn/nn.h"
#include "nn/transformer.h"
#include "tensor/device.h"

namespace minipipe {
namespace {

// Trains `model` (already on `device`) for `steps` AdamW steps on one fixed batch; the losses.
template <typename Loss>
std::vector<double> train(nn::Module& model, Device device, const Tensor& x, const Tensor& y, int steps, Loss loss_fn) {
  model.to(device);
  optim::AdamW opt(model.parameters(), {.lr = 1e-2, .weight_decay = 0.01});
  const Tensor xd = x.to(device), yd = y.to(device);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tensor loss = loss_fn(model.forward(xd), yd);
    EXPECT_EQ(loss.device(), device);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  return losses;
}

void expect_close(const std::vector<double>& cpu, const std::vector<double>& gpu, double rel, const char* what) {
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    std::printf("%s step %zu: loss cpu %.6f cuda:0 %.6f\n", what, i, cpu[i], gpu[i]);
    EXPECT_NEAR(gpu[i], cpu[i], rel * std::max(1.0, std::abs(cpu[i]))) << what << " step " << i;
  }
}

TEST(CudaTrain, MlpStepsMatchTheCpu) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  auto make = [] {
    manual_seed(3);
    return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::Linear>(20, 64), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(64, 5)});
  };
  Generator gen(4);
  Tensor x = randn({32, 20}, {}, &gen);
  std::vector<int64_t> labels(32);
  for (auto& l : labels) l = static_cast<int64_t>(gen.below(5));
  Tensor y = from_vector(labels);
  auto loss = [](const Tensor& out, const Tensor& t) { return cross_entropy(out, t); };
  auto cpu_model = make(), gpu_model = make();
  expect_close(train(*cpu_model, Device::cpu(), x, y, 5, loss), train(*gpu_model, Device::cuda(0), x, y, 5, loss),
               1e-4, "mlp");
}

TEST(CudaTrain, GptStepsWithDropoutMatchTheCpu) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  nn::GPTConfig cfg;
  cfg.vocab_size = 37;
  cfg.context = 16;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.d_model = 32;
  cfg.dropout = 0.1;
  auto make = [&] {
    Generator g(5);
    auto m = nn::make_gpt(cfg, &g);
    m->set_random_context(std::make_shared<RandomContext>(9));  // counter-based masks: the same on both
    return m;
  };
  Generator gen(6);
  std::vector<int64_t> xs(4 * 16), ys(4 * 16);
  for (auto& t : xs) t = static_cast<int64_t>(gen.below(37));
  for (auto& t : ys) t = static_cast<int64_t>(gen.below(37));
  Tensor x = from_vector(xs, {4, 16}), y = from_vector(ys, {4, 16});
  auto loss = [](const Tensor& logits, const Tensor& t) { return nn::gpt_loss(logits, t); };
  auto cpu_model = make(), gpu_model = make();
  expect_close(train(*cpu_model, Device::cpu(), x, y, 3, loss), train(*gpu_model, Device::cuda(0), x, y, 3, loss),
               2e-3, "gpt");
}

// A model on the GPU saves through the host (the checkpoint holds the same bytes as the CPU
// model's), loads back into a GPU model, and generates the CPU's greedy tokens.
TEST(CudaTrain, CheckpointAndGenerationCrossToTheHost) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  nn::GPTConfig cfg;
  cfg.vocab_size = 23;
  cfg.context = 8;
  cfg.n_layer = 1;
  cfg.n_head = 2;
  cfg.d_model = 16;
  Generator g1(7), g2(7), g3(1), g4(1);
  auto cpu_model = nn::make_gpt(cfg, &g1), gpu_model = nn::make_gpt(cfg, &g2);
  gpu_model->to(Device::cuda(0));
  const std::string path = (std::filesystem::temp_directory_path() / "minipipe_cuda_ckpt.safetensors").string();
  nn::save(*gpu_model, path);
  auto loaded = nn::make_gpt(cfg, &g3);
  loaded->to(Device::cuda(0));
  nn::load(*loaded, path);
  std::filesystem::remove(path);
  const auto want = cpu_model->named_parameters(), got = loaded->named_parameters();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].second.device(), Device::cuda(0));
    EXPECT_EQ(got[i].second.to_vector<float>(), want[i].second.to_vector<float>()) << want[i].first;
  }
  const nn::SampleOptions greedy{.temperature = 0};
  EXPECT_EQ(nn::gpt_generate(*loaded, cfg, {1, 2, 3}, 6, greedy, g4),
            nn::gpt_generate(*cpu_model, cfg, {1, 2, 3}, 6, greedy, g3));
}

}  // namespace
}  // namespace minipipe
