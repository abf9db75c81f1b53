// The CUDA runtime glue the CPU side calls: how many devices there are. Compiled with nvcc
// whenever the toolkit is found (the build itself is a check); kernels will come with the CUDA
// backend, each with its CPU kernel as the reference in a test.
#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/runtime.h"

namespace minipipe::cuda {

int device_count() {
  int n = 0;
  // No driver or no device is not an error here: it means "run on the CPU".
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

}  // namespace minipipe::cuda
