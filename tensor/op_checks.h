// Argument checks and operand layouts that every backend's kernels share (tensor/cpu/, tensor/cuda/):
// written once, so an op refuses the same inputs with the same message on every device.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace minipipe::checks {

// LayerNorm over the last dim: x [..., C], weight [C] of x's dtype; returns C.
int64_t layernorm(const char* op, const Tensor& x, const Tensor& weight);
// Causal-softmax scores [..., Tq, Tk] with Tq <= Tk and a positive scale; returns (Tq, Tk).
std::pair<int64_t, int64_t> scores(const char* op, const Tensor& att, double scale);

// Fused attention over qkv [B, T, 3C] with H heads of hd = C / H.
struct Heads {
  int64_t B, T, C, H, hd;
};
Heads qkv(const char* op, const Tensor& qkv, int64_t n_head);
// The dropout mask, when defined: [B, H, T, T] of qkv's dtype.
void attention_mask(const char* op, const Tensor& mask, const Heads& h, const Tensor& qkv);

// How a [rows, cols] matrix with strides (rs, cs) is a GEMM operand: row-major with leading dim
// ld, or column-major (stored transposed); ok = false: it is neither, copy it contiguous first.
struct GemmLayout {
  bool ok = false;
  bool col_major = false;
  int64_t ld = 1;
};
GemmLayout gemm_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs);

// matmul(a, b) as a batch of [n, k] x [k, m] products: the operands checked (at least 1 dim, one
// dtype, matching inner dims, batch dims that broadcast), 1-D ones made a row (left) or a column
// (right), and both expanded to the broadcast batch. The output is out_shape, then drop dim -2 if
// a_vec and dim -1 if b_vec.
struct Matmul {
  Tensor a, b;
  int64_t n = 0, k = 0, m = 0;
  Shape batch, out_shape;
  bool a_vec = false, b_vec = false;
};
Matmul matmul(const Tensor& a, const Tensor& b);
// Element offsets of every batch's matrix in a and b (batch dims of stride 0 where broadcast).
std::pair<std::vector<int64_t>, std::vector<int64_t>> batch_offsets(const Shape& batch, const Tensor& a,
                                                                    const Tensor& b);

// adamw_step_'s operands: one shape, one dtype, contiguous, step >= 1.
void adamw(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s);
// sgd_step_'s operands: one shape, one dtype, contiguous; a buffer exactly when momentum != 0.
void sgd(const Tensor& p, const Tensor& grad, const Tensor& buf, const ops::SGDStep& s);

}  // namespace minipipe::checks
