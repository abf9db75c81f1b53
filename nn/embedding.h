// nn::Embedding: a learned table of V rows of C numbers looked up by token index, as
// torch.nn.Embedding (init N(0, 1); the GPT re-initialises it with std 0.02). The first layer
// of the GPT stack: int64 tokens [B, T] in, float [B, T, C] out (see autograd embedding()).
#pragma once

#include "nn/module.h"

namespace minipipe::nn {

class Embedding : public Module {
 public:
  // The table is drawn N(0, 1) from `gen` (null: the default generator); init=false leaves it zero.
  Embedding(int64_t num_embeddings, int64_t embedding_dim, DType dtype = DType::Float32, Generator* gen = nullptr,
            bool init = true);
  // index: [...] int64 (or floating point holding whole numbers) -> [..., C]
  Tensor forward(const Tensor& index) override;
  std::string extra_repr() const override;

  int64_t num_embeddings, embedding_dim;
  Tensor weight;  // [V, C]
};

// Token ids as int64: int64 tensors pass through; floating-point ones (a float pipeline carrying
// tokens) are converted after checking every value is a whole number in int64's range.
Tensor to_token_index(const Tensor& t);

}  // namespace minipipe::nn
