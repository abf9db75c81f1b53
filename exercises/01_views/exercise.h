// Exercise 1, strides and views: the functions a student writes (exercises/01_views/README.md).
// The student's code goes in stub.cpp; solution.cpp is the reference; test_01.cpp grades either.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace exercises {

using minipipe::Shape;
using minipipe::Tensor;

// The strides of a row-major (C order) tensor of this shape, in elements: [2, 3, 4] -> [12, 4, 1].
// A dimension of size 0 counts as size 1 in the products (as in PyTorch): [2, 0, 3] -> [3, 3, 1].
Shape row_major_strides(const Shape& sizes);

// t with dims d0 and d1 swapped, as a view: same storage, same storage offset, no copy. Negative
// dims count from the end (-1 is the last); a dim out of range is a minipipe::Error naming it.
Tensor transpose_view(const Tensor& t, int64_t d0, int64_t d1);

// A fresh row-major tensor with t's values, dtype and sizes (always a copy, never t's storage).
// t may be any view: transposed, sliced (storage offset), stepped, expanded (stride 0), 0-dim,
// empty; float32, float64 or int64.
Tensor contiguous_copy(const Tensor& t);

}  // namespace exercises
