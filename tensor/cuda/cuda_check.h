// CUDA_CHECK: wraps a CUDA runtime call and turns a failure into minipipe::Error naming the call,
// file, line and CUDA's own error string. CUDA_LAUNCH_CHECK() follows every kernel launch (a bad
// launch configuration shows up there; a fault inside the kernel at the next synchronising call).
// Included only by tensor/cuda/ files.
#pragma once

#include <cuda_runtime.h>

#include "tensor/error.h"

// A failed call also sets the thread's last error; it is cleared before the throw, so a later
// CUDA_LAUNCH_CHECK does not report it again (a sticky error, from a fault, cannot be cleared).
#define CUDA_CHECK(call)                                                                        \
  do {                                                                                          \
    cudaError_t err_ = (call);                                                                  \
    if (err_ != cudaSuccess) (void)cudaGetLastError();                                          \
    MP_CHECK(err_ == cudaSuccess, #call, " failed at ", __FILE__, ":", __LINE__, ": ",          \
             cudaGetErrorName(err_), ": ", cudaGetErrorString(err_));                           \
  } while (0)

#define CUDA_LAUNCH_CHECK()                                                                     \
  do {                                                                                          \
    cudaError_t err_ = cudaGetLastError();                                                      \
    MP_CHECK(err_ == cudaSuccess, "kernel launch failed at ", __FILE__, ":", __LINE__, ": ",    \
             cudaGetErrorName(err_), ": ", cudaGetErrorString(err_));                           \
  } while (0)
