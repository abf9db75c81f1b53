// CPU allocation for Storage, and the memory accounts every allocation is charged to. The CUDA
// allocator arrives with the CUDA backend; until then a CUDA tensor is a clear error, not a crash.
#include "tensor/storage.h"

#include <cstdlib>
#include <cstring>
#include <new>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace minipipe {

namespace {
const std::shared_ptr<MemoryAccount>& process_account() {
  // Never destroyed: storages freed during static destruction still credit it.
  static const auto* account = new std::shared_ptr<MemoryAccount>(std::make_shared<MemoryAccount>());
  return *account;
}
thread_local std::shared_ptr<MemoryAccount> thread_account;

// glibc's malloc serves blocks of 128 KiB and up (its threshold moves up as such blocks are freed)
// from fresh mmaps, and hands freed memory at the top of a heap back to the kernel: a training step
// then takes a page fault per 4 KiB of every activation and gradient, every step, and OpenBLAS
// zeroes each fresh output page by page. Training allocates the same sizes step after step, so we
// keep blocks up to 32 MiB (glibc's maximum) in the heap and freed memory in the process, once per
// process, before the first storage. docs/performance.md has the before and after; set
// GLIBC_TUNABLES or MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ yourself to keep your own.
bool keep_freed_memory() {
#ifdef __GLIBC__
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if ((tunables && std::strstr(tunables, "malloc")) || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return false;
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#else
  return false;
#endif
}
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
  [[maybe_unused]] static const bool kept = keep_freed_memory();
  // aligned_alloc needs a size that is a multiple of the alignment; 64 bytes = one cache line
  // and one AVX-512 register.
  size_t rounded = (nbytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!data_) throw std::bad_alloc();
  account_ = current_memory_account();
  account_->charge(static_cast<int64_t>(nbytes_));
}

Storage::~Storage() {
  std::free(data_);
  account_->credit(static_cast<int64_t>(nbytes_));
}

}  // namespace minipipe
