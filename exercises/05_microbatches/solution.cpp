// Exercise 5, the micro-batch loop: the reference solution (parallel/executor.cpp's F and B for
// one chunk that is the whole model, and pipe.cpp's cut of the batch, written out).
#include "exercise.h"

#include "autograd/functions.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace exercises {

using namespace minipipe;

std::vector<Tensor> split_microbatches(const Tensor& t, int M) {
  const int64_t B = t.dim() > 0 ? t.size(0) : 0;
  MP_CHECK(M >= 1 && B % M == 0, "split_microbatches: a batch of B=", B, " rows cannot be cut into M=", M,
           " equal micro-batches (B % M must be 0)");
  const int64_t rows = B / M;
  std::vector<Tensor> out;
  for (int m = 0; m < M; ++m) out.push_back(ops::narrow(t, 0, m * rows, rows));  // a view
  return out;
}

double accumulate_gradients(nn::Module& model, const Tensor& x, const Tensor& y, int M, const LossFn& loss,
                            uint64_t step) {
  const std::vector<Tensor> xs = split_microbatches(x, M), ys = split_microbatches(y, M);
  const int64_t rows = x.size(0) / M;
  double sum = 0;
  for (int m = 0; m < M; ++m) {
    // The masks of rows m*rows.. of the whole batch (counter-based dropout, tensor/generator.h).
    if (const auto& rc = model.random_context()) {
      rc->step = step;
      rc->sample_offset = m * rows;
    }
    Tensor l = loss(model.forward(xs[static_cast<size_t>(m)]), ys[static_cast<size_t>(m)]);
    sum += l.item();
    // Each micro-batch's loss is a mean over its B/M rows: scaled by 1/M, the M gradients add up
    // to the gradient of the mean over all B rows.
    l.backward(scalar_tensor(1.0 / M, l.dtype()));
  }
  return sum / M;
}

}  // namespace exercises
