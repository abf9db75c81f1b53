// CUDA copy and fill kernels: dst = cast(src) over any strided layout and any pair of the three
// dtypes (float32, float64, int64), and fill. The CPU reference is tensor/cpu/copy.cpp, which also
// refuses float -> int64 conversions of NaN or out-of-range values; here such values convert as the
// GPU's cvt instruction does (saturating; NaN to INT64_MIN), unchecked — an open difference.
// Launch shape: grid-stride loop, kThreads per block; contiguous copies of one dtype are
// cudaMemcpyAsync instead. Memory traffic: one read and one write per element. write_words: up to
// 16 int64 values passed in the kernel's arguments, one block (a message header, written without a
// host buffer that must outlive the copy).
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace minipipe::cuda {

namespace {

template <typename To, typename From>
__global__ void copy_kernel(To* dst, const From* src, Geometry<2> g, int64_t n) {
  MP_GRID_STRIDE(i, n) {
    int64_t off[2];
    unravel(g, i, off);
    dst[off[0]] = static_cast<To>(src[off[1]]);
  }
}

template <typename T>
__global__ void fill_kernel(T* dst, T value, Geometry<1> g, int64_t n) {
  MP_GRID_STRIDE(i, n) {
    int64_t off[1];
    unravel(g, i, off);
    dst[off[0]] = value;
  }
}

template <typename To>
void copy_from(To* dst, const void* src, ScalarType st, const Geometry<2>& g, int64_t n, cudaStream_t stream) {
  switch (st) {
    case ScalarType::Float32:
      copy_kernel<To, float><<<grid_for(n), kThreads, 0, stream>>>(dst, static_cast<const float*>(src), g, n);
      break;
    case ScalarType::Float64:
      copy_kernel<To, double><<<grid_for(n), kThreads, 0, stream>>>(dst, static_cast<const double*>(src), g, n);
      break;
    case ScalarType::Int64:
      copy_kernel<To, int64_t><<<grid_for(n), kThreads, 0, stream>>>(dst, static_cast<const int64_t*>(src), g, n);
      break;
  }
  CUDA_LAUNCH_CHECK();
}

struct Words {
  int64_t w[kMaxWords];
};

__global__ void write_words_kernel(int64_t* dst, Words words, int n) {
  if (static_cast<int>(threadIdx.x) < n) dst[threadIdx.x] = words.w[threadIdx.x];
}

}  // namespace

void launch_copy(void* dst, ScalarType dt, const void* src, ScalarType st, const Geometry<2>& g, int64_t n,
                 cudaStream_t stream) {
  if (n == 0) return;
  switch (dt) {
    case ScalarType::Float32: return copy_from(static_cast<float*>(dst), src, st, g, n, stream);
    case ScalarType::Float64: return copy_from(static_cast<double*>(dst), src, st, g, n, stream);
    case ScalarType::Int64: return copy_from(static_cast<int64_t*>(dst), src, st, g, n, stream);
  }
}

void launch_fill(void* dst, ScalarType dt, double value, const Geometry<1>& g, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  switch (dt) {
    case ScalarType::Float32:
      fill_kernel<float><<<grid_for(n), kThreads, 0, stream>>>(static_cast<float*>(dst), static_cast<float>(value), g, n);
      break;
    case ScalarType::Float64:
      fill_kernel<double><<<grid_for(n), kThreads, 0, stream>>>(static_cast<double*>(dst), value, g, n);
      break;
    case ScalarType::Int64:
      fill_kernel<int64_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<int64_t*>(dst),
                                                                 static_cast<int64_t>(value), g, n);
      break;
  }
  CUDA_LAUNCH_CHECK();
}

void launch_write_words(int64_t* dst, const int64_t* words, int n, cudaStream_t stream) {
  MP_CHECK(n >= 1 && n <= kMaxWords, "write_words: 1 to ", kMaxWords, " values, got ", n);
  Words w{};
  for (int i = 0; i < n; ++i) w.w[i] = words[i];
  write_words_kernel<<<1, 32, 0, stream>>>(dst, w, n);
  CUDA_LAUNCH_CHECK();
}

}  // namespace minipipe::cuda
