// Per-device CUDA state of the backend: the compute stream every kernel and GEMM of that device runs
// on, events to order one stream after another, and a cuBLAS handle bound to the compute stream
// (made on the first GEMM). Created on first use, one per device, for the life of the process. A
// communicator's transfers run on streams of its own (parallel/nccl/comm_nccl.cpp); what the
// caching allocator offers such streams (AllocateOn, use_on_stream, retire_stream: allocator.cpp)
// is declared here too. For tensor/cuda/ and the nccl communicator, not for users.
#pragma once

#include <cuda_runtime.h>

#include <mutex>

#include "tensor/cuda/cublas.h"
#include "tensor/cuda/cuda_check.h"

namespace minipipe {
class Tensor;
}

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

// ---- streams other than the compute stream, and the caching allocator (allocator.cpp) ----

// For its scope, blocks this thread allocates on `device` are allocated for `stream` (not the
// compute stream): work on `stream` may use them without waiting for the compute stream. A tensor
// made under it and then used on the compute stream must be marked so (use_on_stream). One scope
// per thread holds: the innermost wins, and an outer one for another device is suspended in it.
// `stream` must be retired (retire_stream) before it is destroyed.
class AllocateOn {
 public:
  AllocateOn(int device, cudaStream_t stream);
  ~AllocateOn();
  AllocateOn(const AllocateOn&) = delete;
  AllocateOn& operator=(const AllocateOn&) = delete;

 private:
  int device_;
  cudaStream_t stream_;
};

// `t`'s block is also used on `stream` (a stream of t's device that lives until `t` is freed, or
// is retired first): when it is freed, the allocator reuses it only after `stream` has finished
// what was enqueued on it by then.
void use_on_stream(const Tensor& t, cudaStream_t stream);

// Before `old` (a stream of `device`, not its compute stream) is destroyed: the compute stream is
// made to wait for it (or, if that fails, the host for it), and the blocks allocated for it, and
// uses marked on it, become the compute stream's. Throws if neither wait could be made.
void retire_stream(int device, cudaStream_t old);

}  // namespace minipipe::cuda
