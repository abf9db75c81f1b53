// CUDA softmax family: softmax / log_softmax over contiguous rows and their backward, the fused
// softmax + cross-entropy, and the causal (masked) softmax of attention with its backward. CPU
// references: tensor/cpu/softmax.cpp and tensor/cpu/attention.cpp.
// Launch shape: one block per row (grid-stride over rows, at most 65535 blocks), row_threads(n)
// threads; each thread strides through the row, block_max / block_sum (warp shuffles + one
// shared-memory step) combine. Numerically stable: exp(x - max).
// Memory traffic per row: softmax reads the row twice (max, then sum of exp) and writes it once;
// the backward reads g and y twice and writes dx once; cross entropy reads logits twice, writes
// probs once and one loss per row.
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace minipipe::cuda {

namespace {

__global__ void softmax_rows_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t rows, int64_t n,
                                    bool log) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m, shared);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(xr[j] - m);
    s = block_sum(s, shared);
    if (log) {
      const float ls = logf(s);  // (x - m) - log s: x - m is exact near the max, m + log s is not
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = (xr[j] - m) - ls;
    } else {
      const float inv = 1.f / s;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
    }
  }
}

__global__ void softmax_backward_rows_kernel(const float* __restrict__ g, const float* __restrict__ y,
                                             float* __restrict__ dx, int64_t rows, int64_t n, bool log) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *gr = g + r * n, *yr = y + r * n;
    float* d = dx + r * n;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += log ? gr[j] : gr[j] * yr[j];
    s = block_sum(s, shared);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      d[j] = log ? gr[j] - expf(yr[j]) * s : yr[j] * (gr[j] - s);
  }
}

__global__ void cross_entropy_kernel(const float* __restrict__ logits, const int64_t* __restrict__ targets,
                                     float* __restrict__ probs, float* __restrict__ row_loss, int* bad_target,
                                     int64_t N, int64_t C) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const float* xr = logits + r * C;
    float* pr = probs + r * C;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m, shared);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += expf(xr[j] - m);
    s = block_sum(s, shared);
    const float inv = 1.f / s;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) pr[j] = expf(xr[j] - m) * inv;
    if (threadIdx.x == 0) {
      const int64_t t = targets[r];
      if (t < 0 || t >= C) {
        *bad_target = 1;
        row_loss[r] = 0.f;
      } else {
        row_loss[r] = (m - xr[t]) + logf(s);  // -log softmax at the target (m - x first, as above)
      }
    }
  }
}

__global__ void cross_entropy_backward_kernel(const float* __restrict__ grad, const float* __restrict__ probs,
                                              const int64_t* __restrict__ targets, float* __restrict__ dx, int64_t N,
                                              int64_t C) {
  const float g = *grad / static_cast<float>(N);
  MP_GRID_STRIDE(i, N * C) {
    const int64_t r = i / C, c = i - r * C;
    dx[i] = probs[i] * g - (targets[r] == c ? g : 0.f);
  }
}

// Row r of [rows, tk] is query q = r mod tq at position q + tk - tq: keys j <= that are visible.
__global__ void causal_softmax_kernel(const float* att, float* y,  // y may be att (in place)
                                      int64_t rows, int64_t tq,
                                      int64_t tk, float scale) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t visible = r % tq + tk - tq + 1;
    const float* xr = att + r * tk;
    float* yr = y + r * tk;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) m = fmaxf(m, scale * xr[j]);
    m = block_max(m, shared);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) s += expf(scale * xr[j] - m);
    s = block_sum(s, shared);
    const float inv = 1.f / s;
    for (int64_t j = threadIdx.x; j < tk; j += blockDim.x) yr[j] = j < visible ? expf(scale * xr[j] - m) * inv : 0.f;
  }
}

__global__ void causal_softmax_backward_kernel(const float* g, const float* __restrict__ y, float* d, int64_t rows,
                                               int64_t tq, int64_t tk, float scale) {
  __shared__ float shared[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t visible = r % tq + tk - tq + 1;
    const float *gr = g + r * tk, *yr = y + r * tk;
    float* dr = d + r * tk;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) s += gr[j] * yr[j];
    s = block_sum(s, shared);  // synchronises: every g is read before d (which may alias g) is written
    for (int64_t j = threadIdx.x; j < tk; j += blockDim.x) dr[j] = j < visible ? scale * yr[j] * (gr[j] - s) : 0.f;
    __syncthreads();
  }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(rows, 1), 65535)); }

}  // namespace

void launch_softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log, cudaStream_t stream) {
  if (rows == 0 || n == 0) return;
  softmax_rows_kernel<<<row_blocks(rows), row_threads(n), 0, stream>>>(x, y, rows, n, log);
  CUDA_LAUNCH_CHECK();
}

void launch_softmax_backward_rows(const float* g, const float* y, float* dx, int64_t rows, int64_t n, bool log,
                                  cudaStream_t stream) {
  if (rows == 0 || n == 0) return;
  softmax_backward_rows_kernel<<<row_blocks(rows), row_threads(n), 0, stream>>>(g, y, dx, rows, n, log);
  CUDA_LAUNCH_CHECK();
}

void launch_cross_entropy(const float* logits, const int64_t* targets, float* probs, float* row_loss, int* bad_target,
                          int64_t N, int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  cross_entropy_kernel<<<row_blocks(N), row_threads(C), 0, stream>>>(logits, targets, probs, row_loss, bad_target, N, C);
  CUDA_LAUNCH_CHECK();
}

void launch_cross_entropy_backward(const float* grad, const float* probs, const int64_t* targets, float* dx, int64_t N,
                                   int64_t C, cudaStream_t stream) {
  if (N * C == 0) return;
  cross_entropy_backward_kernel<<<grid_for(N * C), kThreads, 0, stream>>>(grad, probs, targets, dx, N, C);
  CUDA_LAUNCH_CHECK();
}

void launch_causal_softmax(const float* att, float* y, int64_t rows, int64_t tq, int64_t tk, float scale,
                           cudaStream_t stream) {
  if (rows == 0 || tk == 0) return;
  causal_softmax_kernel<<<row_blocks(rows), row_threads(tk), 0, stream>>>(att, y, rows, tq, tk, scale);
  CUDA_LAUNCH_CHECK();
}

void launch_causal_softmax_backward(const float* g, const float* y, float* d, int64_t rows, int64_t tq, int64_t tk,
                                    float scale, cudaStream_t stream) {
  if (rows == 0 || tk == 0) return;
  causal_softmax_backward_kernel<<<row_blocks(rows), row_threads(tk), 0, stream>>>(g, y, d, rows, tq, tk, scale);
  CUDA_LAUNCH_CHECK();
}

}  // namespace minipipe::cuda
