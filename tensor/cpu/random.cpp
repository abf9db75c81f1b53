// CPU random ops: the dropout mask, drawn sequentially from a Generator (one thread, row-major, so
// a seed fixes the mask whatever the thread count) or counter-based from a CounterKey (Philox; every
// element independent, so any thread count and any cut of the batch give the same mask).
#include <omp.h>

#include "tensor/cpu/loops.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"
#include "tensor/philox.h"

namespace minipipe::cpu {

namespace {

// Element j of row b gets word (j mod 4) of philox(counter = (j / 4, sample, step lo, step hi),
// key): four mask elements per Philox call, a uniform u = word / 2^32 in [0, 1), dropped if u < p.
template <typename T>
void counter_mask(T* m, int64_t rows, int64_t per_row, const CounterKey& key, double p, T keep) {
  MP_CHECK(key.sample_offset >= 0 && key.sample_offset + rows <= (int64_t{1} << 32) &&
               per_row <= (int64_t{1} << 34),
           "dropout: counter-based masks index samples and elements with 32-bit counters; got rows [",
           key.sample_offset, ", ", key.sample_offset + rows, ") of ", per_row, " elements");
  const PhiloxKey k = {static_cast<uint32_t>(key.key), static_cast<uint32_t>(key.key >> 32)};
  const uint32_t step_lo = static_cast<uint32_t>(key.step), step_hi = static_cast<uint32_t>(key.step >> 32);
  const int64_t blocks_per_row = (per_row + 3) / 4;
  const int64_t blocks = rows * blocks_per_row;
#pragma omp parallel for schedule(static) if (rows * per_row >= cpu::kParallelGrain && !omp_in_parallel())
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t b = blk / blocks_per_row, j4 = blk % blocks_per_row;
    const auto w = philox4x32_10(
        {static_cast<uint32_t>(j4), static_cast<uint32_t>(key.sample_offset + b), step_lo, step_hi}, k);
    T* row = m + b * per_row;
    for (int64_t i = 0; i < 4 && j4 * 4 + i < per_row; ++i)
      row[j4 * 4 + i] = static_cast<double>(w[static_cast<size_t>(i)]) * 0x1.0p-32 < p ? T(0) : keep;
  }
}

}  // namespace

Tensor dropout_mask(const Shape& shape, TensorOptions opts, double p, const RandomSource& src) {
  MP_CHECK(opts.device.is_cpu(), "dropout_mask: expected a CPU tensor, got ", opts.device.str());
  MP_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  Tensor mask = empty(shape, opts);
  const double keep_scale = 1.0 / (1.0 - p);
  MP_DISPATCH_FLOAT(opts.dtype, "dropout_mask", [&] {
    scalar_t* m = mask.data_ptr<scalar_t>();
    const int64_t n = mask.numel();
    if (src.is_counter()) {
      const int64_t rows = shape.empty() ? 1 : shape[0];
      if (n > 0) counter_mask(m, rows, n / rows, src.key(), p, static_cast<scalar_t>(keep_scale));
      return;
    }
    Generator& gen = src.generator();
    for (int64_t i = 0; i < n; ++i) m[i] = gen.uniform() < p ? scalar_t(0) : static_cast<scalar_t>(keep_scale);
  });
  return mask;
}

}  // namespace minipipe::cpu
