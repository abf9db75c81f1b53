// Exercise 1's grader: the student's row_major_strides, transpose_view and contiguous_copy against
// an op table (as tests/test_tensor_ops.cpp: one entry per case, expected geometry and values from
// the project's own ops::transpose / ops::contiguous and from hand-computed values).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "exercise.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace {

using namespace minipipe;
using exercises::contiguous_copy;
using exercises::row_major_strides;
using exercises::transpose_view;

Tensor f64(std::vector<double> v, Shape s) { return from_vector(v, std::move(s)); }
const Tensor A = f64({1, 2, 3, 4, 5, 6}, {2, 3});                                        // [[1,2,3],[4,5,6]]
const Tensor X3 = ops::reshape(arange(0.0, 24.0, 1.0, DType::Float64), {2, 3, 4});      // 0..23

// Values of any dtype as doubles, in row-major order (the project's own strided read).
std::vector<double> values(const Tensor& t) { return ops::to(ops::contiguous(t), DType::Float64).to_vector<double>(); }

// ---- row_major_strides ----

TEST(RowMajorStrides, MatchTheRowMajorRule) {
  const std::vector<Shape> shapes = {{}, {5}, {2, 3}, {2, 3, 4}, {4, 1, 3}, {2, 0, 3}, {1, 1}};
  for (const Shape& s : shapes) {
    const Shape want = contiguous_strides(s);
    EXPECT_EQ(shape_str(row_major_strides(s)), shape_str(want))
        << "row_major_strides(" << shape_str(s) << ") should be " << shape_str(want)
        << ": the last dim has stride 1, each earlier dim the product of the sizes after it (a size 0 counting as 1)";
  }
}

// ---- transpose_view: the op table ----

struct ViewCase {
  std::string name;
  Tensor input;
  int64_t d0, d1;
};

std::vector<ViewCase> view_cases() {
  return {
      {"2-D [2, 3], dims 0 and 1", A, 0, 1},
      {"3-D [2, 3, 4], dims 0 and 2", X3, 0, 2},
      {"3-D [2, 3, 4], dims 1 and 2", X3, 1, 2},
      {"negative dims -1 and -3 of [2, 3, 4]", X3, -1, -3},
      {"the same dim twice (a no-op view)", X3, 1, 1},
      {"a slice with a storage offset (rows 1.. of [4, 6])",
       ops::slice(ops::reshape(arange(0.0, 24.0, 1.0, DType::Float64), {4, 6}), 0, 1, 4), 0, 1},
      {"float32", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {3, 2}), 0, 1},
      {"int64", from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, {1, 6}), 1, 0},
  };
}

TEST(TransposeView, OpTableGeometryAndValues) {
  for (const ViewCase& c : view_cases()) {
    SCOPED_TRACE("case: transpose_view of " + c.name);
    const Tensor want = ops::transpose(c.input, c.d0, c.d1);
    const Tensor got = transpose_view(c.input, c.d0, c.d1);
    ASSERT_TRUE(got.defined()) << "transpose_view returned an undefined tensor";
    EXPECT_EQ(shape_str(got.sizes()), shape_str(want.sizes())) << "sizes: the two dims' sizes should be swapped";
    EXPECT_EQ(shape_str(got.strides()), shape_str(want.strides()))
        << "strides: a view swaps the two dims' strides too (the data does not move)";
    EXPECT_EQ(got.storage_offset(), want.storage_offset())
        << "storage offset: a transposed view starts at the same element as its input";
    EXPECT_EQ(got.dtype(), c.input.dtype()) << "dtype changed from " << dtype_name(c.input.dtype()) << " to "
                                            << dtype_name(got.dtype());
    EXPECT_TRUE(got.shares_storage(c.input)) << "not a view: the result should share its input's storage (no copy)";
    if (got.sizes() == want.sizes()) {
      EXPECT_EQ(values(got), values(want)) << "values read through the view differ";
    }
  }
}

TEST(TransposeView, HandComputedValues) {
  // [[1,2,3],[4,5,6]]^T = [[1,4],[2,5],[3,6]]
  const Tensor t = transpose_view(A, 0, 1);
  EXPECT_EQ(shape_str(t.sizes()), "[3, 2]");
  EXPECT_EQ(values(t), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  // Transposing twice gives back the input's geometry.
  const Tensor tt = transpose_view(t, 1, 0);
  EXPECT_EQ(shape_str(tt.strides()), shape_str(A.strides())) << "transposing twice should restore the strides";
}

TEST(TransposeView, WritesThroughTheViewReachTheInput) {
  Tensor base = zeros({2, 3}, DType::Float64);
  Tensor t = transpose_view(base, 0, 1);  // [3, 2]
  ASSERT_EQ(shape_str(t.sizes()), "[3, 2]");
  // Element [2, 1] of the view is element [1, 2] of the input.
  t.data_ptr<double>()[2 * t.stride(0) + 1 * t.stride(1)] = 7;
  EXPECT_EQ(values(base), (std::vector<double>{0, 0, 0, 0, 0, 7}))
      << "writing view[2][1] should change input[1][2]: the view must share the input's memory";
}

TEST(TransposeView, ADimOutOfRangeIsAnErrorNamingIt) {
  try {
    transpose_view(A, 0, 2);
    ADD_FAILURE() << "transpose_view(a 2-D tensor, 0, 2) should throw minipipe::Error: dim 2 does not exist";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(msg.find('2') != std::string::npos && msg.find("not implemented") == std::string::npos)
        << "the error should name the bad dim (2); it says: " << msg;
  }
}

// ---- contiguous_copy: the op table ----

struct CopyCase {
  std::string name;
  Tensor input;
};

std::vector<CopyCase> copy_cases() {
  const Tensor m46 = ops::reshape(arange(0.0, 24.0, 1.0, DType::Float64), {4, 6});
  return {
      {"a contiguous [2, 3] (still a copy)", A},
      {"the transpose of [2, 3]", ops::transpose(A, 0, 1)},
      {"a permuted 3-D tensor [4, 2, 3]", ops::permute(X3, {2, 0, 1})},
      {"a slice with a storage offset: rows 1..3, columns 2..5 of [4, 6]",
       ops::slice(ops::slice(m46, 0, 1, 3), 1, 2, 5)},
      {"a stepped slice: every other column of [4, 6]", ops::slice(m46, 1, 0, 6, 2)},
      {"one column selected (offset and stride 6)", ops::select(m46, 1, 3)},
      {"an expanded row (stride 0) [1, 3] -> [4, 3]", ops::expand(f64({1, 2, 3}, {1, 3}), {4, 3})},
      {"a 0-dim scalar", scalar_tensor(2.5, DType::Float64)},
      {"an empty [0, 3]", zeros({0, 3}, DType::Float64)},
      {"float32, transposed", ops::transpose(from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}), 0, 1)},
      {"int64, transposed and sliced",
       ops::slice(ops::transpose(from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}), 0, 1), 0, 1, 4)},
  };
}

TEST(ContiguousCopy, OpTableValuesAndLayout) {
  for (const CopyCase& c : copy_cases()) {
    SCOPED_TRACE("case: contiguous_copy of " + c.name + ", sizes " + shape_str(c.input.sizes()) + " strides " +
                 shape_str(c.input.strides()) + " offset " + std::to_string(c.input.storage_offset()));
    const Tensor want = ops::contiguous(c.input);
    const Tensor got = contiguous_copy(c.input);
    ASSERT_TRUE(got.defined()) << "contiguous_copy returned an undefined tensor";
    EXPECT_EQ(shape_str(got.sizes()), shape_str(c.input.sizes())) << "sizes should be the input's";
    EXPECT_EQ(got.dtype(), c.input.dtype()) << "dtype changed from " << dtype_name(c.input.dtype()) << " to "
                                            << dtype_name(got.dtype());
    EXPECT_TRUE(got.is_contiguous()) << "the result should be row-major: strides " << shape_str(got.strides())
                                     << ", expected " << shape_str(contiguous_strides(got.sizes()));
    EXPECT_FALSE(got.numel() > 0 && got.shares_storage(c.input))
        << "the result shares the input's storage: contiguous_copy must always copy";
    if (got.sizes() == c.input.sizes() && got.dtype() == c.input.dtype()) {
      EXPECT_EQ(values(got), values(want)) << "values differ from ops::contiguous (row-major order of the view)";
    }
  }
}

TEST(ContiguousCopy, HandComputedValues) {
  // The transpose of [[1,2,3],[4,5,6]] laid out row-major: 1 4 2 5 3 6.
  const Tensor c = contiguous_copy(ops::transpose(A, 0, 1));
  ASSERT_EQ(c.dtype(), DType::Float64);
  const std::vector<double> got(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  EXPECT_EQ(got, (std::vector<double>{1, 4, 2, 5, 3, 6})) << "the copy's memory should hold the view's values in row-major order";
}

TEST(ContiguousCopy, TheCopyIsIndependentOfItsInput) {
  Tensor base = f64({1, 2, 3, 4}, {2, 2});
  Tensor c = contiguous_copy(ops::transpose(base, 0, 1));
  base.data_ptr<double>()[0] = 100;
  ASSERT_EQ(c.numel(), 4);
  EXPECT_EQ(values(c)[0], 1) << "changing the input after the copy changed the copy: it must own its memory";
}

// Both together: what ops::contiguous(ops::transpose(...)) does, the student's way.
TEST(ViewsTogether, TransposeThenCopyIsARealTranspose) {
  const Tensor t = contiguous_copy(transpose_view(X3, 0, 2));  // [4, 3, 2]
  EXPECT_EQ(shape_str(t.sizes()), "[4, 3, 2]");
  EXPECT_EQ(shape_str(t.strides()), "[6, 2, 1]");
  EXPECT_EQ(values(t), values(ops::contiguous(ops::transpose(X3, 0, 2))));
}

}  // namespace
