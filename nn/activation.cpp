// Out-of-line pieces of the parameter-free layers.
#include "nn/activation.h"

namespace minipipe::nn {

Dropout::Dropout(double p) : Module("Dropout"), p_(p) {
  MP_CHECK(p >= 0.0 && p < 1.0, "Dropout: probability must be in [0, 1), got ", p);
}

}  // namespace minipipe::nn
