// The GPT-2-style transformer (llm.c's train_gpt2.c, nanoGPT's model.py) as an nn::Sequential
// stack the pipeline can cut between blocks: [GPTEmbedding, TransformerBlock x N, LayerNorm,
// LMHead]; each layer maps one Tensor to one Tensor (int64 tokens [B, T] -> [B, T, C] -> ...
// -> logits [B, T, V]). Also the training helpers: GPT-2 init, weight-decay groups, the loss,
// the FLOP count and sampling.
#pragma once

#include <string>
#include <vector>

#include "nn/attention.h"
#include "nn/embedding.h"
#include "nn/layernorm.h"
#include "nn/optim.h"
#include "nn/sequential.h"

namespace minipipe::nn {

struct GPTConfig {
  int64_t vocab_size = 256;
  int64_t context = 128;  // the longest sequence: rows of the position table
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_model = 128;
  double dropout = 0.0;
  // Share the token table with the LM head. Only for an uncut model: in a pipeline the two ends
  // sit on different ranks (docs/gpt.md).
  bool tie_weights = false;
  DType dtype = DType::Float32;

  void validate() const;  // MP_CHECKs naming the bad values
  std::string str() const;
};

// Linear C -> 4C, GELU, Linear 4C -> C, dropout (site "out" of the module's random context).
// x: [B, T, C] -> [B, T, C]. init=false: the Linears start at zero (make_gpt draws them).
class MLP : public Module {
 public:
  MLP(int64_t d_model, double dropout = 0.0, DType dtype = DType::Float32, bool init = true);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Linear> fc;    // C -> 4C
  std::shared_ptr<Linear> proj;  // 4C -> C, a residual projection

 private:
  double dropout_p_;
};

// Pre-LN block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)).  x: [B, T, C] -> [B, T, C]
class TransformerBlock : public Module {
 public:
  explicit TransformerBlock(const GPTConfig& cfg, bool init = true);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<LayerNorm> ln_1;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<LayerNorm> ln_2;
  std::shared_ptr<MLP> mlp;
};

// Token + learned position embeddings, then dropout (site "emb").
// tokens [B, T] (int64, T <= context) -> [B, T, C]
class GPTEmbedding : public Module {
 public:
  explicit GPTEmbedding(const GPTConfig& cfg, bool init = true);
  Tensor forward(const Tensor& tokens) override;
  std::shared_ptr<Embedding> wte;  // [V, C]
  std::shared_ptr<Embedding> wpe;  // [context, C]

 private:
  double dropout_p_;
};

// logits = x W^T with W: [V, C] (no bias).  x: [B, T, C] -> [B, T, V]. Tied: W is the token
// table's own tensor and is not registered again (it is trained and saved once, as 0.wte.weight).
class LMHead : public Module {
 public:
  LMHead(int64_t d_model, int64_t vocab_size, DType dtype = DType::Float32);
  explicit LMHead(Tensor tied_weight);
  Tensor forward(const Tensor& x) override { return linear(x, weight); }
  std::string extra_repr() const override;
  Tensor weight;  // [V, C]
  bool tied = false;
};

// The stack [GPTEmbedding, TransformerBlock x n_layer, LayerNorm, LMHead], named 0 .. n_layer + 2
// (`1.attn.qkv.weight`), with GPT-2's init: Linear and embedding weights N(0, 0.02), biases 0,
// the residual projections (attn.proj, mlp.proj) N(0, 0.02 / sqrt(2 n_layer)), LayerNorm 1 and 0.
// init_gen draws every weight (null: the default generator) and nothing else draws: the same
// generator state gives the same model. Dropout masks come from a RandomContext bound afterwards
// (set_random_context); unbound, from the default generator.
std::shared_ptr<Sequential> make_gpt(const GPTConfig& cfg, Generator* init_gen = nullptr);

// AdamW groups as GPT-2: weight decay only on matmul weights (every Linear's weight, LM head
// included); none on biases, LayerNorm weights and the embedding tables. {decay, no_decay}.
std::vector<optim::ParamGroup> gpt_param_groups(const Module& model, double weight_decay);

// Mean next-token cross entropy. logits: [B, T, V], targets: int64 [B, T] -> scalar
Tensor gpt_loss(const Tensor& logits, const Tensor& targets);

// Training FLOPs per token (forward + backward), PaLM appendix B / Kaplan et al.:
//   6 N + 12 L T C,  N = weights that enter a matmul (every Linear, LM head included, biases
//   too; not the embedding lookups). 2N per token forward, 4N backward; attention: q k^T and
//   att v are 2 T C each per layer forward (the full T x T, as our batched GEMMs compute it).
int64_t gpt_flops_per_token(const Module& model, const GPTConfig& cfg);

struct SampleOptions {
  double temperature = 1.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: the whole vocabulary
};

// Autoregressive sampling: appends n tokens to `tokens` (which must be non-empty), each drawn
// from softmax(logits / temperature) of the last position, over the last `context` tokens.
std::vector<int64_t> gpt_generate(Module& model, const GPTConfig& cfg, std::vector<int64_t> tokens, int64_t n,
                                  const SampleOptions& opts, Generator& gen);

}  // namespace minipipe::nn
