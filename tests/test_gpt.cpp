// Tests of the GPT stack (nn/transformer.h and its layers): parameter names and init, the loss
// at initialisation, a whole-model float64 gradient check, no gradient from the future through
// the whole stack, cutting the Sequential between blocks, weight tying, weight-decay groups,
// FLOPs per token, overfitting a fixed string, and bit-for-bit determinism.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "nn/text_data.h"
#include "nn/transformer.h"
#include "tensor/threads.h"

namespace minipipe::nn {
namespace {

// ctest runs test programs side by side on two cores: one intra-op thread per program, so an
// OpenMP team never waits on a thread the OS has descheduled. (Thread-count independence of the
// kernels is tested in test_transformer_ops.)
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { set_num_threads(1); }
};
const auto* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

GPTConfig tiny_config(int64_t vocab = 11, int64_t context = 8) {
  GPTConfig cfg;
  cfg.vocab_size = vocab;
  cfg.context = context;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.d_model = 16;
  return cfg;
}

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> names;
  for (const auto& [n, _] : m.named_parameters()) names.push_back(n);
  return names;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

Tensor random_tokens(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> ids(static_cast<size_t>(B * T));
  for (auto& i : ids) i = static_cast<int64_t>(gen.below(static_cast<uint64_t>(V)));
  return from_vector(ids, {B, T});
}

// make_gpt draws every weight from the generator it is given and nothing from the default one:
// no hidden write to global state, and the weights do not depend on it.
TEST(GPT, InitDrawsOnlyFromItsGenerator) {
  GPTConfig cfg = tiny_config();
  manual_seed(5);
  const uint64_t next = Generator(default_generator()).next_u64();
  Generator g1(9), g2(9);
  auto a = make_gpt(cfg, &g1);
  EXPECT_EQ(Generator(default_generator()).next_u64(), next);
  manual_seed(6);
  auto b = make_gpt(cfg, &g2);
  for (size_t i = 0; i < a->parameters().size(); ++i)
    EXPECT_EQ(a->parameters()[i].to_vector<float>(), b->parameters()[i].to_vector<float>()) << i;
}

TEST(GPT, LayersAndParameterNames) {
  GPTConfig cfg = tiny_config();
  auto model = make_gpt(cfg);
  ASSERT_EQ(model->size(), static_cast<size_t>(cfg.n_layer + 3));  // embeddings, blocks, ln_f, head
  const auto names = names_of(*model);
  for (const char* n : {"0.wte.weight", "0.wpe.weight", "1.ln_1.weight", "1.ln_1.bias", "1.attn.qkv.weight",
                        "1.attn.qkv.bias", "1.attn.proj.weight", "1.ln_2.weight", "1.mlp.fc.weight",
                        "1.mlp.proj.weight", "2.attn.qkv.weight", "3.weight", "3.bias", "4.weight"})
    EXPECT_TRUE(has(names, n)) << n;
  const int64_t C = cfg.d_model, V = cfg.vocab_size, L = cfg.n_layer;
  const int64_t per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  EXPECT_EQ(model->num_parameters(), V * C + cfg.context * C + L * per_block + 2 * C + V * C);
  Tensor logits = model->forward(random_tokens(3, 5, V, 1));
  EXPECT_EQ(logits.sizes(), Shape({3, 5, V}));
}

TEST(GPT, Gpt2Init) {
  GPTConfig cfg = tiny_config(64, 32);
  cfg.d_model = 64;
  cfg.n_layer = 4;
  Generator gen(3);
  auto model = make_gpt(cfg, &gen);
  auto stddev = [](const Tensor& t) {
    Tensor d = ops::to(t, DType::Float64);
    return std::sqrt(ops::mean(ops::mul(d, d)).item());
  };
  for (const auto& [name, p] : model->named_parameters()) {
    if (name.find("ln") != std::string::npos || name == "5.weight" || name == "5.bias") {
      // LayerNorm: every weight 1 and every bias 0 (not just on average).
      const double want = name.ends_with("weight") ? 1.0 : 0.0;
      EXPECT_EQ(ops::max(ops::abs(ops::add_scalar(ops::to(p, DType::Float64), -want))).item(), 0.0) << name;
    } else if (name.ends_with("bias")) {
      EXPECT_EQ(ops::max(ops::abs(p)).item(), 0.0) << name;
    } else {
      const bool resid = name.ends_with("attn.proj.weight") || name.ends_with("mlp.proj.weight");
      const double expect = resid ? 0.02 / std::sqrt(2.0 * cfg.n_layer) : 0.02;
      EXPECT_NEAR(stddev(p), expect, 0.1 * expect) << name;
    }
  }
}

TEST(GPT, LossAtInitIsCloseToLogVocab) {
  for (int64_t V : {32, 65, 256}) {
    GPTConfig cfg = tiny_config(V, 64);
    cfg.d_model = 64;
    cfg.n_head = 4;
    Generator gen(7);
    auto model = make_gpt(cfg, &gen);
    const double loss = gpt_loss(model->forward(random_tokens(8, 64, V, 1)), random_tokens(8, 64, V, 2)).item();
    EXPECT_NEAR(loss, std::log(static_cast<double>(V)), 0.05) << "vocab " << V;
  }
}

TEST(GPT, WholeModelGradcheckFloat64) {
  GPTConfig cfg = tiny_config(5, 4);
  cfg.n_layer = 1;
  cfg.d_model = 8;
  cfg.dtype = DType::Float64;
  Generator gen(11);
  auto model = make_gpt(cfg, &gen);
  // Larger weights than GPT-2's 0.02 so every path carries a gradient well above the noise.
  for (Tensor p : model->parameters()) ops::copy_(p, ops::add(p, ops::mul_scalar(randn(p.sizes(), DType::Float64, &gen), 0.3)));
  Tensor x = random_tokens(2, 4, 5, 3), y = random_tokens(2, 4, 5, 4);
  auto res = autograd::gradcheck([&](const std::vector<Tensor>&) { return gpt_loss(model->forward(x), y); },
                                 model->parameters());
  EXPECT_TRUE(res.ok) << res.report;
  EXPECT_EQ(res.checked, model->num_parameters());
}

// Cut after the embeddings (as a pipeline would), feed a float activation, and backpropagate
// from the logits at position t only: the activations at positions > t get exactly zero.
TEST(GPT, NoGradientFromTheFutureThroughTheWholeStack) {
  GPTConfig cfg = tiny_config(13, 9);
  cfg.dtype = DType::Float64;
  auto model = make_gpt(cfg);
  auto rest = model->slice(1, model->size());
  const int64_t T = 9;
  for (int64_t t = 0; t < T; ++t) {
    Generator gen(t);
    Tensor h = randn({2, T, cfg.d_model}, DType::Float64, &gen).set_requires_grad(true);
    Tensor logits = rest->forward(h);
    Tensor g = zeros(logits.sizes(), DType::Float64);
    ops::copy_(ops::select(g, 1, t), randn({2, cfg.vocab_size}, DType::Float64, &gen));
    logits.backward(g);
    if (t + 1 < T) {
      EXPECT_EQ(ops::max(ops::abs(ops::narrow(h.grad(), 1, t + 1, T - t - 1))).item(), 0.0) << "t=" << t;
    }
    EXPECT_GT(ops::max(ops::abs(ops::select(h.grad(), 1, t))).item(), 0.0) << "t=" << t;
  }
}

TEST(GPT, CutBetweenBlocksGivesTheSameLogits) {
  GPTConfig cfg = tiny_config();
  auto model = make_gpt(cfg);
  Tensor x = random_tokens(2, 8, cfg.vocab_size, 5);
  const auto full = model->forward(x).to_vector<float>();
  for (size_t cut = 1; cut < model->size(); ++cut) {
    Tensor h = model->slice(0, cut)->forward(x);
    EXPECT_EQ(model->slice(cut, model->size())->forward(h).to_vector<float>(), full) << "cut at " << cut;
  }
  // A float pipeline may carry the tokens as floats: the first stage accepts them.
  EXPECT_EQ(model->forward(ops::to(x, DType::Float32)).to_vector<float>(), full);
  EXPECT_THROW(model->forward(ops::add_scalar(ops::to(x, DType::Float32), 0.5)), Error);
}

TEST(GPT, TiedWeightsShareOneTensorAndSumBothGradients) {
  GPTConfig cfg = tiny_config();
  cfg.dtype = DType::Float64;
  cfg.tie_weights = true;
  Generator g1(21);
  auto tied = make_gpt(cfg, &g1);
  cfg.tie_weights = false;
  Generator g2(21);
  auto untied = make_gpt(cfg, &g2);
  auto emb = std::static_pointer_cast<GPTEmbedding>((*tied)[0]);
  auto head = std::static_pointer_cast<LMHead>((*tied)[tied->size() - 1]);
  EXPECT_TRUE(head->tied);
  EXPECT_TRUE(head->weight.is_same(emb->wte->weight));
  EXPECT_FALSE(has(names_of(*tied), std::to_string(tied->size() - 1) + ".weight"));
  EXPECT_EQ(untied->num_parameters() - tied->num_parameters(), cfg.vocab_size * cfg.d_model);
  // Same weights everywhere, the untied head a copy of the table: tied grad = sum of both.
  auto tp = tied->named_parameters();
  for (const auto& [name, p] : untied->named_parameters()) {
    for (const auto& [n2, q] : tp)
      if (n2 == name) ops::copy_(p, q);
  }
  auto uhead = std::static_pointer_cast<LMHead>((*untied)[untied->size() - 1]);
  auto uemb = std::static_pointer_cast<GPTEmbedding>((*untied)[0]);
  ops::copy_(uhead->weight, emb->wte->weight);
  Tensor x = random_tokens(2, 8, cfg.vocab_size, 1), y = random_tokens(2, 8, cfg.vocab_size, 2);
  gpt_loss(tied->forward(x), y).backward();
  gpt_loss(untied->forward(x), y).backward();
  Tensor sum_grads = ops::add(uemb->wte->weight.grad(), uhead->weight.grad());
  EXPECT_LT(ops::max(ops::abs(ops::sub(emb->wte->weight.grad(), sum_grads))).item(), 1e-12);
}

TEST(GPT, ParamGroupsDecayOnlyMatmulWeights) {
  GPTConfig cfg = tiny_config();
  auto model = make_gpt(cfg);
  auto groups = gpt_param_groups(*model, 0.1);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].weight_decay, 0.1);
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  EXPECT_EQ(groups[0].params.size(), static_cast<size_t>(4 * cfg.n_layer + 1));  // qkv, proj, fc, proj; head
  for (const Tensor& p : groups[0].params) EXPECT_EQ(p.dim(), 2);
  EXPECT_EQ(groups[0].params.size() + groups[1].params.size(), model->parameters().size());
  auto emb = std::static_pointer_cast<GPTEmbedding>((*model)[0]);
  for (const Tensor& p : groups[0].params) EXPECT_FALSE(p.is_same(emb->wte->weight) || p.is_same(emb->wpe->weight));
}

TEST(GPT, FlopsPerToken) {
  GPTConfig cfg;
  cfg.vocab_size = 65;
  auto model = make_gpt(cfg);
  const int64_t C = 128, L = 4, T = 128, V = 65;
  EXPECT_EQ(gpt_flops_per_token(*model, cfg), 6 * (L * (12 * C * C + 9 * C) + V * C) + 12 * L * T * C);
}

TEST(GPT, BadConfigurationsNameTheValues) {
  GPTConfig cfg = tiny_config();
  cfg.d_model = 30;
  cfg.n_head = 4;
  try {
    make_gpt(cfg);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("heads=4"), std::string::npos) << m;
    EXPECT_NE(m.find("d_model=30"), std::string::npos) << m;
  }
  auto model = make_gpt(tiny_config());
  try {
    model->forward(random_tokens(1, 9, 11, 0));  // context is 8
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context=8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(model->forward(from_vector(std::vector<int64_t>{0, 11}, {1, 2})), Error);  // vocab is 11
}

// CPU seconds this process has used (all its threads). Unlike wall time it does not grow when
// other jobs share the cores, but it does count threads spinning in OpenMP waits.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Train on one fixed 48-character string with the learned positions: the model can memorise it.
TEST(GPT, OverfitsAFixedString) {
  const double cpu_start = process_cpu_seconds();
  const std::string text = "the quick brown fox jumps over the lazy dog, 42!";
  Vocabulary vocab = Vocabulary::chars(text);
  std::vector<int64_t> ids = vocab.encode(text);
  const int64_t T = static_cast<int64_t>(ids.size()) - 1;
  GPTConfig cfg = tiny_config(vocab.size(), T);
  cfg.d_model = 32;
  Generator gen(1);
  auto model = make_gpt(cfg, &gen);
  Tensor x = from_vector(std::vector<int64_t>(ids.begin(), ids.end() - 1), {1, T});
  Tensor y = from_vector(std::vector<int64_t>(ids.begin() + 1, ids.end()), {1, T});
  optim::AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.0;
  optim::AdamW opt(gpt_param_groups(*model, 0.0), o);
  double loss = 0, first = 0;
  for (int step = 0; step < 150; ++step) {
    opt.zero_grad();
    Tensor l = gpt_loss(model->forward(x), y);
    l.backward();
    optim::clip_grad_norm_(model->parameters(), 1.0);
    opt.step();
    loss = l.item();
    if (step == 0) first = loss;
  }
  EXPECT_NEAR(first, std::log(static_cast<double>(vocab.size())), 0.1);
  EXPECT_LT(loss, 0.02);
  // Greedy sampling from the first character now replays the string.
  SampleOptions greedy;
  greedy.temperature = 0;
  Generator sg(0);
  auto out = gpt_generate(*model, cfg, {ids[0]}, T, greedy, sg);
  EXPECT_EQ(vocab.decode(out), text);
  // A guard against overheads such as thread teams spinning on tiny ops (this test once spent
  // 7 s in libgomp): ~0.1 CPU s on a quiet machine; 10 s leaves room for a CPU several times slower.
  EXPECT_LT(process_cpu_seconds() - cpu_start, 10.0);
}

// A stand-in model for gpt_generate: logits [1, T, V] of zeros (V of its choosing), or an error.
class FixedLogits : public Module {
 public:
  FixedLogits(int64_t V, bool fail) : Module("FixedLogits"), V_(V), fail_(fail) {}
  Tensor forward(const Tensor& x) override {
    MP_CHECK(!fail_, "FixedLogits: failing on purpose");
    ran_in_training_mode = is_training();
    return zeros({1, x.size(1), V_});
  }
  bool ran_in_training_mode = true;

 private:
  int64_t V_;
  bool fail_;
};

// gpt_generate reads as many logits as the model returns (not cfg.vocab_size: a mismatch is an
// error, not a read past the end), samples in eval mode, and gives the caller's mode back
// however it returns — an exception from the model included.
TEST(GPT, GenerateChecksTheLogitsAndRestoresTheMode) {
  const GPTConfig cfg = tiny_config();  // vocab 11
  SampleOptions opts;
  Generator g(0);
  for (int64_t V : {5, 12}) {  // fewer, and more, logits than the vocabulary has tokens
    FixedLogits m(V, false);
    try {
      gpt_generate(m, cfg, {0}, 3, opts, g);
      ADD_FAILURE() << "expected an error for " << V << " logits";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::to_string(V) + " logits"), std::string::npos) << msg;
      EXPECT_NE(msg.find("vocab_size=11"), std::string::npos) << msg;
    }
    EXPECT_TRUE(m.is_training());
  }
  FixedLogits failing(11, true);
  EXPECT_THROW(gpt_generate(failing, cfg, {0}, 3, opts, g), Error);
  EXPECT_TRUE(failing.is_training()) << "an error inside generation left the model in eval mode";
  FixedLogits ok(11, false);
  EXPECT_EQ(gpt_generate(ok, cfg, {0}, 3, opts, g).size(), 4u);
  EXPECT_FALSE(ok.ran_in_training_mode);
  EXPECT_TRUE(ok.is_training());
  ok.eval();
  gpt_generate(ok, cfg, {0}, 3, opts, g);
  EXPECT_FALSE(ok.is_training());  // eval stays eval
}

// A few steps of real training (random batches, dropout on): the same seed gives the same
// losses bit for bit; another seed does not.
std::vector<double> train_losses(uint64_t seed, int steps) {
  const std::string text =
      "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
      "must be in want of a wife. However little known the feelings or views of such a man may be.";
  Vocabulary vocab = Vocabulary::chars(text);
  std::vector<int64_t> ids = vocab.encode(text);
  GPTConfig cfg = tiny_config(vocab.size(), 16);
  cfg.dropout = 0.1;
  manual_seed(seed);
  Generator init(seed), data(seed + 1);
  auto model = make_gpt(cfg, &init);
  model->train();
  optim::AdamWOptions o;
  o.lr = 3e-3;
  optim::AdamW opt(gpt_param_groups(*model, 0.1), o);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    opt.set_lr(optim::cosine_lr(step, steps, 3e-3, 3e-4, 2));
    Batch b = sample_batch(ids, 4, cfg.context, data);
    opt.zero_grad();
    Tensor l = gpt_loss(model->forward(b.x), b.y);
    l.backward();
    optim::clip_grad_norm_(model->parameters(), 1.0);
    opt.step();
    losses.push_back(l.item());
  }
  return losses;
}

TEST(GPT, SameSeedSameLossCurveBitForBit) {
  const auto a = train_losses(5, 6), b = train_losses(5, 6), c = train_losses(6, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_LT(a.back(), a.front());
}

}  // namespace
}  // namespace minipipe::nn
