// CUDA elementwise kernels: unary and binary float32 ops with NumPy broadcasting (int64 for the
// integer-safe binary ops), and where(). The CPU reference is tensor/cpu/elementwise.cpp.
// Launch shape: grid-stride loops of kThreads-thread blocks (launch.cuh). Two paths per op:
//   contiguous — every operand walks its memory with stride 1: float4 loads and stores when all
//                pointers are 16-byte aligned, then a scalar tail;
//   strided    — the flat index is unravelled over the merged dims (Geometry) into one offset per
//                operand (stride 0 on broadcast dims).
// Memory traffic: one read per input element and one write per output element (broadcast operands
// are re-read from cache); these kernels are bandwidth-bound.
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace minipipe::cuda {

namespace {

constexpr float kGeluK = 0.7978845608028654f, kGeluC = 0.044715f;

template <UnaryOp OP>
__device__ __forceinline__ float unary_fn(float x, float s) {
  if constexpr (OP == UnaryOp::Neg) return -x;
  if constexpr (OP == UnaryOp::Exp) return expf(x);
  if constexpr (OP == UnaryOp::Log) return logf(x);
  if constexpr (OP == UnaryOp::Sqrt) return sqrtf(x);
  if constexpr (OP == UnaryOp::Abs) return fabsf(x);
  if constexpr (OP == UnaryOp::Tanh) return tanhf(x);
  if constexpr (OP == UnaryOp::Sigmoid) {  // e = e^-|x| <= 1: no overflow, subnormals kept below -88
    const float e = expf(-fabsf(x));
    return (x >= 0.f ? 1.f : e) / (1.f + e);
  }
  if constexpr (OP == UnaryOp::Relu) return x > 0.f ? x : 0.f;
  if constexpr (OP == UnaryOp::Gelu) {  // 0.5 x (1 + tanh u) = x / (1 + e^-2u): no cancellation for x < 0
    const float u = kGeluK * (x + kGeluC * x * x * x);
    return x / (1.f + expf(-2.f * u));
  }
  if constexpr (OP == UnaryOp::AddScalar) return x + s;
  if constexpr (OP == UnaryOp::MulScalar) return x * s;
  if constexpr (OP == UnaryOp::Pow) return powf(x, s);
  if constexpr (OP == UnaryOp::Square) return x * x;
  return x;
}

template <BinaryOp OP, typename T>
__device__ __forceinline__ T binary_fn(T x, T y, T alpha) {
  if constexpr (OP == BinaryOp::Add) return x + y;
  if constexpr (OP == BinaryOp::Sub) return x - y;
  if constexpr (OP == BinaryOp::Mul) return x * y;
  if constexpr (OP == BinaryOp::Div) return x / y;
  if constexpr (OP == BinaryOp::Maximum) return x > y ? x : y;
  if constexpr (OP == BinaryOp::Eq) return T(x == y);
  if constexpr (OP == BinaryOp::Ne) return T(x != y);
  if constexpr (OP == BinaryOp::Lt) return T(x < y);
  if constexpr (OP == BinaryOp::Le) return T(x <= y);
  if constexpr (OP == BinaryOp::Gt) return T(x > y);
  if constexpr (OP == BinaryOp::Ge) return T(x >= y);
  if constexpr (OP == BinaryOp::ReluBackward) return y > T(0) ? x : T(0);  // x = grad, y = input
  if constexpr (OP == BinaryOp::GeluBackward) {
    const float t = tanhf(kGeluK * (y + kGeluC * y * y * y));
    return x * (0.5f * (1.f + t) + 0.5f * y * (1.f - t * t) * kGeluK * (1.f + 3.f * kGeluC * y * y));
  }
  if constexpr (OP == BinaryOp::TanhBackward) return x * (T(1) - y * y);        // y = tanh output
  if constexpr (OP == BinaryOp::SigmoidBackward) return x * y * (T(1) - y);     // y = sigmoid output
  if constexpr (OP == BinaryOp::AddScaled) return x + alpha * y;
  return x;
}

template <UnaryOp OP>
__global__ void unary_contiguous(float* out, const float* a,  // out may be a (in place)
                                 float s, int64_t n,
                                 int64_t n4) {
  // n4 > 0 only when out and a are 16-byte aligned: those elements move as float4.
  MP_GRID_STRIDE(i, n4) {
    const float4 x = reinterpret_cast<const float4*>(a)[i];
    reinterpret_cast<float4*>(out)[i] =
        make_float4(unary_fn<OP>(x.x, s), unary_fn<OP>(x.y, s), unary_fn<OP>(x.z, s), unary_fn<OP>(x.w, s));
  }
  MP_GRID_STRIDE(j, n - 4 * n4) { out[4 * n4 + j] = unary_fn<OP>(a[4 * n4 + j], s); }
}

template <UnaryOp OP>
__global__ void unary_strided(float* out, const float* a, float s, Geometry<2> g, int64_t n) {
  MP_GRID_STRIDE(i, n) {
    int64_t off[2];
    unravel(g, i, off);
    out[off[0]] = unary_fn<OP>(a[off[1]], s);
  }
}

template <BinaryOp OP, typename T>
__global__ void binary_contiguous(T* out, const T* a, const T* b, T alpha, int64_t n) {  // out may alias a
  MP_GRID_STRIDE(i, n) { out[i] = binary_fn<OP, T>(a[i], b[i], alpha); }
}

template <BinaryOp OP>
__global__ void binary_contiguous_vec4(float* out, const float* a, const float* b, float alpha, int64_t n,
                                       int64_t n4) {
  MP_GRID_STRIDE(i, n4) {
    const float4 x = reinterpret_cast<const float4*>(a)[i], y = reinterpret_cast<const float4*>(b)[i];
    reinterpret_cast<float4*>(out)[i] =
        make_float4(binary_fn<OP, float>(x.x, y.x, alpha), binary_fn<OP, float>(x.y, y.y, alpha),
                    binary_fn<OP, float>(x.z, y.z, alpha), binary_fn<OP, float>(x.w, y.w, alpha));
  }
  MP_GRID_STRIDE(j, n - 4 * n4) { out[4 * n4 + j] = binary_fn<OP, float>(a[4 * n4 + j], b[4 * n4 + j], alpha); }
}

template <BinaryOp OP, typename T>
__global__ void binary_strided(T* out, const T* a, const T* b, T alpha, Geometry<3> g, int64_t n) {
  MP_GRID_STRIDE(i, n) {
    int64_t off[3];
    unravel(g, i, off);
    out[off[0]] = binary_fn<OP, T>(a[off[1]], b[off[2]], alpha);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <UnaryOp OP>
void run_unary(float* out, const float* a, float s, const Geometry<2>& g, int64_t n, cudaStream_t stream) {
  if (g.contiguous()) {
    const int64_t n4 = aligned16(out) && aligned16(a) ? n / 4 : 0;
    unary_contiguous<OP><<<grid_for(n4 > 0 ? n4 : n), kThreads, 0, stream>>>(out, a, s, n, n4);
  } else {
    unary_strided<OP><<<grid_for(n), kThreads, 0, stream>>>(out, a, s, g, n);
  }
  CUDA_LAUNCH_CHECK();
}

template <BinaryOp OP, typename T>
void run_binary(T* out, const T* a, const T* b, T alpha, const Geometry<3>& g, int64_t n, cudaStream_t stream) {
  if (g.contiguous()) {
    if constexpr (sizeof(T) == 4) {
      const int64_t n4 = aligned16(out) && aligned16(a) && aligned16(b) ? n / 4 : 0;
      binary_contiguous_vec4<OP><<<grid_for(n4 > 0 ? n4 : n), kThreads, 0, stream>>>(out, a, b, alpha, n, n4);
    } else {
      binary_contiguous<OP, T><<<grid_for(n), kThreads, 0, stream>>>(out, a, b, alpha, n);
    }
  } else {
    binary_strided<OP, T><<<grid_for(n), kThreads, 0, stream>>>(out, a, b, alpha, g, n);
  }
  CUDA_LAUNCH_CHECK();
}

template <typename C, typename V>
__global__ void where_kernel(V* out, const C* cond, const V* a, const V* b, Geometry<4> g, int64_t n) {
  MP_GRID_STRIDE(i, n) {
    int64_t off[4];
    unravel(g, i, off);
    out[off[0]] = cond[off[1]] != C(0) ? a[off[2]] : b[off[3]];
  }
}

template <typename C, typename V>
void run_where(void* out, const void* cond, const void* a, const void* b, const Geometry<4>& g, int64_t n,
               cudaStream_t stream) {
  where_kernel<C, V><<<grid_for(n), kThreads, 0, stream>>>(static_cast<V*>(out), static_cast<const C*>(cond),
                                                           static_cast<const V*>(a), static_cast<const V*>(b), g, n);
  CUDA_LAUNCH_CHECK();
}

}  // namespace

void launch_unary(UnaryOp op, float* out, const float* a, float s, const Geometry<2>& g, int64_t n,
                  cudaStream_t stream) {
  if (n == 0) return;
  switch (op) {
#define MP_CASE(name) \
  case UnaryOp::name: return run_unary<UnaryOp::name>(out, a, s, g, n, stream);
    MP_CASE(Neg) MP_CASE(Exp) MP_CASE(Log) MP_CASE(Sqrt) MP_CASE(Abs) MP_CASE(Tanh) MP_CASE(Sigmoid)
    MP_CASE(Relu) MP_CASE(Gelu) MP_CASE(AddScalar) MP_CASE(MulScalar) MP_CASE(Pow) MP_CASE(Square)
#undef MP_CASE
  }
  MP_INTERNAL_ASSERT(false, "launch_unary: unknown op ", static_cast<int>(op));
}

void launch_binary(BinaryOp op, float* out, const float* a, const float* b, float alpha, const Geometry<3>& g,
                   int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  switch (op) {
#define MP_CASE(name) \
  case BinaryOp::name: return run_binary<BinaryOp::name, float>(out, a, b, alpha, g, n, stream);
    MP_CASE(Add) MP_CASE(Sub) MP_CASE(Mul) MP_CASE(Div) MP_CASE(Maximum) MP_CASE(Eq) MP_CASE(Ne) MP_CASE(Lt)
    MP_CASE(Le) MP_CASE(Gt) MP_CASE(Ge) MP_CASE(ReluBackward) MP_CASE(GeluBackward) MP_CASE(TanhBackward)
    MP_CASE(SigmoidBackward) MP_CASE(AddScaled)
#undef MP_CASE
  }
  MP_INTERNAL_ASSERT(false, "launch_binary: unknown op ", static_cast<int>(op));
}

void launch_binary_i64(BinaryOp op, int64_t* out, const int64_t* a, const int64_t* b, const Geometry<3>& g, int64_t n,
                       cudaStream_t stream) {
  if (n == 0) return;
  switch (op) {
#define MP_CASE(name) \
  case BinaryOp::name: return run_binary<BinaryOp::name, int64_t>(out, a, b, 0, g, n, stream);
    MP_CASE(Add) MP_CASE(Sub) MP_CASE(Mul) MP_CASE(Maximum) MP_CASE(Eq) MP_CASE(Ne) MP_CASE(Lt) MP_CASE(Le)
    MP_CASE(Gt) MP_CASE(Ge)
#undef MP_CASE
    default: break;
  }
  MP_CHECK(false, "launch_binary_i64: op ", static_cast<int>(op), " has no int64 CUDA kernel");
}

void launch_where(void* out, const void* cond, ScalarType ct, const void* a, const void* b, ScalarType vt,
                  const Geometry<4>& g, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool cf = ct == ScalarType::Float32, vf = vt == ScalarType::Float32;
  MP_CHECK((cf || ct == ScalarType::Int64) && (vf || vt == ScalarType::Int64),
           "where: CUDA kernels take float32 or int64 conditions and values");
  if (cf && vf) return run_where<float, float>(out, cond, a, b, g, n, stream);
  if (cf) return run_where<float, int64_t>(out, cond, a, b, g, n, stream);
  if (vf) return run_where<int64_t, float>(out, cond, a, b, g, n, stream);
  return run_where<int64_t, int64_t>(out, cond, a, b, g, n, stream);
}

}  // namespace minipipe::cuda
