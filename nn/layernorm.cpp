// nn::LayerNorm construction.
#include "nn/layernorm.h"

#include <sstream>

namespace minipipe::nn {

LayerNorm::LayerNorm(int64_t c, double e, DType dtype) : Module("LayerNorm"), normalized_shape(c), eps(e) {
  MP_CHECK(c > 0, "LayerNorm: normalized_shape must be positive, got ", c);
  MP_CHECK(e > 0, "LayerNorm: eps must be positive, got ", e);
  weight = register_parameter("weight", ones({c}, dtype));
  bias = register_parameter("bias", zeros({c}, dtype));
}

std::string LayerNorm::extra_repr() const {
  std::ostringstream os;
  os << "(" << normalized_shape << "), eps=" << eps;
  return os.str();
}

}  // namespace minipipe::nn
