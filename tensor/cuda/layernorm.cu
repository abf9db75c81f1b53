// CUDA LayerNorm over the last dim, forward and backward (llm.c's layernorm kernels, kept simple).
// CPU reference: tensor/cpu/layernorm.cpp (same formulas: biased variance, two passes).
//   forward:  one warp per row (8 rows per 256-thread block); lanes stride the row for the mean,
//             then the squared deviations, warp_sum each; lane 0 caches mean and rstd for the
//             backward. Traffic: x read three times (from L1/L2 after the first), out written once.
//   backward: dx — one warp per row, two warp sums (mean of dn = g w and of dn xhat), then
//             dx = rstd (dn - mean(dn) - xhat mean(dn xhat)). dweight / dbias — from 1024 rows,
//             a grid of (column block, chunk of at least 256 rows, at most 1024 chunks): one
//             thread per column walks its chunk's rows in order (coalesced across the warp),
//             writing partial[chunk, col]; sum_cols then adds the chunks in order. Deterministic,
//             no atomics; fewer rows: one chunk. Traffic: dout and x read twice, dx written once.
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace minipipe::cuda {

namespace {

constexpr int kRowsPerBlock = 8;  // warps per block, one row each

__global__ void layernorm_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                                 float* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                                 int64_t rows, int64_t C, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t{gridDim.x} * kRowsPerBlock;
  for (int64_t r = blockIdx.x * int64_t{kRowsPerBlock} + (threadIdx.x >> 5); r < rows; r += warps) {
    const float* xr = x + r * C;
    float s = 0.f;
    for (int64_t c = lane; c < C; c += 32) s += xr[c];
    const float m = warp_sum(s) / static_cast<float>(C);
    float v = 0.f;
    for (int64_t c = lane; c < C; c += 32) v += (xr[c] - m) * (xr[c] - m);
    const float rs = rsqrtf(warp_sum(v) / static_cast<float>(C) + eps);
    float* o = out + r * C;
    for (int64_t c = lane; c < C; c += 32) o[c] = (xr[c] - m) * rs * w[c] + b[c];
    if (lane == 0) {
      mean[r] = m;  // cache the mean and rstd for the backward pass
      rstd[r] = rs;
    }
  }
}

__global__ void layernorm_backward_dx_kernel(const float* __restrict__ dout, const float* __restrict__ x,
                                             const float* __restrict__ w, const float* __restrict__ mean,
                                             const float* __restrict__ rstd, float* __restrict__ dx, int64_t rows,
                                             int64_t C) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t{gridDim.x} * kRowsPerBlock;
  for (int64_t r = blockIdx.x * int64_t{kRowsPerBlock} + (threadIdx.x >> 5); r < rows; r += warps) {
    const float *g = dout + r * C, *xr = x + r * C;
    const float m = mean[r], s = rstd[r];
    float dn_mean = 0.f, dn_xhat_mean = 0.f;
    for (int64_t c = lane; c < C; c += 32) {
      const float dn = g[c] * w[c];
      dn_mean += dn;
      dn_xhat_mean += dn * (xr[c] - m) * s;
    }
    dn_mean = warp_sum(dn_mean) / static_cast<float>(C);
    dn_xhat_mean = warp_sum(dn_xhat_mean) / static_cast<float>(C);
    float* d = dx + r * C;
    for (int64_t c = lane; c < C; c += 32) d[c] = s * (g[c] * w[c] - dn_mean - (xr[c] - m) * s * dn_xhat_mean);
  }
}

// Chunk p = blockIdx.y of `parts`: dw[p * C + c] and db[p * C + c] (the final sums when parts == 1).
__global__ void layernorm_backward_dwdb_kernel(const float* __restrict__ dout, const float* __restrict__ x,
                                               const float* __restrict__ mean, const float* __restrict__ rstd,
                                               float* __restrict__ dw, float* __restrict__ db, int64_t rows, int64_t C,
                                               int64_t parts) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x, p = blockIdx.y;
  if (c >= C) return;
  const int64_t chunk = (rows + parts - 1) / parts, begin = p * chunk, end = begin + chunk < rows ? begin + chunk : rows;
  float sw = 0.f, sb = 0.f;
  for (int64_t r = begin; r < end; ++r) {
    const float g = dout[r * C + c];
    sb += g;
    sw += g * (x[r * C + c] - mean[r]) * rstd[r];
  }
  dw[p * C + c] = sw;
  db[p * C + c] = sb;
}

unsigned blocks_for_rows(int64_t rows) {
  return static_cast<unsigned>(std::min<int64_t>((rows + kRowsPerBlock - 1) / kRowsPerBlock, 65535));
}

}  // namespace

void launch_layernorm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                      int64_t rows, int64_t C, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  layernorm_kernel<<<blocks_for_rows(rows), 32 * kRowsPerBlock, 0, stream>>>(x, w, b, out, mean, rstd, rows, C, eps);
  CUDA_LAUNCH_CHECK();
}

int64_t layernorm_parts(int64_t rows) {
  constexpr int64_t kChunkRows = 256;  // as sum over rows (reduce.cpp)
  return rows >= 4 * kChunkRows ? std::min<int64_t>(1024, rows / kChunkRows) : 1;
}

void launch_layernorm_backward(const float* dout, const float* x, const float* w, const float* mean,
                               const float* rstd, float* dx, float* dw, float* db, int64_t rows, int64_t C,
                               float* partial, int64_t parts, cudaStream_t stream) {
  MP_CHECK(parts >= 1 && parts <= 65535 && (parts == 1 || partial != nullptr), "layernorm_backward: ", parts,
           " row chunks need a partial buffer and at most 65535 of them");
  if (rows > 0) {
    layernorm_backward_dx_kernel<<<blocks_for_rows(rows), 32 * kRowsPerBlock, 0, stream>>>(dout, x, w, mean, rstd, dx,
                                                                                          rows, C);
    CUDA_LAUNCH_CHECK();
  }
  if (C > 0) {
    const int64_t col_blocks = (C + kThreads - 1) / kThreads;
    MP_CHECK(col_blocks <= INT32_MAX, "layernorm_backward: ", C, " columns exceed the grid");
    const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(parts));
    float* pw = parts == 1 ? dw : partial;
    float* pb = parts == 1 ? db : partial + parts * C;
    layernorm_backward_dwdb_kernel<<<grid, kThreads, 0, stream>>>(dout, x, mean, rstd, pw, pb, rows, C, parts);
    CUDA_LAUNCH_CHECK();
    if (parts > 1) {
      launch_sum_cols(pw, dw, ScalarType::Float32, parts, C, stream);
      launch_sum_cols(pb, db, ScalarType::Float32, parts, C, stream);
    }
  }
}

}  // namespace minipipe::cuda
