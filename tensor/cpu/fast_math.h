// Branch-free float32 math the compiler can vectorise inside elementwise loops (libm's tanhf
// and expf are a call per element: tanhf in GELU was half of a GPT training step; see
// docs/gpt.md). float64 keeps libm: gradient checks need its accuracy.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <type_traits>

namespace minipipe::cpu {

// tanh(x) for float as Eigen's generic_fast_tanh_float: a 13/6-degree rational minimax fit on
// [-8, 8] (outside it tanh rounds to +-1); x itself below |x| < 4e-4. Max abs error 3e-7
// (libm's tanhf: 1e-7).
inline float tanh_rational(float a) {
  const float x = std::clamp(a, -7.99881172180175781f, 7.99881172180175781f);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  // Beyond |x| = 9 float's tanh is exactly +-1: return it, so 1 - t^2 (GELU's derivative) is 0.
  return std::fabs(a) < 0.0004f ? a : std::fabs(a) > 9.0f ? std::copysign(1.0f, a) : p / q;
}

// tanh for the elementwise kernels: the rational form for float, libm for double.
template <typename T>
inline T fast_tanh(T x) {
  if constexpr (std::is_same_v<T, float>) return tanh_rational(x);
  else return std::tanh(x);
}

// exp(x) for float as Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-7
// polynomial, 2^n put into the exponent bits. About 1 ulp; inputs clamped to [-87.3, 88.7]
// (the normal range), so very negative x gives ~1e-38 rather than 0.
inline float exp_poly(float a) {
  const float x = std::clamp(a, -87.33654f, 88.72283f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 in two parts: exact n ln2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

template <typename T>
inline T fast_exp(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_poly(x);
  else return std::exp(x);
}

}  // namespace minipipe::cpu
