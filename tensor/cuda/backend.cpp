// The CUDA backend's table of kernels (tensor/backend.h). Entries left null have no CUDA kernel
// yet: calling them on a cuda tensor is an Error naming the op and the device.
#include "tensor/cuda/backend.h"

namespace minipipe::cuda {

constinit const Backend kBackend = {
    .name = "cuda",
};

}  // namespace minipipe::cuda
