// CUDA fused optimizer steps, one pass over the parameter and its state each (ops::adamw_step_ and
// ops::sgd_step_ have the formulas; CPU reference tensor/cpu/optim.cpp, which computes the same
// float32 expressions).
// Launch shape: grid-stride loop, kThreads per block; float4 loads/stores when every array is
// 16-byte aligned (fresh storages always are), then a scalar tail.
// Memory traffic: AdamW reads p, g, m, v and writes p, m, v: 28 bytes per element. SGD reads p, g
// (and buf) and writes p (and buf): 12 bytes per element, 20 with momentum.
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace minipipe::cuda {

namespace {

struct AdamWCoef {
  float b1, b2, decay, step, inv_sqrt_bc2, eps;
};

__device__ __forceinline__ void adamw_one(float& p, float g, float& m, float& v, const AdamWCoef& k) {
  p *= k.decay;
  m = k.b1 * m + (1.f - k.b1) * g;
  v = k.b2 * v + (1.f - k.b2) * g * g;
  p -= k.step * m / (sqrtf(v) * k.inv_sqrt_bc2 + k.eps);
}

__global__ void adamw_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, int64_t n4, AdamWCoef k) {
  MP_GRID_STRIDE(i, n4) {
    float4 pp = reinterpret_cast<float4*>(p)[i], mm = reinterpret_cast<float4*>(m)[i],
           vv = reinterpret_cast<float4*>(v)[i];
    const float4 gg = reinterpret_cast<const float4*>(g)[i];
    adamw_one(pp.x, gg.x, mm.x, vv.x, k);
    adamw_one(pp.y, gg.y, mm.y, vv.y, k);
    adamw_one(pp.z, gg.z, mm.z, vv.z, k);
    adamw_one(pp.w, gg.w, mm.w, vv.w, k);
    reinterpret_cast<float4*>(p)[i] = pp;
    reinterpret_cast<float4*>(m)[i] = mm;
    reinterpret_cast<float4*>(v)[i] = vv;
  }
  MP_GRID_STRIDE(j, n - 4 * n4) {
    const int64_t i = 4 * n4 + j;
    adamw_one(p[i], g[i], m[i], v[i], k);
  }
}

bool aligned16(const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; }

struct SgdCoef {
  float lr, mu, damp, decay;
  bool nesterov, first;
};

// p -= lr d, d = g + decay p, through the momentum buffer b when there is one.
__device__ __forceinline__ void sgd_one(float& p, float g, float* b, const SgdCoef& k) {
  float d = g + k.decay * p;
  if (b) {
    *b = k.first ? d : k.mu * *b + k.damp * d;
    d = k.nesterov ? d + k.mu * *b : *b;
  }
  p -= k.lr * d;
}

__global__ void sgd_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ buf, int64_t n,
                           int64_t n4, SgdCoef k) {
  MP_GRID_STRIDE(i, n4) {
    float4 pp = reinterpret_cast<float4*>(p)[i];
    const float4 gg = reinterpret_cast<const float4*>(g)[i];
    const bool mom = buf != nullptr;
    float4 bb = mom ? reinterpret_cast<float4*>(buf)[i] : float4{};
    sgd_one(pp.x, gg.x, mom ? &bb.x : nullptr, k);
    sgd_one(pp.y, gg.y, mom ? &bb.y : nullptr, k);
    sgd_one(pp.z, gg.z, mom ? &bb.z : nullptr, k);
    sgd_one(pp.w, gg.w, mom ? &bb.w : nullptr, k);
    reinterpret_cast<float4*>(p)[i] = pp;
    if (mom) reinterpret_cast<float4*>(buf)[i] = bb;
  }
  MP_GRID_STRIDE(j, n - 4 * n4) {
    const int64_t i = 4 * n4 + j;
    sgd_one(p[i], g[i], buf ? buf + i : nullptr, k);
  }
}

}  // namespace

void launch_sgd(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float damp, float decay,
                bool nesterov, bool first, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t n4 = aligned16(p) && aligned16(g) && (!buf || aligned16(buf)) ? n / 4 : 0;
  sgd_kernel<<<grid_for(n4 > 0 ? n4 : n), kThreads, 0, stream>>>(p, g, buf, n, n4,
                                                                  SgdCoef{lr, momentum, damp, decay, nesterov, first});
  CUDA_LAUNCH_CHECK();
}

void launch_adamw(float* p, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float decay,
                  float step_size, float inv_sqrt_bc2, float eps, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t n4 = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v) ? n / 4 : 0;
  adamw_kernel<<<grid_for(n4 > 0 ? n4 : n), kThreads, 0, stream>>>(
      p, g, m, v, n, n4, AdamWCoef{beta1, beta2, decay, step_size, inv_sqrt_bc2, eps});
  CUDA_LAUNCH_CHECK();
}

}  // namespace minipipe::cuda
