// The caching host allocator: one process-wide pool of freed blocks per size class under one
// mutex (an uncontended lock costs ~20 ns, next to the microseconds of the op that allocates),
// with atomic counters the benchmarks and traces read without taking it.
#include "tensor/allocator.h"

#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "tensor/error.h"

namespace minipipe {

namespace {

// AddressSanitizer builds start with caching off: a block handed out again would hide a use after
// free. ThreadSanitizer builds keep it on: the pool's mutex orders a free before the next
// allocation of the block, so reuse is no false race, and the rank threads exercise the pool.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitized = true;
#else
constexpr bool kAddressSanitized = false;
#endif
#else
constexpr bool kAddressSanitized = false;
#endif

bool enabled_by_default() {
  const char* env = std::getenv("MINIPIPE_CACHING_ALLOCATOR");
  if (!env || !*env) return !kAddressSanitized;
  MP_CHECK(std::strcmp(env, "0") == 0 || std::strcmp(env, "1") == 0,
           "MINIPIPE_CACHING_ALLOCATOR must be 0 (off) or 1 (on), got '", env, "'");
  return std::strcmp(env, "1") == 0;
}

// Per process: under mpirun each rank's process keeps its own cache.
int64_t limit_by_default() {
  const char* env = std::getenv("MINIPIPE_HOST_CACHE_LIMIT_MB");
  if (!env || !*env) return int64_t{8} << 30;
  char* end = nullptr;
  const long long mb = std::strtoll(env, &end, 10);
  MP_CHECK(*end == '\0' && mb >= 0 && mb <= (int64_t{1} << 30),
           "MINIPIPE_HOST_CACHE_LIMIT_MB must be a whole number of MiB from 0 to 2^30, got '", env, "'");
  return static_cast<int64_t>(mb) << 20;
}

struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // block size -> cached blocks
  std::atomic<bool> enabled{enabled_by_default()};
  std::atomic<int64_t> limit{limit_by_default()};
  std::atomic<int64_t> in_use{0}, peak{0}, cached{0}, system_allocs{0}, reuses{0};
};

// Never destroyed: storages freed during static destruction still give their blocks back.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

void note_in_use(Pool& p, int64_t bytes) {
  const int64_t now = p.in_use.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = p.peak.load(std::memory_order_relaxed);
  while (now > peak && !p.peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void* system_alloc(size_t block_bytes) {
  void* b = std::aligned_alloc(64, block_bytes);  // 64 bytes: a cache line, an AVX-512 register
  if (!b) {
    empty_host_cache();  // cached blocks of other sizes may be what the system is missing
    b = std::aligned_alloc(64, block_bytes);
  }
  if (!b) throw std::bad_alloc();
  pool().system_allocs.fetch_add(1, std::memory_order_relaxed);
  return b;
}

}  // namespace

size_t host_size_class(size_t nbytes) {
  if (nbytes <= 4096) return nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64;
  const size_t step = std::bit_floor(nbytes) / 4;  // four classes between 2^k and 2^(k+1)
  return (nbytes + step - 1) / step * step;
}

void* host_alloc(size_t nbytes, size_t& block_bytes) {
  Pool& p = pool();
  block_bytes = host_size_class(nbytes);
  void* b = nullptr;
  if (p.enabled.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lk(p.mu);
    auto it = p.free.find(block_bytes);
    if (it != p.free.end() && !it->second.empty()) {
      b = it->second.back();
      it->second.pop_back();
    }
  }
  if (b) {
    p.cached.fetch_sub(static_cast<int64_t>(block_bytes), std::memory_order_relaxed);
    p.reuses.fetch_add(1, std::memory_order_relaxed);
  } else {
    b = system_alloc(block_bytes);
  }
  note_in_use(p, static_cast<int64_t>(block_bytes));
  return b;
}

void host_free(void* block, size_t block_bytes) {
  if (!block) return;
  Pool& p = pool();
  p.in_use.fetch_sub(static_cast<int64_t>(block_bytes), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(p.mu);  // enabled read under the lock: set_host_caching(false) then empties all
    if (p.enabled.load(std::memory_order_relaxed) &&
        p.cached.load(std::memory_order_relaxed) + static_cast<int64_t>(block_bytes) <=
            p.limit.load(std::memory_order_relaxed)) {
      p.free[block_bytes].push_back(block);
      p.cached.fetch_add(static_cast<int64_t>(block_bytes), std::memory_order_relaxed);
      return;
    }
  }
  std::free(block);
}

HostAllocatorStats host_allocator_stats() {
  const Pool& p = pool();
  return {p.in_use.load(std::memory_order_relaxed), p.peak.load(std::memory_order_relaxed),
          p.cached.load(std::memory_order_relaxed), p.system_allocs.load(std::memory_order_relaxed),
          p.reuses.load(std::memory_order_relaxed)};
}

void reset_peak_host_memory() {
  Pool& p = pool();
  p.peak.store(p.in_use.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void empty_host_cache() {
  Pool& p = pool();
  std::unordered_map<size_t, std::vector<void*>> blocks;
  {
    std::lock_guard<std::mutex> lk(p.mu);
    blocks.swap(p.free);
    for (const auto& [size, list] : blocks)
      p.cached.fetch_sub(static_cast<int64_t>(size * list.size()), std::memory_order_relaxed);
  }
  for (auto& [size, list] : blocks)
    for (void* b : list) std::free(b);
}

void set_host_caching(bool enabled) {
  {
    std::lock_guard<std::mutex> lk(pool().mu);
    pool().enabled.store(enabled, std::memory_order_relaxed);
  }
  if (!enabled) empty_host_cache();
}

void set_host_cache_limit(int64_t bytes) { pool().limit.store(bytes, std::memory_order_relaxed); }
int64_t host_cache_limit() { return pool().limit.load(std::memory_order_relaxed); }

bool host_caching() { return pool().enabled.load(std::memory_order_relaxed); }

}  // namespace minipipe
