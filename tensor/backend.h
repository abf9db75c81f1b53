// A backend: the table of kernels one device type implements, one entry per raw op of
// tensor/ops.h that touches memory. tensor/dispatch.cpp is the one dispatch point per op: it checks
// that every tensor is defined and on one device, then calls the entry of that device's backend.
// tensor/cpu/ fills the CPU table (the reference for every kernel), tensor/cuda/ the CUDA one.
// Adding a backend: a folder that fills a Backend and one line in tensor/backend.cpp.
#pragma once

#include <cstddef>
#include <tuple>
#include <utility>
#include <vector>

#include "tensor/generator.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace minipipe {

// An entry left null is an op the backend has no kernel for: calling it is an Error naming the op
// and the device, never a silent fallback to another device.
struct Backend {
  const char* name = nullptr;

  // ---- memory (the CPU keeps its own allocator, tensor/allocator.h; Storage calls it directly) ----
  // A block of at least nbytes on device `index`; block_bytes gets the size it really has.
  void* (*allocate)(size_t nbytes, int index, size_t& block_bytes) = nullptr;
  void (*deallocate)(void* block, size_t block_bytes, int index) = nullptr;
  // dst and src on different devices, one of them this backend's (same shape, same dtype,
  // contiguous or not: the backend stages what it must).
  void (*copy_across)(const Tensor& dst, const Tensor& src) = nullptr;

  // ---- copies (same device; src broadcasts to dst, dtypes may differ) ----
  void (*copy_)(const Tensor& dst, const Tensor& src) = nullptr;
  void (*fill_)(const Tensor& t, double value) = nullptr;

  // ---- elementwise ----
  Tensor (*add)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*sub)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*mul)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*div)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*maximum)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*add_scalar)(const Tensor&, double) = nullptr;
  Tensor (*mul_scalar)(const Tensor&, double) = nullptr;
  Tensor (*pow_scalar)(const Tensor&, double) = nullptr;
  Tensor (*neg)(const Tensor&) = nullptr;
  Tensor (*exp)(const Tensor&) = nullptr;
  Tensor (*log)(const Tensor&) = nullptr;
  Tensor (*sqrt)(const Tensor&) = nullptr;
  Tensor (*abs)(const Tensor&) = nullptr;
  Tensor (*tanh)(const Tensor&) = nullptr;
  Tensor (*sigmoid)(const Tensor&) = nullptr;
  Tensor (*relu)(const Tensor&) = nullptr;
  Tensor (*gelu)(const Tensor&) = nullptr;
  Tensor (*eq)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*ne)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*lt)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*le)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*gt)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*ge)(const Tensor&, const Tensor&) = nullptr;
  Tensor (*where)(const Tensor& cond, const Tensor& a, const Tensor& b) = nullptr;
  void (*add_)(const Tensor& a, const Tensor& b, double alpha) = nullptr;
  void (*mul_scalar_)(const Tensor& a, double s) = nullptr;
  Tensor (*relu_backward)(const Tensor& grad, const Tensor& x) = nullptr;
  Tensor (*gelu_backward)(const Tensor& grad, const Tensor& x) = nullptr;
  Tensor (*tanh_backward)(const Tensor& grad, const Tensor& y) = nullptr;
  Tensor (*sigmoid_backward)(const Tensor& grad, const Tensor& y) = nullptr;

  // ---- reductions ----
  Tensor (*sum)(const Tensor& t, std::vector<int64_t> dims, bool keepdim) = nullptr;
  std::pair<Tensor, Tensor> (*max)(const Tensor& t, int64_t dim, bool keepdim) = nullptr;

  // ---- softmax family ----
  Tensor (*softmax)(const Tensor& t, int64_t dim) = nullptr;
  Tensor (*log_softmax)(const Tensor& t, int64_t dim) = nullptr;
  Tensor (*softmax_backward)(const Tensor& grad, const Tensor& y, int64_t dim) = nullptr;
  Tensor (*log_softmax_backward)(const Tensor& grad, const Tensor& y, int64_t dim) = nullptr;
  std::pair<Tensor, Tensor> (*cross_entropy)(const Tensor& logits, const Tensor& targets) = nullptr;
  Tensor (*cross_entropy_backward)(const Tensor& grad, const Tensor& probs, const Tensor& targets) = nullptr;

  // ---- matrix products ----
  Tensor (*matmul)(const Tensor& a, const Tensor& b) = nullptr;
  void (*addmm_)(const Tensor& c, const Tensor& a, const Tensor& b) = nullptr;

  // ---- joining and indexing ----
  Tensor (*index_select)(const Tensor& t, int64_t dim, const Tensor& index) = nullptr;
  Tensor (*index_add)(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) = nullptr;
  Tensor (*one_hot)(const Tensor& index, int64_t num_classes, DType dtype) = nullptr;

  // ---- random ----
  Tensor (*dropout_mask)(const Shape& shape, TensorOptions opts, double p, const RandomSource& src) = nullptr;

  // ---- transformer kernels ----
  std::tuple<Tensor, Tensor, Tensor> (*layernorm)(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                  double eps) = nullptr;
  std::tuple<Tensor, Tensor, Tensor> (*layernorm_backward)(const Tensor& dout, const Tensor& x, const Tensor& weight,
                                                           const Tensor& mean, const Tensor& rstd) = nullptr;
  Tensor (*embedding)(const Tensor& weight, const Tensor& index) = nullptr;
  Tensor (*embedding_backward)(const Tensor& grad, const Tensor& index, int64_t num_embeddings) = nullptr;
  Tensor (*causal_softmax)(const Tensor& att, double scale) = nullptr;
  Tensor (*causal_softmax_backward)(const Tensor& grad, const Tensor& y, double scale) = nullptr;
  std::pair<Tensor, Tensor> (*attention_forward)(const Tensor& qkv, int64_t n_head, const Tensor& mask) = nullptr;
  Tensor (*attention_backward)(const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head,
                               const Tensor& mask) = nullptr;

  // ---- optimizer ----
  // One fused AdamW update of p in place (ops::adamw_step_ documents the arithmetic).
  void (*adamw_step_)(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v,
                      const ops::AdamWStep& s) = nullptr;
};

// The backend of a device type (CPU always; CUDA in CUDA builds); throws naming the device when
// none is built for it.
const Backend& backend_for(Device device);

// The backends this build registered (tensor/backend.cpp), indexed by DeviceType.
const Backend* registered_backend(DeviceType type);

}  // namespace minipipe
