// DataLoader: seeded Fisher–Yates order per epoch, batches gathered with ops::index_select.
#include "nn/data_loader.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "tensor/factory.h"
#include "tensor/generator.h"
#include "tensor/ops.h"

namespace minipipe::nn {

namespace {
// One 64-bit seed from (seed, epoch): the splitmix64 finaliser over seed and a scrambled epoch,
// so neighbouring epochs (and seeds) give unrelated streams.
uint64_t epoch_seed(uint64_t seed, uint64_t epoch) {
  uint64_t z = seed ^ ((epoch + 1) * 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

DataLoader::DataLoader(Dataset data, DataLoaderOptions opts) : data_(std::move(data)), opts_(opts) {
  MP_CHECK(data_.inputs.defined() && data_.targets.defined(),
           "DataLoader: the dataset's inputs and targets must both be defined");
  MP_CHECK(data_.inputs.dim() >= 1, "DataLoader: inputs must have a batch dimension, got shape ",
           shape_str(data_.inputs.sizes()));
  MP_CHECK(data_.targets.dim() >= 1, "DataLoader: targets must have a batch dimension, got shape ",
           shape_str(data_.targets.sizes()));
  MP_CHECK(data_.inputs.size(0) == data_.targets.size(0), "DataLoader: the dataset has ",
           data_.inputs.size(0), " inputs (shape ", shape_str(data_.inputs.sizes()), ") but ",
           data_.targets.size(0), " targets (shape ", shape_str(data_.targets.sizes()), ")");
  MP_CHECK(opts_.batch_size_ > 0, "DataLoader: batch size must be positive, got ", opts_.batch_size_);
  reset(0);
}

void DataLoader::reset(int64_t epoch) {
  MP_CHECK(epoch >= 0, "DataLoader::reset: epoch must be >= 0, got ", epoch);
  epoch_ = epoch;
  pos_ = 0;
  batch_ = 0;
  order_.resize(static_cast<size_t>(data_.size()));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (!opts_.shuffle_) return;
  // Fisher–Yates: position i takes a uniformly chosen element from [0, i].
  Generator gen(epoch_seed(opts_.seed_, static_cast<uint64_t>(epoch)));
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[gen.below(i)]);
}

int64_t DataLoader::num_samples() const {
  const int64_t n = data_.size();
  return opts_.drop_last_ ? n / opts_.batch_size_ * opts_.batch_size_ : n;
}

int64_t DataLoader::num_batches() const {
  const int64_t n = data_.size(), b = opts_.batch_size_;
  return opts_.drop_last_ ? n / b : (n + b - 1) / b;
}

std::optional<DataLoader::Batch> DataLoader::next() {
  const int64_t end = num_samples();
  if (pos_ >= end) return std::nullopt;
  const int64_t count = std::min(opts_.batch_size_, end - pos_);
  Batch b;
  b.index = batch_++;
  b.indices.assign(order_.begin() + pos_, order_.begin() + pos_ + count);
  pos_ += count;
  Tensor idx = from_vector(b.indices);
  b.inputs = ops::index_select(data_.inputs, 0, idx);
  b.targets = ops::index_select(data_.targets, 0, idx);
  return b;
}

}  // namespace minipipe::nn
