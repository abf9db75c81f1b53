// The CPU backend: its table of kernels (tensor/backend.h), registered in tensor/backend.cpp.
// Allocation is not here: Storage calls the caching host allocator (tensor/allocator.h) directly.
#include "tensor/cpu/kernels.h"

namespace minipipe::cpu {

constinit const Backend kBackend = {
    .name = "cpu",
    MP_BACKEND_OPS(MP_BACKEND_TABLE_ENTRY)
};

}  // namespace minipipe::cpu
