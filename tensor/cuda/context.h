// Per-device CUDA state of the backend: the compute stream every kernel and GEMM of that device runs
// on, a communication stream for a communicator's transfers, events to order one after the other,
// and a cuBLAS handle bound to the compute stream. Created on first use, one per device, for the
// life of the process. Internal to tensor/cuda/.
#pragma once

#include <cuda_runtime.h>

#include "tensor/cuda/cublas.h"
#include "tensor/cuda/cuda_check.h"

namespace minipipe::cuda {

struct DeviceContext {
  int index = 0;
  cudaStream_t compute = nullptr;  // kernels, GEMMs, copies of this device's tensors
  cudaStream_t comm = nullptr;     // a communicator's sends, receives and all-reduces
  cublasHandle_t cublas = nullptr;  // bound to `compute`
  void* cublas_workspace = nullptr;  // cuBLAS workspace on `compute` (so graphs / streams never share one)
};

// The context of `device` (created on first use; thread-safe). Checks the index against the count.
DeviceContext& context(int device);

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

// The communication stream waits for the compute stream (before sending what compute produced),
// and the other way round (before computing on what was received).
inline void comm_waits_for_compute(int device) {
  DeviceContext& c = context(device);
  stream_wait(c.comm, c.compute, device);
}
inline void compute_waits_for_comm(int device) {
  DeviceContext& c = context(device);
  stream_wait(c.compute, c.comm, device);
}

}  // namespace minipipe::cuda
