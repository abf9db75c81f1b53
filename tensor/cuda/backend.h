// The CUDA backend's op table (tensor/backend.h), registered in tensor/backend.cpp. Only the CUDA
// build compiles tensor/cuda/; nothing outside tensor/ includes this header.
#pragma once

#include "tensor/backend.h"

namespace minipipe::cuda {

extern const Backend kBackend;

}  // namespace minipipe::cuda
