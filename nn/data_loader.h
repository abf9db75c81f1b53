// nn::Dataset and nn::DataLoader: mini-batches over in-memory examples, with seeded shuffling
// that depends only on (seed, epoch), so every run sees the same batches in the same order.
// Sits in nn/ next to the IDX reader (nn/idx.h) that fills a Dataset from Fashion-MNIST.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace minipipe::nn {

// Examples stacked along dim 0: inputs [N, ...] (e.g. [N, 784] float32), targets [N] (int64).
struct Dataset {
  Tensor inputs;
  Tensor targets;
  int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
};

// Builder-style options, as libtorch's DataLoaderOptions: DataLoaderOptions(128).seed(7).
struct DataLoaderOptions {
  explicit DataLoaderOptions(int64_t batch_size = 1) : batch_size_(batch_size) {}
  DataLoaderOptions& shuffle(bool s) { shuffle_ = s; return *this; }
  DataLoaderOptions& seed(uint64_t s) { seed_ = s; return *this; }
  // true: drop the last batch when it is smaller than batch_size; false: return it.
  DataLoaderOptions& drop_last(bool d) { drop_last_ = d; return *this; }
  int64_t batch_size_;
  bool shuffle_ = true;
  uint64_t seed_ = 0;
  bool drop_last_ = false;
};

// Usage:
//   nn::DataLoader loader(train, nn::DataLoaderOptions(128).seed(42));
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.reset(epoch);
//     while (auto batch = loader.next()) { ... batch->inputs, batch->targets ... }
//   }
// Epoch e's order is a Fisher–Yates shuffle drawn from a Generator seeded with (seed, e) — the
// loader's own generator, so it neither uses nor disturbs the default one.
class DataLoader {
 public:
  // One mini-batch: contiguous copies of the selected rows. `index` counts batches from 0 in
  // the epoch; `indices` are the dataset rows it holds, in order. (Nested: nn::Batch is the
  // text sampler's, nn/text_data.h.)
  struct Batch {
    Tensor inputs;   // [B, ...]
    Tensor targets;  // [B]
    int64_t index = 0;
    std::vector<int64_t> indices;
    int64_t size() const { return static_cast<int64_t>(indices.size()); }
  };

  DataLoader(Dataset data, DataLoaderOptions opts);
  DataLoader(Dataset data, int64_t batch_size) : DataLoader(std::move(data), DataLoaderOptions(batch_size)) {}

  // Starts epoch `epoch` (>= 0): draws its order and rewinds to the first batch. The
  // constructor calls reset(0).
  void reset(int64_t epoch = 0);
  // The next batch of the current epoch, or nullopt when the epoch is over.
  std::optional<Batch> next();

  int64_t num_batches() const;  // per epoch: ceil(N / B), or floor(N / B) with drop_last
  int64_t num_samples() const;  // per epoch: N, or B * floor(N / B) with drop_last
  int64_t epoch() const { return epoch_; }
  const std::vector<int64_t>& order() const { return order_; }  // this epoch's permutation
  const Dataset& dataset() const { return data_; }
  const DataLoaderOptions& options() const { return opts_; }

 private:
  Dataset data_;
  DataLoaderOptions opts_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0;
  int64_t pos_ = 0;  // next position in order_
  int64_t batch_ = 0;
};

}  // namespace minipipe::nn
