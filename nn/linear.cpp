// nn::Linear construction and initialisation.
#include "nn/linear.h"

#include <cmath>

namespace minipipe::nn {

Linear::Linear(const LinearOptions& opts) : Module("Linear"), options(opts) {
  MP_CHECK(opts.in_features > 0 && opts.out_features > 0, "Linear: features must be positive, got in=",
           opts.in_features, " out=", opts.out_features);
  const double k = 1.0 / std::sqrt(static_cast<double>(opts.in_features));
  auto draw = [&](const Shape& shape) {
    return opts.init_ ? uniform(shape, -k, k, opts.dtype_, opts.gen) : zeros(shape, opts.dtype_);
  };
  weight = register_parameter("weight", draw({opts.out_features, opts.in_features}));
  if (opts.with_bias) bias = register_parameter("bias", draw({opts.out_features}));
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(options.in_features) + ", out_features=" +
         std::to_string(options.out_features) + ", bias=" + (options.with_bias ? "true" : "false");
}

}  // namespace minipipe::nn
