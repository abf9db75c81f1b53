// Device availability: asks the CUDA runtime in CUDA builds, says "none" otherwise.
#include "tensor/device.h"

#include <charconv>

#include "tensor/error.h"

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

Device parse_device(std::string_view name) {
  if (name == "cpu") return Device::cpu();
  int index = 0;
  if (name.starts_with("cuda:")) {
    const std::string_view digits = name.substr(5);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    MP_CHECK(ec == std::errc() && end == digits.data() + digits.size() && index >= 0, "unknown device '", name,
             "' (expected cpu, cuda or cuda:N with N >= 0)");
  } else {
    MP_CHECK(name == "cuda", "unknown device '", name, "' (expected cpu, cuda or cuda:N)");
  }
  MP_CHECK(cuda_is_built(), "device ", name, ": this build of minipipe has no CUDA backend (configure where the "
           "CUDA toolkit is installed, -DMINIPIPE_CUDA=ON)");
  const int n = cuda_device_count();
  MP_CHECK(index < n, "device ", name, ": this machine has ", n, " CUDA device", n == 1 ? "" : "s",
           n == 0 ? " (no GPU, or no usable driver)" : "");
  return Device::cuda(index);
}

}  // namespace minipipe
