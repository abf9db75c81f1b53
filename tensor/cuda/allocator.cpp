// The caching device allocator behind every CUDA Storage (what the backend's allocate / deallocate
// entries call). cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so
// freed blocks are kept in size-class free lists and handed out again. The lists are per stream
// (block_cache.h keeps them): a block is allocated for a stream, by default its device's compute
// stream, and reused on that stream at once, since stream order puts the new user after the old.
// A block also used on another stream (use_on_stream) waits for an event on that stream before it
// is reused. A communicator receives into blocks allocated for its own stream (AllocateOn), so its
// transfers need not wait for the compute stream, and marks a received tensor used on the compute
// stream when it hands it over.
// Out of memory: the device's cache is emptied and the request retried once; then an Error names
// the device, the request and the counters. Emptying synchronises the device (cudaDeviceSynchronize,
// and cudaFree does too), so it waits for an NCCL send still waiting for its receive: on `nccl`,
// running out of memory (or calling empty_cache) while a peer waits on this rank can hang.
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>

#include "tensor/cuda/block_cache.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/runtime.h"
#include "tensor/tensor.h"

namespace minipipe::cuda {

namespace {

constexpr int kMaxDevices = 64;

// The CUDA side of BlockCache: events recorded on streams of this pool's device. A block may be
// freed on a thread whose current device is another; that thread's device is put back after.
class CudaEvents final : public StreamEvents {
 public:
  int device = 0;

  void* record(void* stream) override {
    int previous = device;
    if (cudaGetDevice(&previous) != cudaSuccess) cudaGetLastError();
    void* made = nullptr;
    try {
      set_device(device);
      made = record_here(static_cast<cudaStream_t>(stream));
      set_device(previous);
    } catch (const Error&) {  // cudaSetDevice failed: the device is lost, and `made` waits for empty_cache
    }
    return made;
  }
  // A failed query (a fault on the device) counts as not done: the block stays out of use, and
  // the error stays for the next check on this thread to report. "Not ready" is no error.
  bool done(void* event) override {
    const cudaError_t st = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (st == cudaErrorNotReady) cudaGetLastError();  // the runtime records it as the last error
    return st == cudaSuccess;
  }
  void destroy(void* event) override { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

 private:
  static void* record_here(cudaStream_t stream) {
    cudaEvent_t e = nullptr;
    if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    if (cudaEventRecord(e, stream) != cudaSuccess) {
      cudaGetLastError();
      cudaEventDestroy(e);
      return nullptr;
    }
    return e;
  }
};

struct Pool {
  std::mutex mu;
  CudaEvents events;
  BlockCache cache{events};
  std::atomic<int64_t> device_allocs{0}, oom_retries{0};
};

std::array<Pool, kMaxDevices>& pools() {
  static auto* p = [] {  // never destroyed: storages may be freed at exit
    auto* all = new std::array<Pool, kMaxDevices>();
    for (int d = 0; d < kMaxDevices; ++d) (*all)[d].events.device = d;
    return all;
  }();
  return *p;
}

Pool& pool(int device) {
  MP_CHECK(device >= 0 && device < kMaxDevices, "cuda:", device, " is not a valid device index");
  return pools()[device];
}

// The stream this thread allocates for on each device (AllocateOn), when not the compute stream.
struct Override {
  int device = -1;
  cudaStream_t stream = nullptr;
};
thread_local Override allocate_on;

// Frees every cached block of one device; the caller holds p.mu. Every block leaves the cache
// before it is freed, so a failing cudaFree leaves no freed block cached.
void release_cached(Pool& p, int device) {
  if (p.cache.counts().cached == 0) return;
  set_device(device);
  CUDA_CHECK(cudaDeviceSynchronize());  // no kernel may still use a block we give back
  cudaError_t first = cudaSuccess;
  for (const auto& [block, bytes] : p.cache.take_all()) {
    const cudaError_t err = cudaFree(block);
    if (err != cudaSuccess && first == cudaSuccess) first = err;
  }
  MP_CHECK(first == cudaSuccess, "cudaFree of a cached block on cuda:", device, " failed: ", cudaGetErrorName(first),
           ": ", cudaGetErrorString(first));
}

std::string mib(int64_t bytes) { return std::to_string(bytes / (1 << 20)) + " MiB"; }

void* storage_block(const Tensor& t, const char* what) {
  MP_CHECK(t.defined() && t.device().is_cuda(), what, ": needs a tensor on a CUDA device, got ",
           t.defined() ? t.device().str() : "an undefined one");
  return t.storage()->data();
}

}  // namespace

AllocateOn::AllocateOn(int device, cudaStream_t stream) : device_(allocate_on.device), stream_(allocate_on.stream) {
  allocate_on = {device, stream};
}

AllocateOn::~AllocateOn() { allocate_on = {device_, stream_}; }

void* device_alloc(size_t nbytes, int device, size_t& block_bytes) {
  Pool& p = pool(device);
  cudaStream_t stream = compute_stream(device);  // checks the device exists, makes it current
  if (allocate_on.device == device) stream = allocate_on.stream;
  block_bytes = device_size_class(nbytes);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (void* b = p.cache.take(stream, block_bytes)) return b;
  }
  void* b = nullptr;
  cudaError_t err = cudaMalloc(&b, block_bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it, then free the cache and try once more
    BlockCache::Counts held;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      release_cached(p, device);
      held = p.cache.counts();
    }
    p.oom_retries.fetch_add(1, std::memory_order_relaxed);
    err = cudaMalloc(&b, block_bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      MP_CHECK(false, "CUDA out of memory on cuda:", device, ": asked for ", nbytes, " bytes (a block of ",
               block_bytes, "); minipipe holds ", mib(held.in_use), " in tensors (peak ", mib(held.peak), "), ",
               mib(held.cached), " cached (already emptied once and retried); the device has ",
               mib(static_cast<int64_t>(free_bytes)), " free of ", mib(static_cast<int64_t>(total_bytes)), ": ",
               cudaGetErrorString(err));
    }
  }
  MP_CHECK(err == cudaSuccess, "cudaMalloc(", block_bytes, " bytes) on cuda:", device, " failed at ", __FILE__, ":",
           __LINE__, ": ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
  p.device_allocs.fetch_add(1, std::memory_order_relaxed);
  try {
    std::lock_guard<std::mutex> lock(p.mu);
    p.cache.lend(b, block_bytes, stream);
  } catch (...) {  // out of host memory for the books: not a block nobody owns
    cudaFree(b);
    throw;
  }
  return b;
}

// Called from ~Storage, so it does not throw: a block the books cannot take (host memory ran out)
// is left allocated, never cached.
void device_free(void* block, size_t /*block_bytes: the cache knows it*/, int device) noexcept {
  if (!block) return;
  try {
    Pool& p = pool(device);
    std::lock_guard<std::mutex> lock(p.mu);
    p.cache.give_back(block);
  } catch (...) {
  }
}

void use_on_stream(const Tensor& t, cudaStream_t stream) {
  void* block = storage_block(t, "use_on_stream");
  Pool& p = pool(t.device().index);
  std::lock_guard<std::mutex> lock(p.mu);
  p.cache.use_on(block, stream);
}

void retire_stream(int device, cudaStream_t old) {
  cudaStream_t compute = compute_stream(device);
  std::string failed;
  try {
    stream_wait(compute, old, device);  // what runs on compute from now on runs after everything on `old`
  } catch (const Error& e) {
    failed = e.what();
    const cudaError_t err = cudaStreamSynchronize(old);  // the same order, from the host
    if (err == cudaSuccess) failed.clear();
    else failed += std::string("; cudaStreamSynchronize: ") + cudaGetErrorString(err);
  }
  // Rebound whatever happened: `old`'s handle may come back from a later cudaStreamCreate, and
  // must not find blocks of its own there. Failing both ways the device has failed (a sticky error):
  // no kernel runs on it after this.
  Pool& p = pool(device);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    p.cache.retire_stream(old, compute);
  }
  MP_CHECK(failed.empty(), "retire_stream on cuda:", device, ": could not order the compute stream after the retired one: ",
           failed);
}

AllocatorStats allocator_stats(int device) {
  Pool& p = pool(device);
  std::lock_guard<std::mutex> lock(p.mu);
  const BlockCache::Counts& c = p.cache.counts();
  return {c.in_use, c.peak, c.cached, c.waiting, p.device_allocs.load(), c.reuses, p.oom_retries.load()};
}

void reset_peak_memory(int device) {
  Pool& p = pool(device);
  std::lock_guard<std::mutex> lock(p.mu);
  p.cache.reset_peak();
}

void empty_cache() {
  for (int d = 0; d < kMaxDevices; ++d) {
    Pool& p = pools()[d];
    std::lock_guard<std::mutex> lock(p.mu);
    release_cached(p, d);
  }
}

}  // namespace minipipe::cuda
