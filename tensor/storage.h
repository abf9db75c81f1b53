// Storage: one reference-counted, 64-byte-aligned buffer on one device. Tensors are views of it
// (sizes, strides, offset), so many tensors can share one Storage without copying.
#pragma once

#include <cstddef>
#include <memory>

#include "tensor/dtype.h"

namespace minipipe {

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

}  // namespace minipipe
