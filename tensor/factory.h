// Tensor factories: zeros, ones, full, arange, rand, randn, from_vector. Random ones draw from
// a Generator (the default one unless given), so the same seed gives the same numbers.
#pragma once

#include <vector>

#include "tensor/generator.h"
#include "tensor/tensor.h"

namespace minipipe {

Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});  // 0-dim
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = {});
Tensor arange(int64_t end, TensorOptions opts = {});
Tensor rand(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);   // U[0, 1)
Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);  // N(0, 1)
Tensor uniform(const Shape& shape, double lo, double hi, TensorOptions opts = {},
               Generator* gen = nullptr);
// Copy `values` into a new tensor of `shape` (default: 1-D); the dtype follows T.
Tensor from_vector(const std::vector<float>& values, Shape shape = {});
Tensor from_vector(const std::vector<double>& values, Shape shape = {});
Tensor from_vector(const std::vector<int64_t>& values, Shape shape = {});

}  // namespace minipipe
