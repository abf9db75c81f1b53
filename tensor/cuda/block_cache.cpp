// The caching device allocator's bookkeeping (block_cache.h): size classes, lent blocks, per-stream
// free lists, and blocks waiting for other streams. Built in every build (no CUDA here), so its
// tests run on machines without a GPU.
#include "tensor/cuda/block_cache.h"

#include <algorithm>
#include <bit>

#include "tensor/error.h"

namespace minipipe::cuda {

size_t device_size_class(size_t nbytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{1} << 20;
  if (nbytes <= kSmall) return kSmall;
  if (nbytes <= kLarge) return (nbytes + kSmall - 1) / kSmall * kSmall;
  // Four classes per power of two above 1 MiB: [2^k, 2^k * 1.25, 1.5, 1.75].
  const size_t top = std::bit_floor(nbytes), quarter = top / 4;
  return (nbytes + quarter - 1) / quarter * quarter;
}

BlockCache::~BlockCache() {
  for (Waiting& w : waiting_)
    for (void* e : w.events) events_.destroy(e);
}

void BlockCache::collect() {
  std::erase_if(waiting_, [&](Waiting& w) {
    if (w.until_take_all) return false;
    std::erase_if(w.events, [&](void* e) {
      if (!events_.done(e)) return false;
      events_.destroy(e);
      return true;
    });
    if (!w.events.empty()) return false;
    counts_.waiting -= static_cast<int64_t>(w.bytes);
    cache(w.block, w.bytes, w.stream);
    return true;
  });
}

void* BlockCache::take(void* stream, size_t bytes) {
  if (!waiting_.empty()) collect();
  auto s = free_.find(stream);
  if (s == free_.end()) return nullptr;
  auto list = s->second.find(bytes);
  if (list == s->second.end() || list->second.empty()) return nullptr;
  void* block = list->second.back();
  list->second.pop_back();
  counts_.cached -= static_cast<int64_t>(bytes);
  ++counts_.reuses;
  lend(block, bytes, stream);
  return block;
}

void BlockCache::lend(void* block, size_t bytes, void* stream) {
  const bool fresh = lent_.emplace(block, Lent{bytes, stream, {}}).second;
  MP_INTERNAL_ASSERT(fresh, "device allocator: block ", block, " is lent twice");
  counts_.in_use += static_cast<int64_t>(bytes);
  counts_.peak = std::max(counts_.peak, counts_.in_use);
}

void BlockCache::use_on(void* block, void* stream) {
  auto it = lent_.find(block);
  MP_INTERNAL_ASSERT(it != lent_.end(), "device allocator: use_on for block ", block, ", which is not lent");
  Lent& l = it->second;
  if (stream != l.stream && std::find(l.other_streams.begin(), l.other_streams.end(), stream) == l.other_streams.end())
    l.other_streams.push_back(stream);
}

void BlockCache::give_back(void* block) {
  auto it = lent_.find(block);
  MP_INTERNAL_ASSERT(it != lent_.end(), "device allocator: block ", block, " is given back but is not lent");
  const Lent l = std::move(it->second);
  lent_.erase(it);
  counts_.in_use -= static_cast<int64_t>(l.bytes);
  if (l.other_streams.empty()) {
    cache(block, l.bytes, l.stream);
    counts_.cached += static_cast<int64_t>(l.bytes);
    return;
  }
  Waiting w{block, l.bytes, l.stream, {}, false};
  for (void* s : l.other_streams) {
    void* e = events_.record(s);
    if (!e) {  // no telling when `s` is done with it: only once the whole device is
      for (void* made : w.events) events_.destroy(made);
      w.events.clear();
      w.until_take_all = true;
      break;
    }
    w.events.push_back(e);
  }
  counts_.cached += static_cast<int64_t>(l.bytes);
  counts_.waiting += static_cast<int64_t>(l.bytes);
  waiting_.push_back(std::move(w));
}

void BlockCache::retire_stream(void* old, void* into) {
  if (old == into) return;
  if (auto node = free_.extract(old); !node.empty())  // out first: free_[into] may rehash the map
    for (auto& [bytes, blocks] : node.mapped())
      for (void* b : blocks) cache(b, bytes, into);
  for (auto& [block, l] : lent_) {
    std::vector<void*>& others = l.other_streams;
    const bool used_on_old = std::erase(others, old) > 0;
    if (l.stream == old) {
      l.stream = into;
      std::erase(others, into);
    } else if (used_on_old && l.stream != into &&
               std::find(others.begin(), others.end(), into) == others.end()) {
      others.push_back(into);  // `into` runs after `old`: an event on it covers old's uses
    }
  }
  for (Waiting& w : waiting_)
    if (w.stream == old) w.stream = into;
}

std::vector<std::pair<void*, size_t>> BlockCache::take_all() {
  std::vector<std::pair<void*, size_t>> all;
  for (Waiting& w : waiting_) {
    for (void* e : w.events) events_.destroy(e);
    all.emplace_back(w.block, w.bytes);
  }
  waiting_.clear();
  for (auto& [stream, by_size] : free_)
    for (auto& [bytes, blocks] : by_size)
      for (void* b : blocks) all.emplace_back(b, bytes);
  free_.clear();
  counts_.cached = counts_.waiting = 0;
  return all;
}

}  // namespace minipipe::cuda
