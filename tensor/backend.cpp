// The backend registry: which Backend table serves each device type. The one place a new backend
// is registered (its folder fills a Backend; this file lists it). Constant-initialised, so no
// static-initialisation order to worry about and nothing to look up at run time.
#include "tensor/backend.h"

#include "tensor/cpu/kernels.h"
#ifdef MINIPIPE_CUDA
#include "tensor/cuda/backend.h"
#endif

namespace minipipe {

namespace {

constexpr size_t kDeviceTypes = 2;  // DeviceType::CPU, DeviceType::CUDA
constinit const Backend* const kBackends[kDeviceTypes] = {
    &cpu::kBackend,
#ifdef MINIPIPE_CUDA
    &cuda::kBackend,
#else
    nullptr,
#endif
};

[[noreturn]] void no_backend(Device d) {
  detail::throw_error(detail::str_cat("no backend for ", d.str(), ": this build of minipipe has ",
                                      d.is_cuda() ? "no CUDA backend (configure with -DMINIPIPE_CUDA=ON on a machine with the CUDA toolkit)"
                                                  : "no backend for that device type"));
}

}  // namespace

const Backend* registered_backend(DeviceType type) {
  const auto i = static_cast<size_t>(type);
  return i < kDeviceTypes ? kBackends[i] : nullptr;
}

const Backend& backend_for(Device d) {
  const auto i = static_cast<size_t>(d.type);
  if (i >= kDeviceTypes || !kBackends[i]) [[unlikely]]
    no_backend(d);
  return *kBackends[i];
}

}  // namespace minipipe
