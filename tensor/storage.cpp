// Allocation for Storage — the caching host allocator (tensor/allocator.h) on the CPU, the device
// backend's allocator otherwise (tensor/backend.h) — and the memory accounts every allocation is
// charged to.
#include "tensor/storage.h"

#include "tensor/allocator.h"
#include "tensor/backend.h"

namespace minipipe {

namespace {
const std::shared_ptr<MemoryAccount>& process_account() {
  // Never destroyed: storages freed during static destruction still credit it.
  static const auto* account = new std::shared_ptr<MemoryAccount>(std::make_shared<MemoryAccount>());
  return *account;
}
thread_local std::shared_ptr<MemoryAccount> thread_account;

}  // namespace

void MemoryAccount::charge(int64_t bytes) {
  const int64_t now = live_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

const std::shared_ptr<MemoryAccount>& current_memory_account() {
  return thread_account ? thread_account : process_account();
}

MemoryAccountGuard::MemoryAccountGuard(std::shared_ptr<MemoryAccount> account)
    : previous_(std::move(thread_account)) {
  thread_account = std::move(account);
}

MemoryAccountGuard::~MemoryAccountGuard() { thread_account = std::move(previous_); }

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (device.is_cpu()) [[likely]] {
    data_ = host_alloc(nbytes, block_bytes_);  // 64-byte aligned, from the caching allocator
  } else {
    const Backend& be = backend_for(device);
    MP_CHECK(be.allocate != nullptr, "cannot allocate ", nbytes, " bytes on ", device.str(), ": the ", be.name,
             " backend has no allocator");
    data_ = be.allocate(nbytes, device.index, block_bytes_);
  }
  account_ = current_memory_account();
  account_->charge(static_cast<int64_t>(nbytes_));
}

Storage::~Storage() {
  if (device_.is_cpu()) [[likely]]
    host_free(data_, block_bytes_);
  else
    backend_for(device_).deallocate(data_, block_bytes_, device_.index);
  account_->credit(static_cast<int64_t>(nbytes_));
}

}  // namespace minipipe
