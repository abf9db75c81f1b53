// Exercise 5's grader: the student's split_microbatches and accumulate_gradients against the
// single-device full-batch step (the reference of every pipeline equivalence test,
// tests/pipeline_models.h): the same loss and the same gradients to 1e-12 in float64, with
// dropout on, and the same weights after a few optimizer steps.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "exercise.h"
#include "tests/pipeline_models.h"

namespace {

using namespace minipipe;
using namespace minipipe::test_util;

constexpr int64_t kRows = 8;
constexpr uint64_t kModelSeed = 5, kDataSeed = 6, kDropoutSeed = 9;

struct Model {
  std::shared_ptr<nn::Sequential> model;
  std::shared_ptr<RandomContext> random;
};

Model make(double dropout) {
  Model s{build_model(ModelKind::Mlp, DType::Float64, dropout, kModelSeed), std::make_shared<RandomContext>(kDropoutSeed)};
  s.model->set_random_context(s.random);
  return s;
}

// The single-device step on the whole batch: loss and gradients every accumulation must equal.
double full_batch(Model& s, const Batch& b, uint64_t step) {
  s.random->step = step;
  s.random->sample_offset = 0;
  Tensor l = loss_of(ModelKind::Mlp)(s.model->forward(b.x), b.y);
  l.backward();
  return l.item();
}

// Compares every parameter's gradient, and names the usual mistake when the ratio gives it away.
void expect_same_grads(const nn::Module& got_model, const nn::Module& want_model, int M, const std::string& what) {
  const auto got = grads_by_name(got_model), want = grads_by_name(want_model);
  for (const auto& [name, w] : want) {
    const Tensor& g = got.at(name);
    ASSERT_TRUE(g.defined()) << what << ": parameter " << name << " has no gradient: did the backward run?";
    const double d = rel_diff(g, w);
    if (d <= 1e-12) continue;
    const double ratio = ops::sum(ops::abs(g)).item() / ops::sum(ops::abs(w)).item();
    const std::string hint =
        M > 1 && std::abs(ratio - M) < 1e-6 * M
            ? " (yours is M times too large: scale each micro-batch's loss by 1/M)"
            : " (check: every micro-batch's rows used once; the loss scaled by 1/M; no zeroing of gradients inside the "
              "loop; with dropout, the random context's step and sample_offset set per micro-batch)";
    ADD_FAILURE() << what << ": gradient of " << name << " differs from the full batch's by " << d << " (relative)" << hint;
    return;
  }
}

TEST(SplitMicrobatches, CutsRowsInOrderAsViews) {
  const Batch b = make_batch(ModelKind::Mlp, DType::Float64, kRows, kDataSeed);
  for (int M : {1, 2, 4, 8}) {
    const auto parts = exercises::split_microbatches(b.x, M);
    ASSERT_EQ(static_cast<int>(parts.size()), M) << "split_microbatches(x of 8 rows, M=" << M << ") should return " << M
                                                 << " micro-batches";
    for (int m = 0; m < M; ++m) {
      const Tensor& p = parts[static_cast<size_t>(m)];
      const Tensor want = ops::narrow(b.x, 0, m * (kRows / M), kRows / M);
      ASSERT_EQ(shape_str(p.sizes()), shape_str(want.sizes())) << "micro-batch " << m << " of M=" << M;
      EXPECT_EQ(p.to_vector<double>(), want.to_vector<double>())
          << "micro-batch " << m << " of M=" << M << " should hold rows " << m * (kRows / M) << ".."
          << (m + 1) * (kRows / M) - 1;
      EXPECT_TRUE(p.shares_storage(b.x)) << "micro-batch " << m << " is a copy; a view (ops::narrow) costs nothing";
    }
  }
}

TEST(SplitMicrobatches, UnequalCutsAreAnErrorNamingBAndM) {
  const Batch b = make_batch(ModelKind::Mlp, DType::Float64, 10, kDataSeed);
  try {
    exercises::split_microbatches(b.x, 3);
    ADD_FAILURE() << "split_microbatches(10 rows, M=3) should throw minipipe::Error: 10 rows do not cut into 3 equal parts";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(msg.find("10") != std::string::npos && msg.find('3') != std::string::npos &&
                msg.find("not implemented") == std::string::npos)
        << "the error should name B=10 and M=3; it says: " << msg;
  }
}

void expect_equivalent(double dropout) {
  const Batch b = make_batch(ModelKind::Mlp, DType::Float64, kRows, kDataSeed);
  for (int M : {1, 2, 4, 8}) {
    const std::string what = "M=" + std::to_string(M) + (dropout > 0 ? ", dropout " + std::to_string(dropout) : "");
    Model ref = make(dropout), got = make(dropout);
    const double want_loss = full_batch(ref, b, 3);
    const double loss = exercises::accumulate_gradients(*got.model, b.x, b.y, M, loss_of(ModelKind::Mlp), 3);
    EXPECT_NEAR(loss, want_loss, 1e-12) << what << ": the returned loss should be the mean of the micro-batch losses, "
                                        << "the full batch's loss";
    expect_same_grads(*got.model, *ref.model, M, what);
  }
}

TEST(Equivalence, SameGradientsAsTheFullBatchWithoutDropout) { expect_equivalent(0.0); }

TEST(Equivalence, SameGradientsAsTheFullBatchWithDropout) {
  // Masks are keyed by (step, the row's index in the whole batch): micro-batch m must set the
  // model's random context to step 3 and sample_offset m * B/M, or its rows get other masks.
  expect_equivalent(0.3);
}

TEST(Equivalence, GradientsAccumulateAcrossCalls) {
  // Two calls without zeroing in between: twice one call's gradients (the caller owns zero_grad).
  const Batch b = make_batch(ModelKind::Mlp, DType::Float64, kRows, kDataSeed);
  Model ref = make(0.0), got = make(0.0);
  full_batch(ref, b, 0);
  full_batch(ref, b, 0);
  exercises::accumulate_gradients(*got.model, b.x, b.y, 4, loss_of(ModelKind::Mlp), 0);
  exercises::accumulate_gradients(*got.model, b.x, b.y, 4, loss_of(ModelKind::Mlp), 0);
  expect_same_grads(*got.model, *ref.model, 4, "two calls, M=4 (gradients must add up, not be reset)");
}

TEST(Equivalence, TrainingStepsLandOnTheSameWeights) {
  // Five AdamW steps with dropout: the weights stay equal to the full-batch run's, to 1e-12.
  Model ref = make(0.2), got = make(0.2);
  optim::AdamW opt_ref(ref.model->parameters(), {.lr = 1e-2}), opt_got(got.model->parameters(), {.lr = 1e-2});
  for (uint64_t step = 0; step < 5; ++step) {
    const Batch b = make_batch(ModelKind::Mlp, DType::Float64, kRows, 100 + step);
    opt_ref.zero_grad();
    full_batch(ref, b, step);
    opt_ref.step();
    opt_got.zero_grad();
    exercises::accumulate_gradients(*got.model, b.x, b.y, 4, loss_of(ModelKind::Mlp), step);
    opt_got.step();
  }
  const auto want = ref.model->named_parameters(), have = got.model->named_parameters();
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = rel_diff(have[i].second, want[i].second);
    if (d > 1e-12) {
      ADD_FAILURE() << "after 5 AdamW steps of M=4, parameter " << want[i].first << " differs from the full-batch run's by "
                    << d << " (relative); the gradient checks above say which part of the step differs";
      return;
    }
  }
}

}  // namespace
