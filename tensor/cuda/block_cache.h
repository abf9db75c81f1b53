// The bookkeeping of the caching device allocator, with no CUDA in it: which blocks are lent, which
// are cached for which stream, and which wait for another stream to finish with them before they
// can be cached. allocator.cpp drives it with CUDA streams and events; tests/test_cuda.cpp drives
// it with fake ones, on every machine. Streams and events are opaque handles here.
//
// The rule it keeps: a block cached for stream S may be handed to S's next user at once (stream
// order runs that user after every earlier use on S), never to another stream. A block used on
// streams other than the one it was allocated for (use_on) is cached only once every such stream
// has passed an event recorded when the block was given back. That is what lets a communicator
// receive into blocks of its own stream while the compute stream still runs: no wait on compute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

namespace minipipe::cuda {

// Block sizes the allocator serves a request of `nbytes` from: a multiple of 512 bytes up to
// 1 MiB, then four classes per power of two (at most 25% more than asked).
size_t device_size_class(size_t nbytes);

// What the cache asks of the runtime about streams: CUDA events in allocator.cpp.
class StreamEvents {
 public:
  virtual ~StreamEvents() = default;
  // A marker after everything enqueued on `stream` so far, or null when none could be made.
  virtual void* record(void* stream) = 0;
  // Whether everything enqueued before the marker has run.
  virtual bool done(void* event) = 0;
  virtual void destroy(void* event) = 0;
};

// Not thread-safe: the allocator calls it under its pool's mutex.
class BlockCache {
 public:
  struct Counts {
    int64_t in_use = 0;   // bytes of blocks lent now
    int64_t peak = 0;     // the most in_use has been since reset_peak()
    int64_t cached = 0;   // bytes of blocks held for reuse, waiting ones included
    int64_t waiting = 0;  // of those, bytes still used by another stream
    int64_t reuses = 0;   // blocks handed out from the cache
  };

  explicit BlockCache(StreamEvents& events) : events_(events) {}
  ~BlockCache();  // destroys the events still pending (the blocks are the owner's to free)
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // A cached block of exactly `bytes` (a size class) for `stream`, lent to the caller; null when
  // there is none. Waiting blocks whose other streams have finished are cached first.
  void* take(void* stream, size_t bytes);
  // Records a new block (from the device) as lent, allocated for `stream`.
  void lend(void* block, size_t bytes, void* stream);
  // A lent block is also read or written on `stream` (no-op for its own stream).
  void use_on(void* block, void* stream);
  // A lent block is free: cached for its stream at once, or, when other streams used it, once an
  // event recorded on each of them now has fired. If an event cannot be made, the block waits for
  // take_all (which comes after the device has finished everything): never handed out too early.
  void give_back(void* block);
  // `old` is going away, and the caller has made `into` wait for it: its cached blocks become
  // `into`'s, blocks lent for it become blocks of `into`, and uses on it count as uses on `into`.
  void retire_stream(void* old, void* into);
  // Every cached block, waiting ones too, out of the cache (to be freed): the caller has first
  // waited for the device, so every pending event has fired.
  std::vector<std::pair<void*, size_t>> take_all();

  const Counts& counts() const { return counts_; }
  void reset_peak() { counts_.peak = counts_.in_use; }

 private:
  struct Lent {
    size_t bytes = 0;
    void* stream = nullptr;
    std::vector<void*> other_streams;  // use_on streams, each once
  };
  struct Waiting {
    void* block = nullptr;
    size_t bytes = 0;
    void* stream = nullptr;
    std::vector<void*> events;
    bool until_take_all = false;  // an event could not be made
  };

  void collect();  // waiting blocks whose events have all fired -> their stream's list
  void cache(void* block, size_t bytes, void* stream) { free_[stream][bytes].push_back(block); }

  StreamEvents& events_;
  std::unordered_map<void*, std::unordered_map<size_t, std::vector<void*>>> free_;  // stream -> size -> blocks
  std::unordered_map<void*, Lent> lent_;
  std::vector<Waiting> waiting_;
  Counts counts_;
};

}  // namespace minipipe::cuda
