// Which devices this process can use. CPU always; CUDA when minipipe was built with the CUDA
// toolkit (MINIPIPE_CUDA) and a device is present. GPU tests skip themselves when not.
#pragma once

namespace minipipe {

bool cuda_is_built();
bool cuda_is_available();
int cuda_device_count();

}  // namespace minipipe
