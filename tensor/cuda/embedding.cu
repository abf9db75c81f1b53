// CUDA gathers and scatters: embedding lookup and its backward (atomic scatter-add), index_select,
// index_add and one_hot. CPU references: tensor/cpu/embedding.cpp and tensor/cpu/index.cpp. An index
// out of range sets a device flag that the backend reads back and reports (a CUDA kernel cannot
// throw); the element is skipped.
// Launch shape: grid-stride loops over output (or source) elements, kThreads per block; adjacent
// threads touch adjacent columns, so each row moves coalesced.
// Memory traffic: the gathered rows read once and the output written once; the scatter reads the
// gradient once and does one atomicAdd per element (repeated indices collide in L2; the order of
// float additions is not fixed, unlike the CPU's — results agree to rounding).
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace minipipe::cuda {

namespace {

__global__ void embedding_kernel(const float* __restrict__ weight, const int64_t* __restrict__ index,
                                 float* __restrict__ out, int* bad, int64_t n, int64_t V, int64_t C) {
  MP_GRID_STRIDE(i, n * C) {
    const int64_t row = i / C, c = i - row * C, v = index[row];
    if (v < 0 || v >= V) {
      *bad = 1;
      out[i] = 0.f;
    } else {
      out[i] = weight[v * C + c];
    }
  }
}

__global__ void embedding_backward_kernel(const float* __restrict__ grad, const int64_t* __restrict__ index,
                                          float* __restrict__ dweight, int* bad, int64_t n, int64_t V, int64_t C) {
  MP_GRID_STRIDE(i, n * C) {
    const int64_t row = i / C, c = i - row * C, v = index[row];
    if (v < 0 || v >= V) *bad = 1;
    else atomicAdd(dweight + v * C + c, grad[i]);
  }
}

template <typename T>
__global__ void index_select_kernel(const T* __restrict__ in, const int64_t* __restrict__ index, T* __restrict__ out,
                                    int* bad, int64_t outer, int64_t n, int64_t K, int64_t inner) {
  MP_GRID_STRIDE(i, outer * K * inner) {
    const int64_t o = i / (K * inner), rest = i - o * K * inner, k = rest / inner, j = rest - k * inner;
    const int64_t v = index[k];
    if (v < 0 || v >= n) {
      *bad = 1;
      out[i] = T(0);
    } else {
      out[i] = in[(o * n + v) * inner + j];
    }
  }
}

__global__ void index_add_kernel(const float* __restrict__ src, const int64_t* __restrict__ index,
                                 float* __restrict__ out, int* bad, int64_t outer, int64_t n, int64_t K, int64_t inner) {
  MP_GRID_STRIDE(i, outer * K * inner) {
    const int64_t o = i / (K * inner), rest = i - o * K * inner, k = rest / inner, j = rest - k * inner;
    const int64_t v = index[k];
    if (v < 0 || v >= n) *bad = 1;
    else atomicAdd(out + (o * n + v) * inner + j, src[i]);
  }
}

template <typename T>
__global__ void one_hot_kernel(const int64_t* __restrict__ index, T* __restrict__ out, int* bad, int64_t n,
                               int64_t classes) {
  MP_GRID_STRIDE(i, n) {
    const int64_t v = index[i];
    if (v < 0 || v >= classes) *bad = 1;
    else out[i * classes + v] = T(1);
  }
}

}  // namespace

void launch_embedding(const float* weight, const int64_t* index, float* out, int* bad, int64_t n, int64_t V, int64_t C,
                      cudaStream_t stream) {
  if (n * C == 0) return;
  embedding_kernel<<<grid_for(n * C), kThreads, 0, stream>>>(weight, index, out, bad, n, V, C);
  CUDA_LAUNCH_CHECK();
}

void launch_embedding_backward(const float* grad, const int64_t* index, float* dweight, int* bad, int64_t n, int64_t V,
                               int64_t C, cudaStream_t stream) {
  if (n * C == 0) return;
  embedding_backward_kernel<<<grid_for(n * C), kThreads, 0, stream>>>(grad, index, dweight, bad, n, V, C);
  CUDA_LAUNCH_CHECK();
}

void launch_index_select(const void* in, const int64_t* index, void* out, ScalarType t, int* bad, int64_t outer,
                         int64_t n, int64_t K, int64_t inner, cudaStream_t stream) {
  const int64_t total = outer * K * inner;
  if (total == 0) return;
  MP_CHECK(t == ScalarType::Float32 || t == ScalarType::Int64, "index_select: CUDA kernels take float32 or int64");
  if (t == ScalarType::Float32)
    index_select_kernel<float><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const float*>(in), index, static_cast<float*>(out), bad, outer, n, K, inner);
  else
    index_select_kernel<int64_t><<<grid_for(total), kThreads, 0, stream>>>(
        static_cast<const int64_t*>(in), index, static_cast<int64_t*>(out), bad, outer, n, K, inner);
  CUDA_LAUNCH_CHECK();
}

void launch_index_add(const float* src, const int64_t* index, float* out, int* bad, int64_t outer, int64_t n,
                      int64_t K, int64_t inner, cudaStream_t stream) {
  const int64_t total = outer * K * inner;
  if (total == 0) return;
  index_add_kernel<<<grid_for(total), kThreads, 0, stream>>>(src, index, out, bad, outer, n, K, inner);
  CUDA_LAUNCH_CHECK();
}

void launch_one_hot(const int64_t* index, void* out, ScalarType t, int* bad, int64_t n, int64_t classes,
                    cudaStream_t stream) {
  if (n == 0) return;
  MP_CHECK(t == ScalarType::Float32 || t == ScalarType::Int64, "one_hot: CUDA kernels make float32 or int64");
  if (t == ScalarType::Float32)
    one_hot_kernel<float><<<grid_for(n), kThreads, 0, stream>>>(index, static_cast<float*>(out), bad, n, classes);
  else
    one_hot_kernel<int64_t><<<grid_for(n), kThreads, 0, stream>>>(index, static_cast<int64_t*>(out), bad, n, classes);
  CUDA_LAUNCH_CHECK();
}

}  // namespace minipipe::cuda
