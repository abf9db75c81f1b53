// The CPU kernels behind the raw ops (tensor/ops.h), one per entry of the CPU Backend table
// (tensor/cpu/backend.cpp). Same signatures as the ops; the kernels call each other directly
// (no dispatch), and reach the device-independent ops (views, compositions) through `ops`.
#pragma once

#include "tensor/backend.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

using namespace ::minipipe::ops;  // views and compositions: reshape, contiguous, to, ...

extern const Backend kBackend;

// copy.cpp
void copy_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& t, double value);
// elementwise.cpp
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor pow_scalar(const Tensor& a, double exponent);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
void add_(const Tensor& a, const Tensor& b, double alpha = 1.0);
void mul_scalar_(const Tensor& a, double s);
Tensor relu_backward(const Tensor& grad, const Tensor& x);
Tensor gelu_backward(const Tensor& grad, const Tensor& x);
Tensor tanh_backward(const Tensor& grad, const Tensor& y);
Tensor sigmoid_backward(const Tensor& grad, const Tensor& y);
// reduce.cpp
Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim = false);
std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim = false);
// softmax.cpp
Tensor softmax(const Tensor& t, int64_t dim);
Tensor log_softmax(const Tensor& t, int64_t dim);
Tensor softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);
Tensor log_softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim);
std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& targets);
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& targets);
// matmul.cpp
Tensor matmul(const Tensor& a, const Tensor& b);
void addmm_(const Tensor& c, const Tensor& a, const Tensor& b);
// index.cpp
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype);
// random.cpp
Tensor dropout_mask(const Shape& shape, TensorOptions opts, double p, const RandomSource& src);
// layernorm.cpp, embedding.cpp, attention.cpp
std::tuple<Tensor, Tensor, Tensor> layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
std::tuple<Tensor, Tensor, Tensor> layernorm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight,
                                                      const Tensor& mean, const Tensor& rstd);
Tensor embedding(const Tensor& weight, const Tensor& index);
Tensor embedding_backward(const Tensor& grad, const Tensor& index, int64_t num_embeddings);
Tensor causal_softmax(const Tensor& att, double scale);
Tensor causal_softmax_backward(const Tensor& grad, const Tensor& y, double scale);
std::pair<Tensor, Tensor> attention_forward(const Tensor& qkv, int64_t n_head, const Tensor& mask);
Tensor attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head, const Tensor& mask);
// optim.cpp
void adamw_step_(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s);

}  // namespace minipipe::cpu
