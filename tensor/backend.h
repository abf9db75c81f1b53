// A backend: the table of kernels one device type implements, one entry per raw op of
// tensor/ops.h that touches memory. tensor/dispatch.cpp is the one dispatch point per op: it checks
// that every tensor is defined and on one device, then calls the entry of that device's backend.
// tensor/cpu/ fills the CPU table (the reference for every kernel), tensor/cuda/ the CUDA one.
// The entries come from the one list of raw ops, tensor/backend_ops.h. Adding a backend: a folder
// that defines those kernels and fills a Backend from the list, and one line in tensor/backend.cpp.
#pragma once

#include <cstddef>
#include <tuple>
#include <utility>
#include <vector>

#include "tensor/backend_ops.h"
#include "tensor/generator.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace minipipe {

// An entry left null is an op the backend has no kernel for: calling it is an Error naming the op
// and the device, never a silent fallback to another device.
struct Backend {
  const char* name = nullptr;

  // ---- memory (the CPU keeps its own allocator, tensor/allocator.h; Storage calls it directly) ----
  // A block of at least nbytes on device `index`; block_bytes gets the size it really has.
  void* (*allocate)(size_t nbytes, int index, size_t& block_bytes) = nullptr;
  void (*deallocate)(void* block, size_t block_bytes, int index) = nullptr;
  // dst and src on different devices, one of them this backend's (same shape, same dtype,
  // contiguous or not: the backend stages what it must).
  void (*copy_across)(const Tensor& dst, const Tensor& src) = nullptr;

  // ---- the raw ops (tensor/backend_ops.h): `Tensor (*add)(const Tensor& a, const Tensor& b)`, ... ----
#define MP_BACKEND_ENTRY(ret, name, params) ret(*name) params = nullptr;
  MP_BACKEND_OPS(MP_BACKEND_ENTRY)
#undef MP_BACKEND_ENTRY
};

// The backend of a device type (CPU always; CUDA in CUDA builds); throws naming the device when
// none is built for it.
const Backend& backend_for(Device device);

// The backends this build registered (tensor/backend.cpp), indexed by DeviceType.
const Backend* registered_backend(DeviceType type);

}  // namespace minipipe
