// The raw ops a backend implements, listed once: X(return type, name, (parameters)). The list makes
// the Backend table's entries (tensor/backend.h), each backend's kernel declarations
// (tensor/cpu/kernels.h, tensor/cuda/ops_common.h) and each backend's table (MP_BACKEND_TABLE_ENTRY),
// so adding a raw op means one line here (plus its documented form in tensor/ops.h and its
// dispatch in tensor/dispatch.cpp), and a backend is a folder defining these functions.
// Return types with commas go by the aliases below (a macro argument cannot hold a bare comma).
#pragma once

#include <tuple>
#include <utility>
#include <vector>

#include "tensor/generator.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace minipipe {

using TensorPair = std::pair<Tensor, Tensor>;
using TensorTriple = std::tuple<Tensor, Tensor, Tensor>;

// clang-format off
#define MP_BACKEND_OPS(X)                                                                                  \
  /* copies (same device; src broadcasts to dst, dtypes may differ) */                                     \
  X(void, copy_, (const Tensor& dst, const Tensor& src))                                                   \
  X(void, fill_, (const Tensor& t, double value))                                                          \
  /* elementwise */                                                                                        \
  X(Tensor, add, (const Tensor& a, const Tensor& b))                                                       \
  X(Tensor, sub, (const Tensor& a, const Tensor& b))                                                       \
  X(Tensor, mul, (const Tensor& a, const Tensor& b))                                                       \
  X(Tensor, div, (const Tensor& a, const Tensor& b))                                                       \
  X(Tensor, maximum, (const Tensor& a, const Tensor& b))                                                   \
  X(Tensor, add_scalar, (const Tensor& a, double s))                                                       \
  X(Tensor, mul_scalar, (const Tensor& a, double s))                                                       \
  X(Tensor, pow_scalar, (const Tensor& a, double exponent))                                                \
  X(Tensor, neg, (const Tensor& a))                                                                        \
  X(Tensor, exp, (const Tensor& a))                                                                        \
  X(Tensor, log, (const Tensor& a))                                                                        \
  X(Tensor, sqrt, (const Tensor& a))                                                                       \
  X(Tensor, abs, (const Tensor& a))                                                                        \
  X(Tensor, tanh, (const Tensor& a))                                                                       \
  X(Tensor, sigmoid, (const Tensor& a))                                                                    \
  X(Tensor, relu, (const Tensor& a))                                                                       \
  X(Tensor, gelu, (const Tensor& a))                                                                       \
  X(Tensor, eq, (const Tensor& a, const Tensor& b))                                                        \
  X(Tensor, ne, (const Tensor& a, const Tensor& b))                                                        \
  X(Tensor, lt, (const Tensor& a, const Tensor& b))                                                        \
  X(Tensor, le, (const Tensor& a, const Tensor& b))                                                        \
  X(Tensor, gt, (const Tensor& a, const Tensor& b))                                                        \
  X(Tensor, ge, (const Tensor& a, const Tensor& b))                                                        \
  X(Tensor, where, (const Tensor& cond, const Tensor& a, const Tensor& b))                                  \
  X(void, add_, (const Tensor& a, const Tensor& b, double alpha))                                          \
  X(void, mul_scalar_, (const Tensor& a, double s))                                                        \
  X(Tensor, relu_backward, (const Tensor& grad, const Tensor& x))                                          \
  X(Tensor, gelu_backward, (const Tensor& grad, const Tensor& x))                                          \
  X(Tensor, tanh_backward, (const Tensor& grad, const Tensor& y))                                          \
  X(Tensor, sigmoid_backward, (const Tensor& grad, const Tensor& y))                                       \
  /* reductions */                                                                                         \
  X(Tensor, sum, (const Tensor& t, std::vector<int64_t> dims, bool keepdim))                               \
  X(TensorPair, max, (const Tensor& t, int64_t dim, bool keepdim))                                         \
  /* softmax family */                                                                                     \
  X(Tensor, softmax, (const Tensor& t, int64_t dim))                                                       \
  X(Tensor, log_softmax, (const Tensor& t, int64_t dim))                                                   \
  X(Tensor, softmax_backward, (const Tensor& grad, const Tensor& y, int64_t dim))                          \
  X(Tensor, log_softmax_backward, (const Tensor& grad, const Tensor& y, int64_t dim))                      \
  X(TensorPair, cross_entropy, (const Tensor& logits, const Tensor& targets))                              \
  X(Tensor, cross_entropy_backward, (const Tensor& grad, const Tensor& probs, const Tensor& targets))       \
  /* matrix products */                                                                                    \
  X(Tensor, matmul, (const Tensor& a, const Tensor& b))                                                    \
  X(void, addmm_, (const Tensor& c, const Tensor& a, const Tensor& b))                                     \
  /* joining and indexing */                                                                               \
  X(Tensor, index_select, (const Tensor& t, int64_t dim, const Tensor& index))                             \
  X(Tensor, index_add, (const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src))          \
  X(Tensor, one_hot, (const Tensor& index, int64_t num_classes, DType dtype))                              \
  /* random */                                                                                             \
  X(Tensor, dropout_mask, (const Shape& shape, TensorOptions opts, double p, const RandomSource& src))     \
  /* transformer kernels */                                                                                \
  X(TensorTriple, layernorm, (const Tensor& x, const Tensor& weight, const Tensor& bias, double eps))      \
  X(TensorTriple, layernorm_backward,                                                                      \
    (const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd))    \
  X(Tensor, embedding, (const Tensor& weight, const Tensor& index))                                        \
  X(Tensor, embedding_backward, (const Tensor& grad, const Tensor& index, int64_t num_embeddings))         \
  X(Tensor, causal_softmax, (const Tensor& att, double scale))                                             \
  X(Tensor, causal_softmax_backward, (const Tensor& grad, const Tensor& y, double scale))                  \
  X(TensorPair, attention_forward, (const Tensor& qkv, int64_t n_head, const Tensor& mask))                \
  X(Tensor, attention_backward,                                                                            \
    (const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head, const Tensor& mask))         \
  /* optimizer: one fused update of p in place (ops::adamw_step_, ops::sgd_step_: the arithmetic) */     \
  X(void, adamw_step_, (const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v,             \
                        const ops::AdamWStep& s))                                                          \
  X(void, sgd_step_, (const Tensor& p, const Tensor& grad, const Tensor& buf, const ops::SGDStep& s))
// clang-format on

// X-macros over the list: a kernel's declaration in a backend's namespace, and its table entry
// (`.add = add,`: the backend's function of that name).
#define MP_DECLARE_BACKEND_KERNEL(ret, name, params) ret name params;
#define MP_BACKEND_TABLE_ENTRY(ret, name, params) .name = name,

}  // namespace minipipe
