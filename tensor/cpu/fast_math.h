// Branch-free float32 exp, log, tanh, sigmoid and GELU that GCC vectorises inside the elementwise,
// softmax and attention loops (libm's expf and tanhf are a call per element). float64 keeps libm:
// gradient checks need its accuracy. Accuracy against float64 libm, swept in test_fast_math.cpp.
//
// Determinism: each function is one straight-line sequence of IEEE operations (selects, no
// branches), with every multiply-add written as std::fma (exactly rounded, so the same on every
// CPU and in every lane) and no other a * b + c left for the compiler to contract. A vectorised
// loop body and its scalar tail therefore give the same bits for the same input, whatever its
// position in the tensor, its alignment or the thread that computes it.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace minipipe::cpu {

// c ? a : b on the bits. Under the default -ftrapping-math GCC will not vectorise a loop where a
// plain `c ? r : constant` lets it move r's arithmetic into a branch (the arithmetic could trap,
// so it may not run it unconditionally again); a bitwise blend keeps r always computed.
inline float blend(bool c, float a, float b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(a) & m) | (std::bit_cast<uint32_t>(b) & ~m));
}

// exp(x): x = n ln2 + r with |r| <= ln2 / 2 (n = round(x log2e) by the 1.5 * 2^23 trick, ln2 in
// two parts as in Cephes expf), e^r = 1 + r + r^2 q(r) with q a degree-4 minimax polynomial (the
// largest relative error of the polynomial, 3.1e-9 = 0.05 ulp), then 2^n applied in two halves so
// results underflow gradually to subnormals and 0 (x < -103.98 gives 0, exp(-inf) = 0) and
// overflow to inf (x > 88.73). Max error 1 ulp over all float inputs (normal and subnormal
// results; every float checked once against float64 exp).
//
// Written for a short dependency chain (the vectorised loop is bound by it, not by the number of
// operations): the input is not clamped first; out-of-range x (and inf) run through with
// meaningless intermediates and are replaced by 0 or inf at the end, where the two compares sit
// beside the chain. NaN propagates through the arithmetic (both compares are false). For the same
// reason q is evaluated in Estrin's order (three dependent fmas after r^2, not five in Horner's):
// with Cephes' degree-7 polynomial in Horner's order (the bits before) the loop ran 12% slower.
namespace detail {
// exp_poly without the fix-ups: its bits for x in [-104, 89] and NaN, meaningless outside.
inline float exp_in_range(float x) {
  // 1.5 * 2^23 + 254: adding it rounds x log2e to an integer n in the low bits, and the bits of t
  // are then 0x4b400000 + 254 + n, from which the two scale factors below come by shifts alone.
  const float kShift = 12583166.0f;
  const float t = std::fma(x, 1.44269504088896341f, kShift);
  const float n = t - kShift;
  float r = std::fma(n, -0.693359375f, x);  // ln2 in two parts
  r = std::fma(n, 2.12194440e-4f, r);
  // q(r) = c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4, minimax for (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2]
  // weighted by r^2 / e^r (so it bounds the relative error of e^r).
  const float r2 = r * r;
  const float q01 = std::fma(0.166665211f, r, 0.49999994f);
  const float q23 = std::fma(0.00836874545f, r, 0.041668389f);
  const float q = std::fma(std::fma(0.00138145406f, r2, q23), r2, q01);
  const float p = std::fma(q, r2, r);  // e^r - 1
  // 2^n = 2^n2 2^n1, n1 = floor(n / 2), n2 = n - n1, each a normal float for n in [-150, 128]:
  // (bits(t) >> 1) << 23 = (127 + n1) << 23 and bits(t) << 23 = (254 + n) << 23 (the high bits
  // of 0x4b400000 shift out). (1 + p) 2^n2 is exact, so the fma rounds exactly as 1 + p does; the
  // last product rounds once (a subnormal result rounds correctly).
  const uint32_t bt = std::bit_cast<uint32_t>(t);
  const uint32_t e1 = (bt >> 1) << 23;
  const float s1 = std::bit_cast<float>(e1), s2 = std::bit_cast<float>((bt << 23) - e1);
  return std::fma(p, s2, s2) * s1;
}
}  // namespace detail

// Below -104 the result is 0 and above 89 inf (where n would leave [-150, 128]). Both on the bits
// (an and, a blend), not as `c ? 0 : y`: plain selects were a few percent faster where GCC
// vectorised them, but it did not everywhere (tanh, and an exp-and-sum softmax loop: "control
// flow in loop", see blend()), and such a loop runs 10x slower without a word at build time.
inline float exp_poly(float x) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const uint32_t keep = static_cast<uint32_t>(x < -104.0f) - 1u;  // 0 below -104, else all ones
  const float lo = std::bit_cast<float>(std::bit_cast<uint32_t>(detail::exp_in_range(x)) & keep);
  return blend(x > 89.0f, kInf, lo);
}

// exp_poly's bits for x <= 89 (softmax rows and sigmoid: x <= 0) and for x >= -104 (tanh: x >= 0),
// without the fix-up that cannot apply there (a compare and a masked move less in the loop).
inline float exp_poly_upto89(float x) {
  const uint32_t keep = static_cast<uint32_t>(x < -104.0f) - 1u;  // 0 below -104, else all ones
  return std::bit_cast<float>(std::bit_cast<uint32_t>(detail::exp_in_range(x)) & keep);
}
inline float exp_poly_from_m104(float x) {
  return blend(x > 89.0f, std::numeric_limits<float>::infinity(), detail::exp_in_range(x));
}

// log(x), Cephes logf's algorithm: x = 2^k m with m in [sqrt(1/2), sqrt(2)) (subnormal x scaled
// by 2^23 first), log(1 + f) = f - f^2/2 + f^3 P(f) with f = m - 1, plus k ln2 in two parts.
// log(0) = -inf, log(x < 0) = NaN, log(inf) = inf. Max error 1 ulp over all positive floats
// (every one checked). Cephes' coefficients, but P in Estrin's order and f^3 P added last (four
// dependent operations after f^2 where Horner's order took eleven): the loop is bound by that
// chain, and ran 20% faster than with Cephes' order (which gave other bits for 0.05% of inputs).
inline float log_poly(float a) {
  // Subnormal a (or zero / negative: fixed up at the end) is scaled by 2^23. The selects pick
  // constants and the multiply and subtract always run (see blend() for why).
  const bool sub = a < 1.17549435e-38f;
  const float x = a * (sub ? 8388608.0f : 1.0f);
  const uint32_t kOff = 0x3f3504f3;  // sqrt(1/2): m lands in [sqrt(1/2), sqrt(2))
  const uint32_t ix = std::bit_cast<uint32_t>(x) - kOff;
  const float k = static_cast<float>((static_cast<int32_t>(ix) >> 23) - (sub ? 23 : 0));
  const float f = std::bit_cast<float>((ix & 0x007fffffu) + kOff) - 1.0f;
  const float z = f * f, z2 = z * z;
  // P(f) = (c0 + c1 f) + (c2 + c3 f) f^2 + ((c4 + c5 f) + (c6 + c7 f) f^2 + c8 f^4) f^4.
  const float p01 = std::fma(-2.4999993993e-1f, f, 3.3333331174e-1f);
  const float p23 = std::fma(-1.6668057665e-1f, f, 2.0000714765e-1f);
  const float p45 = std::fma(-1.2420140846e-1f, f, 1.4249322787e-1f);
  const float p67 = std::fma(-1.1514610310e-1f, f, 1.1676998740e-1f);
  const float p47 = std::fma(7.0376836292e-2f, z2, std::fma(p67, z, p45));
  const float p = std::fma(p47, z2, std::fma(p23, z, p01));
  // y = f^3 P - f^2 / 2 - k ln2_lo: the two small terms first, beside the polynomial.
  const float y = std::fma(p, f * z, std::fma(k, -2.12194440e-4f, -0.5f * z));
  const float r = std::fma(k, 0.693359375f, f + y);
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const float special = a == 0.0f ? -kInf : a == kInf ? kInf : std::numeric_limits<float>::quiet_NaN();
  return blend((a > 0.0f) & (a < kInf), r, special);
}

// tanh(x): for |x| < 0.625 Cephes tanhf's odd polynomial x + x^3 P(x^2); above it
// 1 - 2 / (e^{2|x|} + 1) (exactly 1 from |x| > 9.01, where e^{2|x|} + 1 rounds 2 away). Sign
// restored last, so tanh(-0) = -0. Max error 1 ulp (every float checked).
inline float tanh_poly(float a) {
  const float x = std::fabs(a);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = std::fma(p, z, 2.06390887954e-2f);
  p = std::fma(p, z, -5.37397155531e-2f);
  p = std::fma(p, z, 1.33314422036e-1f);
  p = std::fma(p, z, -3.33332819422e-1f);
  const float small = std::fma(p * z, x, x);
  const float big = 1.0f - 2.0f / (exp_poly_from_m104(2.0f * x) + 1.0f);
  return std::copysign(blend(x < 0.625f, small, big), a);  // not ?: (see blend())
}

// sigmoid(x) = 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: e = e^{-|x|} <= 1 never
// overflows; the limits are exactly 0 and 1. Max error 2 ulps (every float checked).
inline float sigmoid_poly(float a) {
  const float e = exp_poly_upto89(-std::fabs(a));
  return (a >= 0.0f ? 1.0f : e) / (1.0f + e);
}

// GELU, tanh approximation: 0.5 x (1 + tanh(u)) = x / (1 + e^{-2u}), u = k (x + c x^3),
// k = sqrt(2/pi), c = 0.044715. The second form has no cancellation where tanh(u) -> -1, so the
// error is relative everywhere, but rounding x^3 in float (the input of exp, not the kernel)
// dominates and grows with the condition number (about 2 |u| ulps): over every float, at most
// 13 ulps for |x| <= 3 and 211 for |x| <= 10 (x near -10, where GELU is 1e-44).
inline float gelu_poly(float x) {
  const float k2 = static_cast<float>(-2 * 0.7978845608028654);
  const float c2 = static_cast<float>(-2 * 0.7978845608028654 * 0.044715);
  return x / (1.0f + exp_poly(x * std::fma(c2, x * x, k2)));
}

// The elementwise kernels' entry points: the float32 kernels above for float, libm for double.
template <typename T>
inline T fast_exp(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_poly(x);
  else return std::exp(x);
}

// fast_exp for arguments that cannot exceed 89 (softmax rows: x - max <= 0): the same bits.
template <typename T>
inline T fast_exp_upto89(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_poly_upto89(x);
  else return std::exp(x);
}

template <typename T>
inline T fast_log(T x) {
  if constexpr (std::is_same_v<T, float>) return log_poly(x);
  else return std::log(x);
}

template <typename T>
inline T fast_tanh(T x) {
  if constexpr (std::is_same_v<T, float>) return tanh_poly(x);
  else return std::tanh(x);
}

template <typename T>
inline T fast_sigmoid(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return sigmoid_poly(x);
  } else {
    // Two branches keep exp from overflowing for large |x|.
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
  }
}

template <typename T>
inline T fast_gelu(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return gelu_poly(x);
  } else {
    constexpr T k = 0.7978845608028654, c = 0.044715;
    return T(0.5) * x * (T(1) + std::tanh(k * (x + c * x * x * x)));
  }
}

}  // namespace minipipe::cpu
