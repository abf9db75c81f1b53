// The caching device allocator behind every CUDA Storage (what the backend's allocate / deallocate
// entries call). cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so
// freed blocks are kept in size-class free lists and handed out again. Lists are per stream: a block
// freed while kernels on its stream may still use it is safe to reuse on that same stream (stream
// order puts the new user after the old), never on another without an event. Every block is
// allocated for, and returned to, its device's compute stream; a communicator whose own streams
// read or write a block orders them after the compute stream first, and keeps the tensor until its
// transfer has finished.
// Out of memory: the device's cache is emptied and the request retried once; then an Error names
// the device, the request and the counters. Emptying synchronises the device (cudaDeviceSynchronize,
// and cudaFree does too), so it waits for an NCCL send still waiting for its receive: on `nccl`,
// running out of memory (or calling empty_cache) while a peer waits on this rank can hang.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/cuda/context.h"
#include "tensor/cuda/runtime.h"

namespace minipipe::cuda {

namespace {

constexpr int kMaxDevices = 64;

struct Pool {
  std::mutex mu;
  // stream -> block size -> cached blocks
  std::unordered_map<cudaStream_t, std::unordered_map<size_t, std::vector<void*>>> free;
  std::atomic<int64_t> in_use{0}, peak{0}, cached{0}, device_allocs{0}, reuses{0}, oom_retries{0};
};

std::array<Pool, kMaxDevices>& pools() {
  static auto* p = new std::array<Pool, kMaxDevices>();  // never destroyed: storages may be freed at exit
  return *p;
}

Pool& pool(int device) {
  MP_CHECK(device >= 0 && device < kMaxDevices, "cuda:", device, " is not a valid device index");
  return pools()[device];
}

void note_in_use(Pool& p, int64_t bytes) {
  const int64_t now = p.in_use.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = p.peak.load(std::memory_order_relaxed);
  while (now > peak && !p.peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

// Frees every cached block of one device; the caller holds p.mu.
void release_cached(Pool& p, int device) {
  if (p.cached.load() == 0) return;
  set_device(device);
  CUDA_CHECK(cudaDeviceSynchronize());  // no kernel may still use a block we give back
  for (auto& [stream, by_size] : p.free)
    for (auto& [size, blocks] : by_size)
      while (!blocks.empty()) {  // off the list before it is freed: a failing cudaFree leaves no freed block cached
        void* b = blocks.back();
        blocks.pop_back();
        p.cached.fetch_sub(static_cast<int64_t>(size), std::memory_order_relaxed);
        CUDA_CHECK(cudaFree(b));
      }
}

std::string mib(int64_t bytes) { return std::to_string(bytes / (1 << 20)) + " MiB"; }

}  // namespace

size_t device_size_class(size_t nbytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{1} << 20;
  if (nbytes <= kSmall) return kSmall;
  if (nbytes <= kLarge) return (nbytes + kSmall - 1) / kSmall * kSmall;
  // Four classes per power of two above 1 MiB: [2^k, 2^k * 1.25, 1.5, 1.75].
  const size_t top = std::bit_floor(nbytes), quarter = top / 4;
  return (nbytes + quarter - 1) / quarter * quarter;
}

void* device_alloc(size_t nbytes, int device, size_t& block_bytes) {
  Pool& p = pool(device);
  cudaStream_t stream = compute_stream(device);  // checks the device exists, makes it current
  block_bytes = device_size_class(nbytes);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    auto& list = p.free[stream][block_bytes];
    if (!list.empty()) {
      void* b = list.back();
      list.pop_back();
      p.cached.fetch_sub(static_cast<int64_t>(block_bytes), std::memory_order_relaxed);
      p.reuses.fetch_add(1, std::memory_order_relaxed);
      note_in_use(p, static_cast<int64_t>(block_bytes));
      return b;
    }
  }
  void* b = nullptr;
  cudaError_t err = cudaMalloc(&b, block_bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it, then free the cache and try once more
    {
      std::lock_guard<std::mutex> lock(p.mu);
      release_cached(p, device);
    }
    p.oom_retries.fetch_add(1, std::memory_order_relaxed);
    err = cudaMalloc(&b, block_bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      MP_CHECK(false, "CUDA out of memory on cuda:", device, ": asked for ", nbytes, " bytes (a block of ",
               block_bytes, "); minipipe holds ", mib(p.in_use.load()), " in tensors (peak ", mib(p.peak.load()),
               "), ", mib(p.cached.load()), " cached (already emptied once and retried); the device has ",
               mib(static_cast<int64_t>(free_bytes)), " free of ", mib(static_cast<int64_t>(total_bytes)), ": ",
               cudaGetErrorString(err));
    }
  }
  MP_CHECK(err == cudaSuccess, "cudaMalloc(", block_bytes, " bytes) on cuda:", device, " failed at ", __FILE__, ":",
           __LINE__, ": ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
  p.device_allocs.fetch_add(1, std::memory_order_relaxed);
  note_in_use(p, static_cast<int64_t>(block_bytes));
  return b;
}

void device_free(void* block, size_t block_bytes, int device) {
  if (!block) return;
  Pool& p = pool(device);
  cudaStream_t stream = context(device).compute;
  std::lock_guard<std::mutex> lock(p.mu);
  p.free[stream][block_bytes].push_back(block);
  p.in_use.fetch_sub(static_cast<int64_t>(block_bytes), std::memory_order_relaxed);
  p.cached.fetch_add(static_cast<int64_t>(block_bytes), std::memory_order_relaxed);
}

AllocatorStats allocator_stats(int device) {
  Pool& p = pool(device);
  return {p.in_use.load(), p.peak.load(), p.cached.load(), p.device_allocs.load(), p.reuses.load(),
          p.oom_retries.load()};
}

void reset_peak_memory(int device) {
  Pool& p = pool(device);
  p.peak.store(p.in_use.load());
}

void empty_cache() {
  for (int d = 0; d < kMaxDevices; ++d) {
    Pool& p = pools()[d];
    std::lock_guard<std::mutex> lock(p.mu);
    release_cached(p, d);
  }
}

}  // namespace minipipe::cuda
