// CPU random ops that need a generator: the dropout mask. Drawn on one thread in row-major
// order, so a seed fixes the mask whatever the thread count.
#include "tensor/cpu/loops.h"
#include "tensor/ops.h"

namespace minipipe::ops {

Tensor dropout_mask(const Tensor& like, double p, Generator& gen) {
  cpu::check_cpu("dropout_mask", {&like});
  MP_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  Tensor mask = empty(like.sizes(), like.options());
  const double keep_scale = 1.0 / (1.0 - p);
  MP_DISPATCH_FLOAT(like.dtype(), "dropout_mask", [&] {
    scalar_t* m = mask.data_ptr<scalar_t>();
    for (int64_t i = 0, n = mask.numel(); i < n; ++i)
      m[i] = gen.uniform() < p ? scalar_t(0) : static_cast<scalar_t>(keep_scale);
  });
  return mask;
}

}  // namespace minipipe::ops
