// Copies between layouts and dtypes: contiguous, clone, copy_ (with broadcasting and dtype
// conversion), to(dtype), fill_.
#include <atomic>
#include <type_traits>

#include "tensor/cpu/loops.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {

// Float -> int64 is undefined behaviour in C++ for NaN, infinities and anything outside
// [-2^63, 2^63) (both bounds are exact in float and double). Such a value is the caller's error.
template <typename From>
bool fits_int64(From v) {
  return v >= From(-0x1p63) && v < From(0x1p63);  // false for NaN
}

template <typename From>
void check_fits_int64(const char* op, const Tensor& src) {
  // One offending value is enough for the message; threads may race to store theirs.
  std::atomic<bool> bad{false};
  std::atomic<double> value{0.0};
  const From* x = src.data_ptr<From>();
  cpu::strided_loop<1>(src.sizes(), {src.strides()},
                       [x, &bad, &value](std::array<int64_t, 1> off, int64_t n, std::array<int64_t, 1> st) {
                         for (int64_t i = 0; i < n; ++i) {
                           const From v = x[off[0] + i * st[0]];
                           if (!fits_int64(v)) {
                             value.store(static_cast<double>(v), std::memory_order_relaxed);
                             bad.store(true, std::memory_order_relaxed);
                           }
                         }
                       });
  MP_CHECK(!bad.load(), op, ": cannot convert ", dtype_name(src.dtype()), " value ", value.load(),
           " of a tensor ", shape_str(src.sizes()), " to int64 (NaN, infinite, or outside [-2^63, 2^63))");
}

template <typename To, typename From>
void copy_typed(const Tensor& dst, const Tensor& src) {
  To* o = dst.data_ptr<To>();
  const From* x = src.data_ptr<From>();
  cpu::strided_loop<2>(dst.sizes(), {dst.strides(), cpu::broadcast_strides(src, dst.sizes())},
                       [=](std::array<int64_t, 2> off, int64_t n, std::array<int64_t, 2> st) {
                         To* po = o + off[0];
                         const From* px = x + off[1];
                         if (st[0] == 1 && st[1] == 1) {
                           for (int64_t i = 0; i < n; ++i) po[i] = static_cast<To>(px[i]);
                         } else {
                           for (int64_t i = 0; i < n; ++i) po[i * st[0]] = static_cast<To>(px[i * st[1]]);
                         }
                       });
}

}  // namespace

void copy_(const Tensor& dst, const Tensor& src) {
  cpu::check_writable("copy_", dst);
  MP_CHECK(broadcast_shapes(dst.sizes(), src.sizes(), "copy_") == dst.sizes(), "copy_: cannot copy shape ",
           shape_str(src.sizes()), " into ", shape_str(dst.sizes()));
  if (dst.dtype() == DType::Int64 && is_floating(src.dtype()))  // checked before anything is written
    MP_DISPATCH_FLOAT(src.dtype(), "copy_", [&] { check_fits_int64<scalar_t>("copy_", src); });
  MP_DISPATCH_ALL(dst.dtype(), "copy_", [&] {
    using To = scalar_t;
    MP_DISPATCH_ALL(src.dtype(), "copy_", [&] { copy_typed<To, scalar_t>(dst, src); });
  });
}

void fill_(const Tensor& t, double value) {
  cpu::check_writable("fill_", t);
  MP_CHECK(t.dtype() != DType::Int64 || fits_int64(value), "fill_: cannot convert value ", value,
           " to int64 (NaN, infinite, or outside [-2^63, 2^63))");
  MP_DISPATCH_ALL(t.dtype(), "fill_", [&] {
    const auto v = static_cast<scalar_t>(value);
    scalar_t* o = t.data_ptr<scalar_t>();
    cpu::strided_loop<1>(t.sizes(), {t.strides()},
                         [=](std::array<int64_t, 1> off, int64_t n, std::array<int64_t, 1> st) {
                           for (int64_t i = 0; i < n; ++i) o[off[0] + i * st[0]] = v;
                         });
  });
}

}  // namespace minipipe::cpu
