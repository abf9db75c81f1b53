// The CUDA backend's table of kernels (tensor/backend.h), registered in tensor/backend.cpp. Every
// raw op the MLP and GPT trainers use has an entry; an entry left null would be an Error naming the
// op and the device. Storage allocates through the caching allocator (allocator.cpp).
#include "tensor/cuda/backend.h"

#include "tensor/cuda/ops_common.h"

namespace minipipe::cuda {

constinit const Backend kBackend = {
    .name = "cuda",
    .allocate = device_alloc, .deallocate = device_free, .copy_across = copy_across,
    MP_BACKEND_OPS(MP_BACKEND_TABLE_ENTRY)
};

}  // namespace minipipe::cuda
