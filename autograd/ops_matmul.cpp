// Differentiable matrix products. matmul: dA = dC B^T, dB = A^T dC (summed over broadcast
// batch dims). linear fuses x W^T + b so its backward runs exactly three GEMM-shaped ops, and
// adds dW into a weight's existing .grad() in the GEMM itself (gradient accumulation fusion).
#include "autograd/functions.h"

namespace minipipe {

using autograd::InputGrads;
using autograd::record;

Tensor matmul(const Tensor& a, const Tensor& b) {
  MP_CHECK(a.defined() && b.defined(), "matmul: got an undefined tensor");
  MP_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
           shape_str(a.sizes()), " x ", shape_str(b.sizes()));
  // Vectors become matrices first, so the node below only sees [..., n, k] x [..., k, m].
  // Squeeze a's row (-2) before b's column (-1), as ops::matmul does: for vector x vector the
  // [1, 1] result then becomes [1] and then [].
  if (a.dim() == 1 || b.dim() == 1) {
    Tensor out = matmul(a.dim() == 1 ? unsqueeze(a, 0) : a, b.dim() == 1 ? unsqueeze(b, 1) : b);
    if (a.dim() == 1) out = squeeze(out, -2);
    if (b.dim() == 1) out = squeeze(out, -1);
    return out;
  }
  return record("MatmulBackward", ops::matmul(a, b), {a, b}, [x = a.detach(), y = b.detach()](const Tensor& g, InputGrads& gi) {
    if (gi.needs(0)) gi[0] = ops::sum_to(ops::matmul(g, ops::transpose(y, -1, -2)), x.sizes());
    if (gi.needs(1)) gi[1] = ops::sum_to(ops::matmul(ops::transpose(x, -1, -2), g), y.sizes());
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  MP_CHECK(x.defined() && weight.defined(), "linear: got an undefined input or weight");
  MP_CHECK(weight.dim() == 2, "linear: weight must be [out, in], got ", shape_str(weight.sizes()));
  MP_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", shape_str(x.sizes()),
           " does not match weight ", shape_str(weight.sizes()), " (expected last dim ", weight.size(1), ")");
  MP_CHECK(!bias.defined() || bias.sizes() == Shape{weight.size(0)}, "linear: bias ",
           bias.defined() ? shape_str(bias.sizes()) : "", " does not match weight ", shape_str(weight.sizes()));
  // x: [..., in] is viewed as [N, in]; y = x W^T: [N, out]
  const Shape out_shape = [&] {
    Shape s = x.sizes();
    s.back() = weight.size(0);
    return s;
  }();
  Tensor x2 = ops::reshape(x, {-1, x.size(-1)});
  Tensor y = ops::matmul(x2, ops::transpose(weight, 0, 1));
  if (bias.defined()) ops::add_(y, bias);
  y = ops::reshape(y, out_shape);
  return record("LinearBackward", y, {x, weight, bias},
                [x2 = x2.detach(), w = weight.detach(), xs = x.sizes()](const Tensor& g, InputGrads& gi) {
                  Tensor g2 = ops::reshape(g, {-1, w.size(0)});                          // [N, out]
                  if (gi.needs(0)) gi[0] = ops::reshape(ops::matmul(g2, w), xs);          // [N, in]
                  if (gi.needs(1) && gi.can_defer(1)) {  // a zero-bubble B: dW waits for the W pass
                    gi.defer(1, [g2, x2](const Tensor& into) {
                      if (!into.defined()) return ops::matmul(ops::transpose(g2, 0, 1), x2);
                      ops::addmm_(into, ops::transpose(g2, 0, 1), x2);  // as below: inside the GEMM
                      return Tensor();
                    }, static_cast<int64_t>(g2.nbytes() + x2.nbytes()));  // db's piece shares g2
                  } else if (gi.needs(1)) {  // [out, in]; summed straight into .grad() from the second micro-batch on
                    if (const Tensor& into = gi.accumulate_into(1); into.defined()) {
                      ops::addmm_(into, ops::transpose(g2, 0, 1), x2);
                      gi.accumulated(1);
                    } else {
                      gi[1] = ops::matmul(ops::transpose(g2, 0, 1), x2);
                    }
                  }
                  if (gi.needs(2) && gi.can_defer(2)) gi.defer(2, [g2](const Tensor&) { return ops::sum(g2, {0}); });
                  else if (gi.needs(2)) gi[2] = ops::sum(g2, {0});                        // [out]
                });
}

}  // namespace minipipe
