// Differentiable neural-network functions: softmax, log_softmax, the fused cross entropy
// (which caches the softmax probabilities for its backward) and inverted dropout.
#include "autograd/functions.h"

namespace minipipe {

using autograd::InputGrads;
using autograd::record;

Tensor softmax(const Tensor& t, int64_t dim) {
  Tensor y = ops::softmax(t, dim);
  return record("SoftmaxBackward", y, {t},
                [y = y.detach(), dim](const Tensor& g, InputGrads& gi) { gi[0] = ops::softmax_backward(g, y, dim); });
}

Tensor log_softmax(const Tensor& t, int64_t dim) {
  Tensor y = ops::log_softmax(t, dim);
  return record("LogSoftmaxBackward", y, {t},
                [y = y.detach(), dim](const Tensor& g, InputGrads& gi) { gi[0] = ops::log_softmax_backward(g, y, dim); });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets) {
  auto [loss, probs] = ops::cross_entropy(logits, targets);
  // Cache the probabilities: d loss / d logits = (softmax - one_hot) / N.
  return record("CrossEntropyBackward", loss, {logits}, [p = probs, t = targets.detach()](const Tensor& g, InputGrads& gi) {
    gi[0] = ops::cross_entropy_backward(g, p, t);
  });
}

Tensor dropout(const Tensor& t, double p, bool training, const RandomSource& src) {
  MP_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.0) return t;
  Tensor mask = ops::dropout_mask(t, p, src);
  return record("DropoutBackward", ops::mul(t, mask), {t},
                [mask](const Tensor& g, InputGrads& gi) { gi[0] = ops::mul(g, mask); });
}

}  // namespace minipipe
