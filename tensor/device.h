// Which devices this process can use. CPU always; CUDA when minipipe was built with the CUDA
// toolkit (MINIPIPE_CUDA) and a device is present. GPU tests skip themselves when not.
#pragma once

#include <string_view>

#include "tensor/dtype.h"

namespace minipipe {

bool cuda_is_built();
bool cuda_is_available();
int cuda_device_count();

// "cpu", "cuda" (cuda:0) or "cuda:N", checked against this build and machine: an Error naming the
// text and what is missing (no CUDA backend, no such device).
Device parse_device(std::string_view name);

}  // namespace minipipe
