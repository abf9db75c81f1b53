// CPU elementwise ops with NumPy broadcasting: arithmetic, activations and their derivatives,
// comparisons, where / masked_fill. Each op is one line naming its scalar function; the loops
// live in loops.h.
#include <cmath>

#include "tensor/cpu/fast_math.h"
#include "tensor/cpu/loops.h"
#include "tensor/factory.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  const int64_t lead = static_cast<int64_t>(shape.size()) - t.dim();
  for (int64_t i = 0; i < t.dim(); ++i)
    st[lead + i] = t.size(i) == 1 ? 0 : t.stride(i);
  return st;
}

namespace {

template <typename T, typename F>
void unary_into(const Tensor& out, const Tensor& a, F f) {
  T* o = out.data_ptr<T>();
  const T* x = a.data_ptr<T>();
  strided_loop<2>(out.sizes(), {out.strides(), broadcast_strides(a, out.sizes())},
                  [=](std::array<int64_t, 2> off, int64_t n, std::array<int64_t, 2> st) {
                    T* po = o + off[0];
                    const T* px = x + off[1];
                    if (st[0] == 1 && st[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) po[i] = static_cast<T>(f(px[i]));
                    } else {
                      for (int64_t i = 0; i < n; ++i) po[i * st[0]] = static_cast<T>(f(px[i * st[1]]));
                    }
                  });
}

template <typename T, typename F>
void binary_into(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  T* o = out.data_ptr<T>();
  const T* x = a.data_ptr<T>();
  const T* y = b.data_ptr<T>();
  strided_loop<3>(out.sizes(),
                  {out.strides(), broadcast_strides(a, out.sizes()), broadcast_strides(b, out.sizes())},
                  [=](std::array<int64_t, 3> off, int64_t n, std::array<int64_t, 3> st) {
                    T* po = o + off[0];
                    const T* px = x + off[1];
                    const T* py = y + off[2];
                    // The common cases get their own loops so they vectorise.
                    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
                      for (int64_t i = 0; i < n; ++i) po[i] = static_cast<T>(f(px[i], py[i]));
                    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
                      const T yv = *py;
                      for (int64_t i = 0; i < n; ++i) po[i] = static_cast<T>(f(px[i], yv));
                    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
                      const T xv = *px;
                      for (int64_t i = 0; i < n; ++i) po[i] = static_cast<T>(f(xv, py[i]));
                    } else {
                      for (int64_t i = 0; i < n; ++i)
                        po[i * st[0]] = static_cast<T>(f(px[i * st[1]], py[i * st[2]]));
                    }
                  });
}

template <bool kFloatOnly, typename F>
Tensor unary(const char* op, const Tensor& a, F f) {
  Tensor out = empty(a.sizes(), a.options());
  if constexpr (kFloatOnly) {
    MP_DISPATCH_FLOAT(a.dtype(), op, [&] { unary_into<scalar_t>(out, a, f); });
  } else {
    MP_DISPATCH_ALL(a.dtype(), op, [&] { unary_into<scalar_t>(out, a, f); });
  }
  return out;
}

template <bool kFloatOnly, typename F>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  MP_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", dtype_name(a.dtype()), " ",
           shape_str(a.sizes()), " and ", dtype_name(b.dtype()), " ", shape_str(b.sizes()));
  Tensor out = empty(broadcast_shapes(a.sizes(), b.sizes(), op), a.options());
  if constexpr (kFloatOnly) {
    MP_DISPATCH_FLOAT(a.dtype(), op, [&] { binary_into<scalar_t>(out, a, b, f); });
  } else {
    MP_DISPATCH_ALL(a.dtype(), op, [&] { binary_into<scalar_t>(out, a, b, f); });
  }
  return out;
}

// GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2/pi).
constexpr double kGeluK = 0.7978845608028654, kGeluC = 0.044715;

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary<false>("add", a, b, [](auto x, auto y) { return x + y; }); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary<false>("sub", a, b, [](auto x, auto y) { return x - y; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary<false>("mul", a, b, [](auto x, auto y) { return x * y; }); }
Tensor div(const Tensor& a, const Tensor& b) { return binary<true>("div", a, b, [](auto x, auto y) { return x / y; }); }
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary<false>("maximum", a, b, [](auto x, auto y) { return x > y ? x : y; });
}

Tensor add_scalar(const Tensor& a, double s) {
  return unary<true>("add_scalar", a, [s](auto x) { return x + static_cast<decltype(x)>(s); });
}
Tensor mul_scalar(const Tensor& a, double s) {
  return unary<true>("mul_scalar", a, [s](auto x) { return x * static_cast<decltype(x)>(s); });
}
Tensor pow_scalar(const Tensor& a, double e) {
  if (e == 2.0) return unary<true>("pow", a, [](auto x) { return x * x; });
  return unary<true>("pow", a, [e](auto x) { return std::pow(x, static_cast<decltype(x)>(e)); });
}
Tensor neg(const Tensor& a) { return unary<false>("neg", a, [](auto x) { return -x; }); }
Tensor exp(const Tensor& a) { return unary<true>("exp", a, [](auto x) { return cpu::fast_exp(x); }); }
Tensor log(const Tensor& a) { return unary<true>("log", a, [](auto x) { return cpu::fast_log(x); }); }
Tensor sqrt(const Tensor& a) { return unary<true>("sqrt", a, [](auto x) { return std::sqrt(x); }); }
Tensor abs(const Tensor& a) { return unary<false>("abs", a, [](auto x) { return x < 0 ? -x : x; }); }
Tensor tanh(const Tensor& a) { return unary<true>("tanh", a, [](auto x) { return cpu::fast_tanh(x); }); }
Tensor sigmoid(const Tensor& a) {
  return unary<true>("sigmoid", a, [](auto x) { return cpu::fast_sigmoid(x); });
}
Tensor relu(const Tensor& a) {
  return unary<true>("relu", a, [](auto x) { return x > 0 ? x : decltype(x)(0); });
}
Tensor gelu(const Tensor& a) { return unary<true>("gelu", a, [](auto x) { return cpu::fast_gelu(x); }); }

Tensor relu_backward(const Tensor& g, const Tensor& x) {
  return binary<true>("relu_backward", g, x, [](auto gv, auto xv) { return xv > 0 ? gv : decltype(gv)(0); });
}
Tensor gelu_backward(const Tensor& g, const Tensor& x) {
  // d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(k (x + c x^3))
  return binary<true>("gelu_backward", g, x, [](auto gv, auto xv) {
    using T = decltype(xv);
    T t = cpu::fast_tanh(T(kGeluK) * (xv + T(kGeluC) * xv * xv * xv));
    T d = T(0.5) * (T(1) + t) + T(0.5) * xv * (T(1) - t * t) * T(kGeluK) * (T(1) + T(3 * kGeluC) * xv * xv);
    return gv * d;
  });
}
Tensor tanh_backward(const Tensor& g, const Tensor& y) {
  return binary<true>("tanh_backward", g, y, [](auto gv, auto yv) { return gv * (decltype(yv)(1) - yv * yv); });
}
Tensor sigmoid_backward(const Tensor& g, const Tensor& y) {
  return binary<true>("sigmoid_backward", g, y, [](auto gv, auto yv) { return gv * yv * (decltype(yv)(1) - yv); });
}

#define MP_COMPARE(name, expr)                                                        \
  Tensor name(const Tensor& a, const Tensor& b) {                                     \
    return binary<false>(#name, a, b, [](auto x, auto y) { return decltype(x)(expr); }); \
  }
MP_COMPARE(eq, x == y)
MP_COMPARE(ne, x != y)
MP_COMPARE(lt, x < y)
MP_COMPARE(le, x <= y)
MP_COMPARE(gt, x > y)
MP_COMPARE(ge, x >= y)
#undef MP_COMPARE

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  MP_CHECK(a.dtype() == b.dtype(), "where: dtype mismatch: ", dtype_name(a.dtype()), " and ",
           dtype_name(b.dtype()));
  Shape shape = broadcast_shapes(broadcast_shapes(cond.sizes(), a.sizes(), "where"), b.sizes(), "where");
  Tensor out = empty(shape, a.options());
  // cond != 0 in cond's own dtype: cast first, a float 0.5 would become an int64 0 (false).
  MP_DISPATCH_ALL(a.dtype(), "where", [&] {
    using T = scalar_t;
    MP_DISPATCH_ALL(cond.dtype(), "where", [&] {
      using C = scalar_t;
      T* o = out.data_ptr<T>();
      const C* pc = cond.data_ptr<C>();
      const T *px = a.data_ptr<T>(), *py = b.data_ptr<T>();
      strided_loop<4>(shape,
                      {out.strides(), broadcast_strides(cond, shape), broadcast_strides(a, shape),
                       broadcast_strides(b, shape)},
                      [=](std::array<int64_t, 4> off, int64_t n, std::array<int64_t, 4> st) {
                        for (int64_t i = 0; i < n; ++i)
                          o[off[0] + i * st[0]] = pc[off[1] + i * st[1]] != C(0) ? px[off[2] + i * st[2]]
                                                                                 : py[off[3] + i * st[3]];
                      });
    });
  });
  return out;
}

void add_(const Tensor& a, const Tensor& b, double alpha) {
  cpu::check_writable("add_", a);
  MP_CHECK(a.dtype() == b.dtype(), "add_: dtype mismatch: ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  MP_CHECK(broadcast_shapes(a.sizes(), b.sizes(), "add_") == a.sizes(), "add_: cannot add shape ",
           shape_str(b.sizes()), " into ", shape_str(a.sizes()), " in place");
  MP_DISPATCH_FLOAT(a.dtype(), "add_", [&] {
    const auto s = static_cast<scalar_t>(alpha);
    binary_into<scalar_t>(a, a, b, [s](auto x, auto y) { return x + s * y; });
  });
}

void mul_scalar_(const Tensor& a, double s) {
  cpu::check_writable("mul_scalar_", a);
  MP_DISPATCH_FLOAT(a.dtype(), "mul_scalar_", [&] {
    const auto sv = static_cast<scalar_t>(s);
    unary_into<scalar_t>(a, a, [sv](auto x) { return x * sv; });
  });
}

}  // namespace minipipe::cpu
