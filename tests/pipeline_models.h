// Models and helpers shared by the pipeline tests: a small MLP with dropout and a tiny GPT with
// dropout, built from a seed in float32 or float64 (the same seed: the same weights, so a pipelined
// copy starts where the single-device reference does), their batches and losses, the
// single-device reference step, and the relative difference the equivalence tests bound.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "nn/nn.h"
#include "nn/transformer.h"
#include "parallel/launch.h"
#include "parallel/pipe.h"

namespace minipipe::test_util {

enum class ModelKind { Mlp, Gpt };

// MLP: 10 layers, so every P <= 4 with v = 2 gets a layer per chunk. GPT: 5 blocks, 8 layers.
inline std::shared_ptr<nn::Sequential> build_model(ModelKind kind, DType dtype, double dropout, uint64_t seed) {
  Generator gen(seed);
  if (kind == ModelKind::Gpt) {
    nn::GPTConfig cfg;
    cfg.vocab_size = 11;
    cfg.context = 4;
    cfg.n_layer = 5;
    cfg.n_head = 2;
    cfg.d_model = 8;
    cfg.dropout = dropout;
    cfg.dtype = dtype;
    return nn::make_gpt(cfg, &gen);
  }
  auto model = std::make_shared<nn::Sequential>();
  auto linear = [&](int64_t in, int64_t out) {
    return std::make_shared<nn::Linear>(nn::LinearOptions(in, out).dtype(dtype).generator(&gen));
  };
  model->push_back(linear(6, 16));
  model->push_back(std::make_shared<nn::ReLU>());
  model->push_back(std::make_shared<nn::Dropout>(dropout));
  model->push_back(linear(16, 16));
  model->push_back(std::make_shared<nn::GELU>());
  model->push_back(std::make_shared<nn::Dropout>(dropout));
  model->push_back(linear(16, 12));
  model->push_back(std::make_shared<nn::ReLU>());
  model->push_back(linear(12, 12));
  model->push_back(linear(12, 5));
  return model;
}

struct Batch {
  Tensor x, y;
};

inline Batch make_batch(ModelKind kind, DType dtype, int64_t rows, uint64_t seed) {
  Generator gen(seed);
  auto ints = [&](int64_t n, int64_t below, Shape shape) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (auto& i : v) i = static_cast<int64_t>(gen.below(static_cast<uint64_t>(below)));
    return from_vector(v, std::move(shape));
  };
  if (kind == ModelKind::Gpt) return {ints(rows * 4, 11, {rows, 4}), ints(rows * 4, 11, {rows, 4})};
  return {randn({rows, 6}, dtype, &gen), ints(rows, 5, {rows})};
}

inline parallel::LossFn loss_of(ModelKind kind) {
  if (kind == ModelKind::Gpt) return [](const Tensor& out, const Tensor& y) { return nn::gpt_loss(out, y); };
  return [](const Tensor& out, const Tensor& y) { return cross_entropy(out, y); };
}

// max |a - b| / max |b| (0 when both are zero).
inline double rel_diff(const Tensor& a, const Tensor& b) {
  const auto va = ops::to(a, DType::Float64).to_vector<double>(), vb = ops::to(b, DType::Float64).to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    num = std::max(num, std::abs(va[i] - vb[i]));
    den = std::max(den, std::abs(vb[i]));
  }
  return den == 0 ? num : num / den;
}

inline double tolerance(DType dtype) { return dtype == DType::Float64 ? 1e-12 : 1e-5; }

inline std::map<std::string, Tensor> grads_by_name(const nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : m.named_parameters()) out[name] = t.grad();
  return out;
}

// One device, the whole batch: what every pipelined run must reproduce. Dropout masks come from a
// context with the pipeline's seed, keyed by the same step numbers.
struct Reference {
  std::shared_ptr<nn::Sequential> model;
  std::shared_ptr<RandomContext> random;
  std::unique_ptr<optim::AdamW> opt;
  Reference(ModelKind kind, DType dtype, double dropout, uint64_t seed, uint64_t dropout_seed)
      : model(build_model(kind, dtype, dropout, seed)), random(std::make_shared<RandomContext>(dropout_seed)),
        opt(std::make_unique<optim::AdamW>(model->parameters(), optim::AdamWOptions{.lr = 1e-2})) {
    model->set_random_context(random);
  }
  // zero_grad, forward, backward, optional clipping; returns the loss (the optimizer is not stepped).
  double forward_backward(const Batch& b, const parallel::LossFn& loss, uint64_t step, double clip = 0) {
    random->step = step;
    random->sample_offset = 0;
    opt->zero_grad();
    Tensor l = loss(model->forward(b.x), b.y);
    l.backward();
    if (clip > 0) optim::clip_grad_norm_(model->parameters(), clip);
    return l.item();
  }
};

// `ranks` local rank threads running fn (one intra-op thread each, a 60 s timeout).
inline void run_ranks(int ranks, const std::function<void(parallel::RankContext&)>& fn, double timeout = 60) {
  parallel::LaunchOptions lo;
  lo.ranks = ranks;
  lo.threads_per_rank = 1;
  lo.timeout_s = timeout;
  parallel::launch(lo, fn);
}

// A run that must fail: the error launch rethrows (one rank's), and how many ranks threw an Error
// of their own (not the Aborted that stops the others) — "an error on every rank" is all of them.
struct Failure {
  std::string message;
  int ranks_with_errors = 0;
};

inline Failure failure_of(int ranks, const std::function<void(parallel::RankContext&)>& fn) {
  std::atomic<int> errors{0};
  Failure f;
  try {
    run_ranks(ranks, [&](parallel::RankContext& ctx) {
      try {
        fn(ctx);
      } catch (const parallel::Aborted&) {
        throw;
      } catch (const Error&) {
        ++errors;
        throw;
      }
    });
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    f.message = e.what();
  }
  f.ranks_with_errors = errors.load();
  return f;
}

}  // namespace minipipe::test_util
