// What the CPU side may ask the CUDA runtime (implemented in runtime.cu, only in CUDA builds;
// tensor/device.cpp answers "no devices" otherwise).
#pragma once

#include <string>

namespace minipipe::cuda {

int device_count();
std::string device_name(int index);

}  // namespace minipipe::cuda
