// Per-device CUDA state of the backend: the compute stream every kernel and GEMM of that device runs
// on, events to order one stream after another, and a cuBLAS handle bound to the compute stream
// (made on the first GEMM). Created on first use, one per device, for the life of the process. A
// communicator's transfers run on streams of its own (parallel/nccl/comm_nccl.cpp). Internal to
// tensor/cuda/.
#pragma once

#include <cuda_runtime.h>

#include <mutex>

#include "tensor/cuda/cublas.h"
#include "tensor/cuda/cuda_check.h"

namespace minipipe::cuda {

struct DeviceContext {
  int index = 0;
  cudaStream_t compute = nullptr;  // kernels, GEMMs, copies of this device's tensors
  std::once_flag cublas_once;
  cublasHandle_t cublas = nullptr;   // bound to `compute`; made by cublas_handle()
  void* cublas_workspace = nullptr;  // cuBLAS workspace on `compute` (so graphs / streams never share one)
};

// The context of `device` (created on first use; thread-safe). Checks the index against the count.
DeviceContext& context(int device);

// The cuBLAS handle of `device`, made (with its workspace) on first use: a program that never
// multiplies on a GPU never loads cuBLAS (cublas.h).
cublasHandle_t cublas_handle(int device);

// Makes `device` current for this thread (cudaSetDevice only when it changes).
void set_device(int device);

// The compute stream of `device`, with `device` made current: where a backend op enqueues.
inline cudaStream_t compute_stream(int device) {
  DeviceContext& c = context(device);  // checks first that the device exists
  set_device(device);
  return c.compute;
}

// Stream ordering through events: work enqueued on `waiter` after this call starts only after
// everything enqueued on `producer` (a stream of device `producer_device`) so far. The streams may
// belong to one device or to two.
void stream_wait(cudaStream_t waiter, cudaStream_t producer, int producer_device);

}  // namespace minipipe::cuda
