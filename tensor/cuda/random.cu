// CUDA dropout mask from the counter-based generator (tensor/philox.h, the same function the CPU
// runs), so a mask is the same bits on either device and recomputation under checkpointing
// replays it. CPU reference: tensor/cpu/random.cpp (counter_mask).
// Launch shape: one thread per Philox call (four mask elements), grid-stride over rows x ceil(n/4)
// blocks. Memory traffic: the mask written once; no reads.
#include <cstdint>

#include "tensor/cuda/kernels.h"
#include "tensor/cuda/launch.cuh"
#include "tensor/philox.h"

namespace minipipe::cuda {

namespace {

__global__ void dropout_mask_kernel(float* __restrict__ mask, int64_t rows, int64_t per_row, uint32_t k0, uint32_t k1,
                                    uint32_t step_lo, uint32_t step_hi, int64_t sample_offset, double p, float keep) {
  const int64_t blocks_per_row = (per_row + 3) / 4;
  MP_GRID_STRIDE(blk, rows * blocks_per_row) {
    const int64_t b = blk / blocks_per_row, j4 = blk - b * blocks_per_row;
    const PhiloxCounter w = philox4x32_10(
        {static_cast<uint32_t>(j4), static_cast<uint32_t>(sample_offset + b), step_lo, step_hi}, {k0, k1});
    float* row = mask + b * per_row;
    for (int i = 0; i < 4 && j4 * 4 + i < per_row; ++i)
      row[j4 * 4 + i] = static_cast<double>(w[i]) * 0x1.0p-32 < p ? 0.f : keep;  // as the CPU: compare in double
  }
}

}  // namespace

void launch_dropout_mask(float* mask, int64_t rows, int64_t per_row, uint64_t key, uint64_t step,
                         int64_t sample_offset, double p, float keep, cudaStream_t stream) {
  const int64_t total = rows * ((per_row + 3) / 4);
  if (total == 0) return;
  dropout_mask_kernel<<<grid_for(total), kThreads, 0, stream>>>(
      mask, rows, per_row, static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(step),
      static_cast<uint32_t>(step >> 32), sample_offset, p, keep);
  CUDA_LAUNCH_CHECK();
}

}  // namespace minipipe::cuda
