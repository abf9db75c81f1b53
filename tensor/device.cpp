// Device availability: asks the CUDA runtime in CUDA builds, says "none" otherwise.
#include "tensor/device.h"

#ifdef MINIPIPE_CUDA
#include "tensor/cuda/runtime.h"
#endif

namespace minipipe {

#ifdef MINIPIPE_CUDA
bool cuda_is_built() { return true; }
int cuda_device_count() { return cuda::device_count(); }
#else
bool cuda_is_built() { return false; }
int cuda_device_count() { return 0; }
#endif

bool cuda_is_available() { return cuda_device_count() > 0; }

}  // namespace minipipe
