// Reader for IDX files (the format of MNIST and Fashion-MNIST), gzipped or plain, and the
// Fashion-MNIST loader over Debian's `dataset-fashion-mnist` package. Fills an nn::Dataset
// (nn/data_loader.h) for the DataLoader; every damaged or missing file is an Error naming it.
#pragma once

#include <string>

#include "nn/data_loader.h"

namespace minipipe::nn {

// Where Debian's dataset-fashion-mnist package installs the four files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// Mean and standard deviation of the training images' pixels after scaling to [0, 1].
inline constexpr double kFashionMnistMean = 0.2860;
inline constexpr double kFashionMnistStd = 0.3530;

// An IDX image file (magic 0x00000803: unsigned bytes, dims [N, rows, cols]) -> float32
// [N, rows * cols], each pixel byte / 255 (computed in double, rounded once to float), so
// values lie in [0, 1]. Reads through zlib, so `path` may be gzipped or not.
Tensor read_idx_images(const std::string& path);

// An IDX label file (magic 0x00000801: unsigned bytes, dims [N]) -> int64 [N]. Every label must
// lie in [0, num_classes).
Tensor read_idx_labels(const std::string& path, int64_t num_classes = 10);

// In place: x = (x - mean) / std, each element computed in double and rounded once.
// x: contiguous float32 or float64.
void normalize_(const Tensor& x, double mean, double std);

// The training (60000) or test (10000) split from `dir`: inputs float32 [N, 784], targets int64
// [N] in [0, 10). Looks for `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`, then the same
// names without `.gz`. With `normalize`, inputs are (x - 0.2860) / 0.3530 (the training set's
// statistics, for both splits); without, they stay in [0, 1].
Dataset load_fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true,
                           bool normalize = true);

}  // namespace minipipe::nn
