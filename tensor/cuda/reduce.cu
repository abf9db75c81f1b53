// CUDA reductions: row sums, column sums and row max/argmax on contiguous data (the backend
// permutes other layouts into these shapes first). The CPU reference is tensor/cpu/reduce.cpp,
// which sums in double in a fixed order; these sum float32 in float (a tree per row), so results
// agree to rounding, not bit for bit.
//   sum_rows / max_rows: one block per row (grid-stride over rows), row_threads(n) threads; each
//     thread strides through the row, then warp shuffles and one shared-memory step combine them.
//     Traffic: the input once, coalesced; one write per row.
//   sum_row_parts: for few long rows (a whole-tensor sum) one block per row would leave the GPU
//     idle: a (parts x rows) grid of 256-thread blocks each sums one chunk of a row into
//     partial[row, part]; sum_rows then adds the parts. Traffic: the input once, plus the parts.
//   sum_cols: one thread per column, walking the rows in order (coalesced across the warp,
//     deterministic). Traffic: the input once. For many rows, sum_col_parts first: a grid of
//     (column blocks x row chunks), each thread summing its column over one chunk of rows into
//     partial[chunk, col]; sum_cols then adds the chunks — still a fixed order.
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"

namespace minipipe::cuda {

namespace {

template <typename T>
__global__ void sum_rows_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t rows, int64_t n) {
  __shared__ T shared[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = in + r * n;
    T acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) acc += row[j];
    acc = warp_sum(acc);
    if (lane == 0) shared[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = lane < warps ? shared[lane] : T(0);
      acc = warp_sum(acc);
      if (lane == 0) out[r] = acc;
    }
    __syncthreads();  // shared is reused by the next row
  }
}

template <typename T>
__global__ void sum_row_parts_kernel(const T* __restrict__ in, T* __restrict__ partial, int64_t n, int64_t parts) {
  __shared__ T shared[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t r = blockIdx.y, p = blockIdx.x, chunk = (n + parts - 1) / parts;
  const int64_t begin = p * chunk, end = begin + chunk < n ? begin + chunk : n;
  const T* row = in + r * n;
  T acc = 0;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) acc += row[j];
  acc = warp_sum(acc);
  if (lane == 0) shared[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < warps ? shared[lane] : T(0);
    acc = warp_sum(acc);
    if (lane == 0) partial[r * parts + p] = acc;
  }
}

template <typename T>
__global__ void sum_cols_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, int64_t cols) {
  MP_GRID_STRIDE(c, cols) {
    T acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += in[i * cols + c];
    out[c] = acc;
  }
}

template <typename T>
__global__ void sum_col_parts_kernel(const T* __restrict__ in, T* __restrict__ partial, int64_t n, int64_t cols,
                                     int64_t parts) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x, p = blockIdx.y;
  if (c >= cols) return;
  const int64_t chunk = (n + parts - 1) / parts, begin = p * chunk, end = begin + chunk < n ? begin + chunk : n;
  T acc = 0;
  for (int64_t i = begin; i < end; ++i) acc += in[i * cols + c];
  partial[p * cols + c] = acc;
}

// The first maximum wins ties, as on the CPU: compare (value, -index) pairs.
template <typename T>
__device__ __forceinline__ void better(T& v, int64_t& i, T ov, int64_t oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

template <typename T>
__global__ void max_rows_kernel(const T* __restrict__ in, T* __restrict__ values, int64_t* __restrict__ indices,
                                int64_t rows, int64_t n) {
  __shared__ T sv[32];
  __shared__ int64_t si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = in + r * n;
    T v = row[0];
    int64_t idx = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) better(v, idx, row[j], j);
    for (int o = 16; o > 0; o >>= 1) better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
    if (lane == 0) {
      sv[warp] = v;
      si[warp] = idx;
    }
    __syncthreads();
    if (warp == 0) {
      v = lane < warps ? sv[lane] : sv[0];
      idx = lane < warps ? si[lane] : si[0];
      for (int o = 16; o > 0; o >>= 1)
        better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
      if (lane == 0) {
        values[r] = v;
        indices[r] = idx;
      }
    }
    __syncthreads();
  }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(rows, 1), 65535)); }

}  // namespace

void launch_sum_rows(const void* in, void* out, ScalarType t, int64_t rows, int64_t n, cudaStream_t stream) {
  if (rows == 0) return;
  MP_CHECK(t == ScalarType::Float32 || t == ScalarType::Int64, "sum: CUDA kernels take float32 or int64");
  if (t == ScalarType::Float32)
    sum_rows_kernel<float><<<row_blocks(rows), row_threads(n), 0, stream>>>(static_cast<const float*>(in),
                                                                            static_cast<float*>(out), rows, n);
  else
    sum_rows_kernel<int64_t><<<row_blocks(rows), row_threads(n), 0, stream>>>(static_cast<const int64_t*>(in),
                                                                              static_cast<int64_t*>(out), rows, n);
  CUDA_LAUNCH_CHECK();
}

void launch_sum_row_parts(const void* in, void* partial, ScalarType t, int64_t rows, int64_t n, int64_t parts,
                          cudaStream_t stream) {
  if (rows == 0 || parts == 0) return;
  MP_CHECK(t == ScalarType::Float32 || t == ScalarType::Int64, "sum: CUDA kernels take float32 or int64");
  MP_CHECK(rows <= 65535 && parts <= 65535, "sum: ", rows, " rows of ", parts, " parts exceed the grid");
  const dim3 grid(static_cast<unsigned>(parts), static_cast<unsigned>(rows));
  if (t == ScalarType::Float32)
    sum_row_parts_kernel<float><<<grid, kThreads, 0, stream>>>(static_cast<const float*>(in),
                                                               static_cast<float*>(partial), n, parts);
  else
    sum_row_parts_kernel<int64_t><<<grid, kThreads, 0, stream>>>(static_cast<const int64_t*>(in),
                                                                 static_cast<int64_t*>(partial), n, parts);
  CUDA_LAUNCH_CHECK();
}

void launch_sum_cols(const void* in, void* out, ScalarType t, int64_t n, int64_t cols, cudaStream_t stream) {
  if (cols == 0) return;
  MP_CHECK(t == ScalarType::Float32 || t == ScalarType::Int64, "sum: CUDA kernels take float32 or int64");
  if (t == ScalarType::Float32)
    sum_cols_kernel<float><<<grid_for(cols), kThreads, 0, stream>>>(static_cast<const float*>(in),
                                                                    static_cast<float*>(out), n, cols);
  else
    sum_cols_kernel<int64_t><<<grid_for(cols), kThreads, 0, stream>>>(static_cast<const int64_t*>(in),
                                                                      static_cast<int64_t*>(out), n, cols);
  CUDA_LAUNCH_CHECK();
}

void launch_sum_col_parts(const void* in, void* partial, ScalarType t, int64_t n, int64_t cols, int64_t parts,
                          cudaStream_t stream) {
  if (cols == 0 || parts == 0) return;
  MP_CHECK(t == ScalarType::Float32 || t == ScalarType::Int64, "sum: CUDA kernels take float32 or int64");
  const int64_t col_blocks = (cols + kThreads - 1) / kThreads;
  MP_CHECK(col_blocks <= INT32_MAX && parts <= 65535, "sum: ", cols, " columns in ", parts, " parts exceed the grid");
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(parts));
  if (t == ScalarType::Float32)
    sum_col_parts_kernel<float><<<grid, kThreads, 0, stream>>>(static_cast<const float*>(in),
                                                               static_cast<float*>(partial), n, cols, parts);
  else
    sum_col_parts_kernel<int64_t><<<grid, kThreads, 0, stream>>>(static_cast<const int64_t*>(in),
                                                                 static_cast<int64_t*>(partial), n, cols, parts);
  CUDA_LAUNCH_CHECK();
}

void launch_max_rows(const void* in, void* values, int64_t* indices, ScalarType t, int64_t rows, int64_t n,
                     cudaStream_t stream) {
  if (rows == 0) return;
  MP_CHECK(t == ScalarType::Float32 || t == ScalarType::Int64, "max: CUDA kernels take float32 or int64");
  if (t == ScalarType::Float32)
    max_rows_kernel<float><<<row_blocks(rows), row_threads(n), 0, stream>>>(
        static_cast<const float*>(in), static_cast<float*>(values), indices, rows, n);
  else
    max_rows_kernel<int64_t><<<row_blocks(rows), row_threads(n), 0, stream>>>(
        static_cast<const int64_t*>(in), static_cast<int64_t*>(values), indices, rows, n);
  CUDA_LAUNCH_CHECK();
}

}  // namespace minipipe::cuda
