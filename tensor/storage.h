// Storage: one reference-counted, 64-byte-aligned buffer on one device. Tensors are views of it
// (sizes, strides, offset), so many tensors can share one Storage without copying.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/dtype.h"

namespace minipipe {

// Live and peak bytes of the storages charged to it. A Storage is charged when it is allocated,
// to the allocating thread's current account (MemoryAccountGuard; by default one process-wide
// account), and credited back when it is freed, on whatever thread. A pipeline rank gets its own
// account, so what a rank holds — activations stashed for backward among it — is measured, not
// estimated.
class MemoryAccount {
 public:
  int64_t live() const { return live_.load(std::memory_order_relaxed); }
  int64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  void reset_peak() { peak_.store(live(), std::memory_order_relaxed); }
  void charge(int64_t bytes);
  void credit(int64_t bytes) { live_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> live_{0}, peak_{0};
};

// The account this thread's new storages are charged to.
const std::shared_ptr<MemoryAccount>& current_memory_account();

// Charges this thread's allocations to `account` for its scope (null: the process-wide account).
class MemoryAccountGuard {
 public:
  explicit MemoryAccountGuard(std::shared_ptr<MemoryAccount> account);
  ~MemoryAccountGuard();
  MemoryAccountGuard(const MemoryAccountGuard&) = delete;
  MemoryAccountGuard& operator=(const MemoryAccountGuard&) = delete;

 private:
  std::shared_ptr<MemoryAccount> previous_;
};

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
  size_t block_bytes_ = 0;  // what the allocator handed out (a size class >= nbytes_)
  Device device_;
  std::shared_ptr<MemoryAccount> account_;
};

}  // namespace minipipe
