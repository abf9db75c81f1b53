// The caching host allocator behind every CPU Storage: freed blocks are kept by size class and
// handed out again, so a training loop that allocates the same shapes step after step stops
// asking the system for memory (and stops taking a page fault per 4 KiB of every fresh output).
// Thread-safe: pipeline ranks are threads, and a block may be freed on another thread than the
// one that allocated it. MINIPIPE_CACHING_ALLOCATOR=0 in the environment turns it off (every
// block straight from and back to malloc), for comparison; AddressSanitizer builds start with it
// off, so ASan still sees every use after free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace minipipe {

struct HostAllocatorStats {
  int64_t in_use = 0;          // bytes of blocks handed out now (size classes, so >= what tensors asked for)
  int64_t peak_in_use = 0;     // the most in_use has been since the last reset_peak_host_memory()
  int64_t cached = 0;          // bytes of freed blocks kept for reuse
  int64_t system_allocs = 0;   // blocks taken from the system so far
  int64_t reuses = 0;          // blocks handed out from the cache so far
};

// A block of at least `nbytes` bytes (64-byte aligned); `block_bytes` gets the size it really has,
// which host_free needs back. Throws std::bad_alloc when the system has no memory even after
// the cache was emptied.
void* host_alloc(size_t nbytes, size_t& block_bytes);
void host_free(void* block, size_t block_bytes);

// The size class a request of `nbytes` is served from: a multiple of 64 up to 4 KiB, then four
// classes per power of two (at most 25% more than asked, 12% on average).
size_t host_size_class(size_t nbytes);

HostAllocatorStats host_allocator_stats();
void reset_peak_host_memory();
// Gives every cached block back to the system.
void empty_host_cache();
// Turns caching on or off for this process (off also empties the cache). Blocks already handed
// out go back the way they came.
void set_host_caching(bool enabled);
bool host_caching();
// The most bytes the cache keeps (default 8 GiB per process, or MINIPIPE_HOST_CACHE_LIMIT_MB): a block freed
// when the cache is full goes back to the system, so a run whose shapes keep changing (generation
// with a growing context) cannot hoard memory it will never reuse.
void set_host_cache_limit(int64_t bytes);
int64_t host_cache_limit();

}  // namespace minipipe
