// The CPU kernels behind the raw ops (tensor/ops.h), one per entry of the CPU Backend table
// (tensor/cpu/backend.cpp). Same signatures as the ops; the kernels call each other directly
// (no dispatch), and reach the device-independent ops (views, compositions) through `ops`.
#pragma once

#include "tensor/backend.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

using namespace ::minipipe::ops;  // views and compositions: reshape, contiguous, to, ...

extern const Backend kBackend;

// One kernel per entry of tensor/backend_ops.h, defined in the family's file (copy.cpp,
// elementwise.cpp, reduce.cpp, softmax.cpp, matmul.cpp, index.cpp, random.cpp, layernorm.cpp,
// embedding.cpp, attention.cpp, optim.cpp).
MP_BACKEND_OPS(MP_DECLARE_BACKEND_KERNEL)

// The ops' default arguments, for kernels that call each other (a table entry cannot carry them).
inline void add_(const Tensor& a, const Tensor& b) { add_(a, b, 1.0); }
inline Tensor sum(const Tensor& t, std::vector<int64_t> dims) { return sum(t, std::move(dims), false); }
inline TensorPair max(const Tensor& t, int64_t dim) { return max(t, dim, false); }

}  // namespace minipipe::cpu
