// Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC'11): a counter-based generator. Its output is a pure function of a 128-bit counter and a
// 64-bit key — no state — so the number at any position can be computed on its own, on any thread
// or device. minipipe's dropout masks use it (tensor/cpu/random.cpp): a mask element depends only on
// (seed, dropout site, step, sample, element), never on how many numbers were drawn before it.
#pragma once

#include <array>
#include <cstdint>

// The generator also runs inside CUDA kernels (tensor/cuda/random.cu): the same bits on both devices.
#ifdef __CUDACC__
#define MP_HOST_DEVICE __host__ __device__
#else
#define MP_HOST_DEVICE
#endif

namespace minipipe {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// Ten rounds of: two 32x32 -> 64-bit products, a Feistel-like swap with XORs, key bumped by the
// Weyl constants (golden ratio, sqrt(3) - 1). Checked against Random123's known-answer vectors.
MP_HOST_DEVICE inline PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kW0;
      k[1] += kW1;
    }
    const uint64_t p0 = uint64_t{kM0} * c[0], p1 = uint64_t{kM1} * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  return c;
}

}  // namespace minipipe
