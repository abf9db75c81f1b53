// Random numbers, two kinds. Generator: the seeded sequential generator (initialisation, data
// shuffling, sampling); its numbers are the same on every machine and compiler: the bits come from
// xoshiro256** seeded by splitmix64, and normals from our own Box-Muller — never from std::
// distributions, whose output is implementation-defined. CounterKey: counter-based numbers
// (Philox, tensor/philox.h) for dropout, which must not depend on how a batch is cut into
// micro-batches or on what ran before. RandomContext ties both to one rank or pipeline chunk.
#pragma once

#include <cstdint>
#include <string_view>

namespace minipipe {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  uint64_t seed() const { return seed_; }
  uint64_t next_u64();
  double uniform();  // [0, 1), 53 random bits
  double normal();   // standard normal
  uint64_t below(uint64_t n);  // uniform integer in [0, n), unbiased; n = 0 is an Error

 private:
  uint64_t seed_ = 0;
  uint64_t s_[4] = {};
  bool has_spare_ = false;
  double spare_ = 0;
};

// The process-wide default generator (used by factories, and by layers bound to no RandomContext).
Generator& default_generator();
void manual_seed(uint64_t seed);

// Where a counter-based random op's numbers come from. The number for element j of row b (dim 0 is
// the batch) is a function of (key, step, sample_offset + b, j) only: cut the batch into micro-batches
// with the right offsets, or recompute the op later, and every element gets the same number.
struct CounterKey {
  uint64_t key = 0;           // the seed mixed with the site (which dropout of which layer)
  uint64_t step = 0;          // the training step: fresh numbers every step
  int64_t sample_offset = 0;  // the global index of row 0 of the tensor being masked
};

// What a random op draws from: a sequential Generator (null: the default one), or a CounterKey.
// Implicit from either, so `dropout(x, p, true, &gen)` and `dropout(x, p, true, key)` both read well.
class RandomSource {
 public:
  RandomSource() = default;  // the default generator
  RandomSource(Generator* gen) : gen_(gen) {}  // NOLINT(google-explicit-constructor)
  RandomSource(const CounterKey& key) : counter_(true), key_(key) {}  // NOLINT(google-explicit-constructor)
  bool is_counter() const { return counter_; }
  const CounterKey& key() const { return key_; }
  Generator& generator() const { return gen_ ? *gen_ : default_generator(); }

 private:
  Generator* gen_ = nullptr;
  bool counter_ = false;
  CounterKey key_;
};

// The random state of one rank, or of one pipeline chunk when a rank holds several: never shared
// between ranks, so threads-as-ranks cannot trample each other. Layers bound to it
// (nn::Module::set_random_context) draw dropout masks keyed by (seed, their site, step,
// sample_offset); the executor sets `step` and `sample_offset` before each micro-batch, so a
// pipelined step draws exactly the masks of the single-device step. `generator` is for layers that
// need sequential numbers; the executor snapshots and restores it around recomputation.
struct RandomContext {
  explicit RandomContext(uint64_t seed_ = 0) : seed(seed_), generator(seed_) {}
  uint64_t seed;
  uint64_t step = 0;
  int64_t sample_offset = 0;
  Generator generator;
  // The counter key of dropout site `site` (a module path plus a local name, e.g. "3.attn#resid").
  CounterKey key(std::string_view site) const;
};

// 64-bit mixing (splitmix64's finaliser) and a string hash (FNV-1a): how seeds and site names
// become counter keys.
uint64_t mix64(uint64_t x);
uint64_t hash64(std::string_view s);

}  // namespace minipipe
