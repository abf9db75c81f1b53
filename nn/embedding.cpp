// nn::Embedding construction and the token-index conversion.
#include "nn/embedding.h"

#include <cmath>

namespace minipipe::nn {

Embedding::Embedding(int64_t num, int64_t dim, DType dtype, Generator* gen, bool init)
    : Module("Embedding"), num_embeddings(num), embedding_dim(dim) {
  MP_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got num_embeddings=", num,
           " embedding_dim=", dim);
  weight = register_parameter("weight", init ? randn({num, dim}, dtype, gen) : zeros({num, dim}, dtype));
}

Tensor Embedding::forward(const Tensor& index) { return embedding(weight, to_token_index(index)); }

std::string Embedding::extra_repr() const {
  return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim);
}

Tensor to_token_index(const Tensor& t) {
  MP_CHECK(t.defined(), "token index: got an undefined tensor");
  if (t.dtype() == DType::Int64) return t;
  Tensor idx = ops::to(t, DType::Int64);
  // Round-trip check: a fractional id means the caller passed activations, not tokens.
  Tensor back = ops::to(idx, t.dtype());
  const double err = ops::max(ops::abs(ops::sub(back, ops::contiguous(t)))).item();
  MP_CHECK(err == 0, "token index: expected whole-number token ids, got a ", dtype_name(t.dtype()), " tensor ",
           shape_str(t.sizes()), " with fractional values (max deviation ", err, ")");
  return idx;
}

}  // namespace minipipe::nn
