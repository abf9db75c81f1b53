// What the CPU side may ask of the CUDA runtime, with no CUDA types in sight (implemented in
// tensor/cuda/, only in CUDA builds; tensor/device.cpp answers "no devices" otherwise). Tests,
// examples and benchmarks include it behind #ifdef MINIPIPE_CUDA.
#pragma once

#include <cstdint>
#include <string>

namespace minipipe::cuda {

int device_count();
std::string device_name(int index);

// Waits until every kernel and copy enqueued on `device`'s compute stream has finished (not a
// communicator's streams: a receive posted there may wait for a peer).
void synchronize(int device);

// The caching device allocator's counters for one device (bytes).
struct AllocatorStats {
  int64_t in_use = 0;         // blocks handed out now (size classes, so >= what tensors asked for)
  int64_t peak_in_use = 0;    // the most in_use has been since the last reset_peak_memory(device)
  int64_t cached = 0;         // freed blocks kept for reuse
  int64_t waiting = 0;        // of those, blocks another stream may still use (use_on_stream)
  int64_t device_allocs = 0;  // cudaMalloc calls so far
  int64_t reuses = 0;         // blocks handed out from the cache so far
  int64_t oom_retries = 0;    // times an out-of-memory emptied the cache and retried
};
AllocatorStats allocator_stats(int device);
void reset_peak_memory(int device);
// Gives every cached block of every device back to CUDA (synchronising each device first).
void empty_cache();
// The size classes: device_size_class in tensor/cuda/block_cache.h.

// Float32 GEMMs through TF32 tensor cores (10-bit mantissa inputs, float32 accumulation): off by
// default, so results match float32 to rounding; on for speed on Ampere and newer.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace minipipe::cuda
