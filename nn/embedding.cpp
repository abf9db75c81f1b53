// nn::Embedding construction and the token-index conversion.
#include "nn/embedding.h"

#include <cmath>
#include <vector>

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
  // Every id is checked before the cast: a fractional one means the caller passed activations,
  // not tokens, and NaN or a value outside int64's range would make the cast undefined.
  // (float32 -> double is exact, so the check sees the values the cast would.)
  const std::vector<double> ids = t.to_vector<double>();
  for (size_t i = 0; i < ids.size(); ++i)
    MP_CHECK(std::trunc(ids[i]) == ids[i] && ids[i] >= -0x1p63 && ids[i] < 0x1p63,
             "token index: expected whole-number token ids, got ", ids[i], " at position ", i, " of a ",
             dtype_name(t.dtype()), " tensor ", shape_str(t.sizes()));
  return ops::to(t, DType::Int64);
}

}  // namespace minipipe::nn
