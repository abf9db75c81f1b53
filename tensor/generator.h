// The seeded random generator. Its numbers are the same on every machine and compiler: the bits
// come from xoshiro256** seeded by splitmix64, and normals from our own Box-Muller — never from
// std:: distributions, whose output is implementation-defined.
#pragma once

#include <cstdint>

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

// The process-wide default generator (used by factories and layers when none is passed).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace minipipe
