// CUDA_CHECK: wraps a CUDA runtime call and turns a failure into minipipe::Error naming the call,
// file, line and CUDA's own error string. CUDA_LAUNCH_CHECK() follows every kernel launch (a bad
// launch configuration shows up there; a fault inside the kernel at the next synchronising call).
// Included only by tensor/cuda/ files.
#pragma once

#include <cuda_runtime.h>

#include "tensor/error.h"

#define CUDA_CHECK(call)                                                                        \
  do {                                                                                          \
    cudaError_t err_ = (call);                                                                  \
    MP_CHECK(err_ == cudaSuccess, #call, " failed at ", __FILE__, ":", __LINE__, ": ",          \
             cudaGetErrorName(err_), ": ", cudaGetErrorString(err_));                           \
  } while (0)

#define CUDA_LAUNCH_CHECK()                                                                     \
  do {                                                                                          \
    cudaError_t err_ = cudaGetLastError();                                                      \
    MP_CHECK(err_ == cudaSuccess, "kernel launch failed at ", __FILE__, ":", __LINE__, ": ",    \
             cudaGetErrorName(err_), ": ", cudaGetErrorString(err_));                           \
  } while (0)
