// CPU allocation for Storage (from tensor/allocator.h), and the memory accounts every allocation
// is charged to. The CUDA allocator arrives with the CUDA backend; until then a CUDA tensor is a
// clear error, not a crash.
#include "tensor/storage.h"

#include "tensor/allocator.h"

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
  MP_CHECK(device.is_cpu(), "cannot allocate ", nbytes, " bytes on ", device.str(),
           ": this build of minipipe has no CUDA allocator yet");
  data_ = host_alloc(nbytes, block_bytes_);  // 64-byte aligned, from the caching allocator
  account_ = current_memory_account();
  account_->charge(static_cast<int64_t>(nbytes_));
}

Storage::~Storage() {
  host_free(data_, block_bytes_);
  account_->credit(static_cast<int64_t>(nbytes_));
}

}  // namespace minipipe
