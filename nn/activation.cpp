// Out-of-line pieces of the parameter-free layers.
#include "nn/activation.h"

namespace minipipe::nn {

Dropout::Dropout(double p, Generator* gen) : Module("Dropout"), p_(p), gen_(gen) {
  MP_CHECK(p >= 0.0 && p < 1.0, "Dropout: probability must be in [0, 1), got ", p);
}

}  // namespace minipipe::nn
