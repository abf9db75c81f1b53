// Tests for nn/idx.h and nn/data_loader.h: tiny IDX files written here (gzipped and plain) read
// back exactly, every damaged-file case as an Error naming the path, the DataLoader's order and
// batch sizes, and the real Fashion-MNIST when Debian's dataset-fashion-mnist is installed.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "nn/data_loader.h"
#include "nn/idx.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/temp_dir_test.h"

namespace {

namespace fs = std::filesystem;
using namespace minipipe;
using Bytes = std::vector<uint8_t>;

// An IDX file's bytes: magic, big-endian sizes, then the values.
Bytes idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const Bytes& values) {
  Bytes out;
  auto put32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
  };
  put32(magic);
  for (uint32_t d : dims) put32(d);
  out.insert(out.end(), values.begin(), values.end());
  return out;
}

void write_plain(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(f.good()) << path;
}

void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (!b.empty()) {
    ASSERT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// Runs f and expects a minipipe::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected a minipipe::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nlacks: " << p;
  }
}

constexpr uint32_t kImagesMagic = 0x00000803, kLabelsMagic = 0x00000801;
// 3 images of 2 x 3 pixels.
const Bytes kPixels = {0, 255, 51, 1, 2, 3, 128, 127, 254, 10, 20, 30, 200, 100, 50, 7, 8, 9};
const Bytes kLabels = {3, 0, 9};

std::vector<float> scaled(const Bytes& b) {
  std::vector<float> out;
  for (uint8_t v : b) out.push_back(static_cast<float>(v / 255.0));
  return out;
}

class DataFiles : public test_util::TempDirTest {
 protected:
  DataFiles() : TempDirTest("minipipe_test_data_") {}
};

// ---- IDX reader ----

TEST_F(DataFiles, ReadsImagesGzippedAndPlain) {
  const Bytes file = idx_bytes(kImagesMagic, {3, 2, 3}, kPixels);
  write_gz(path("images.gz"), file);
  write_plain(path("images"), file);
  for (const char* name : {"images.gz", "images"}) {
    Tensor x = nn::read_idx_images(path(name));
    EXPECT_EQ(x.sizes(), (Shape{3, 6})) << name;
    EXPECT_EQ(x.dtype(), DType::Float32);
    EXPECT_EQ(x.to_vector<float>(), scaled(kPixels)) << name;
  }
  Tensor x = nn::read_idx_images(path("images.gz"));
  EXPECT_EQ(x.to_vector<float>()[0], 0.0f);
  EXPECT_EQ(x.to_vector<float>()[1], 1.0f);
  EXPECT_EQ(x.to_vector<float>()[2], 0.2f);  // 51 / 255
}

TEST_F(DataFiles, ReadsLabelsGzippedAndPlain) {
  const Bytes file = idx_bytes(kLabelsMagic, {3}, kLabels);
  write_gz(path("labels.gz"), file);
  write_plain(path("labels"), file);
  for (const char* name : {"labels.gz", "labels"}) {
    Tensor y = nn::read_idx_labels(path(name));
    EXPECT_EQ(y.dtype(), DType::Int64);
    EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{3, 0, 9})) << name;
  }
}

TEST_F(DataFiles, EmptyFileOfZeroImages) {
  write_gz(path("images.gz"), idx_bytes(kImagesMagic, {0, 28, 28}, {}));
  EXPECT_EQ(nn::read_idx_images(path("images.gz")).sizes(), (Shape{0, 784}));
}

TEST_F(DataFiles, LoadsFashionMnistLayoutAndNormalises) {
  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes(kImagesMagic, {3, 2, 3}, kPixels));
  write_gz(path("train-labels-idx1-ubyte.gz"), idx_bytes(kLabelsMagic, {3}, kLabels));
  // The test split unpacked: found without the .gz suffix.
  write_plain(path("t10k-images-idx3-ubyte"), idx_bytes(kImagesMagic, {1, 2, 3}, Bytes(kPixels.begin(), kPixels.begin() + 6)));
  write_plain(path("t10k-labels-idx1-ubyte"), idx_bytes(kLabelsMagic, {1}, {7}));

  nn::Dataset raw = nn::load_fashion_mnist(dir_.string(), /*train=*/true, /*normalize=*/false);
  EXPECT_EQ(raw.size(), 3);
  EXPECT_EQ(raw.inputs.to_vector<float>(), scaled(kPixels));
  EXPECT_EQ(raw.targets.to_vector<int64_t>(), (std::vector<int64_t>{3, 0, 9}));

  nn::Dataset norm = nn::load_fashion_mnist(dir_.string(), true, true);
  std::vector<float> expect;
  for (float v : scaled(kPixels)) expect.push_back(static_cast<float>((double{v} - 0.2860) / 0.3530));
  EXPECT_EQ(norm.inputs.to_vector<float>(), expect);

  nn::Dataset test = nn::load_fashion_mnist(dir_.string(), /*train=*/false, false);
  EXPECT_EQ(test.inputs.sizes(), (Shape{1, 6}));
  EXPECT_EQ(test.targets.to_vector<int64_t>(), (std::vector<int64_t>{7}));
}

TEST_F(DataFiles, NormalizeInPlaceFloat64) {
  Tensor x = from_vector(std::vector<double>{0.0, 0.5, 1.0});
  nn::normalize_(x, 0.5, 0.25);
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{-2.0, 0.0, 2.0}));
  expect_error([&] { nn::normalize_(x, 0.0, 0.0); }, {"std must be positive"});
  expect_error([&] { nn::normalize_(from_vector(std::vector<int64_t>{1}), 0.0, 1.0); }, {"normalize_", "int64"});
}

// ---- damaged and missing files: an Error naming the path, never a crash ----

TEST_F(DataFiles, MissingFileNamesPathAndPackage) {
  expect_error([&] { nn::read_idx_images(path("nope.gz")); }, {path("nope.gz"), "does not exist"});
  expect_error([&] { nn::read_idx_labels(dir_.string()); }, {dir_.string(), "is a directory"});
  expect_error([&] { nn::load_fashion_mnist(dir_.string()); },
               {path("train-images-idx3-ubyte.gz"), "dataset-fashion-mnist", "--data"});
  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes(kImagesMagic, {3, 2, 3}, kPixels));
  expect_error([&] { nn::load_fashion_mnist(dir_.string()); },
               {path("train-labels-idx1-ubyte.gz"), "dataset-fashion-mnist"});
}

TEST_F(DataFiles, BadMagicNumber) {
  write_gz(path("labels.gz"), idx_bytes(kLabelsMagic, {3}, kLabels));
  expect_error([&] { nn::read_idx_images(path("labels.gz")); },
               {path("labels.gz"), "bad magic number", "expected 0x00000803", "got 0x00000801", "swapped"});
  write_plain(path("junk"), idx_bytes(0x12345678, {3}, kLabels));
  expect_error([&] { nn::read_idx_labels(path("junk")); },
               {path("junk"), "expected 0x00000801", "got 0x12345678"});
}

TEST_F(DataFiles, TruncatedFiles) {
  const Bytes full = idx_bytes(kImagesMagic, {3, 2, 3}, kPixels);  // 16-byte header + 18 bytes
  struct Case {
    size_t keep;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {0, {"truncated", "4-byte magic number", "got 0 bytes"}},
      {3, {"truncated", "4-byte magic number", "got 3 bytes"}},
      {9, {"truncated", "16-byte header", "got 9 bytes"}},
      {16, {"truncated", "expected 18 bytes of images (3 x 2 x 3)", "got 0"}},
      {26, {"truncated", "expected 18 bytes", "got 10"}},
      {33, {"truncated", "expected 18 bytes", "got 17"}},
  };
  for (const Case& c : cases) {
    const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(c.keep));
    write_plain(path("plain"), cut);
    write_gz(path("packed.gz"), cut);
    for (const char* name : {"plain", "packed.gz"}) {
      SCOPED_TRACE(std::string(name) + " cut at " + std::to_string(c.keep));
      std::vector<std::string> parts = c.parts;
      parts.push_back(path(name));
      expect_error([&] { nn::read_idx_images(path(name)); }, parts);
    }
  }
  // Labels: header says 5, file holds 3.
  write_gz(path("labels.gz"), idx_bytes(kLabelsMagic, {5}, kLabels));
  expect_error([&] { nn::read_idx_labels(path("labels.gz")); },
               {path("labels.gz"), "truncated", "expected 5 bytes of labels", "got 3"});
}

TEST_F(DataFiles, DamagedGzipStream) {
  Bytes values(4000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<uint8_t>(i * 7 % 10);
  write_gz(path("ok.gz"), idx_bytes(kLabelsMagic, {4000}, values));
  const Bytes gz = read_file(path("ok.gz"));
  ASSERT_GT(gz.size(), 40u);

  // The compressed stream cut short: zlib stops early, and the reader says so.
  write_plain(path("cut.gz"), Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
  expect_error([&] { nn::read_idx_labels(path("cut.gz")); }, {path("cut.gz"), "truncated"});

  // A flipped byte in the CRC trailer: zlib reports a data-check failure.
  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0xff;
  write_plain(path("crc.gz"), bad_crc);
  expect_error([&] { nn::read_idx_labels(path("crc.gz")); }, {path("crc.gz"), "damaged"});

  // Garbage in the middle of the deflate data: an Error naming the file, whatever zlib makes of it.
  Bytes garbage = gz;
  for (size_t i = 12; i < gz.size() - 8; i += 3) garbage[i] ^= 0x5a;
  write_plain(path("garbage.gz"), garbage);
  expect_error([&] { nn::read_idx_labels(path("garbage.gz")); }, {path("garbage.gz")});
}

TEST_F(DataFiles, TrailingDataAndBadSizes) {
  Bytes extra = idx_bytes(kLabelsMagic, {3}, kLabels);
  extra.push_back(1);
  write_gz(path("extra.gz"), extra);
  expect_error([&] { nn::read_idx_labels(path("extra.gz")); }, {path("extra.gz"), "data past the 3 bytes"});

  write_gz(path("zero.gz"), idx_bytes(kImagesMagic, {3, 0, 3}, {}));
  expect_error([&] { nn::read_idx_images(path("zero.gz")); }, {path("zero.gz"), "size 0 in dim 1"});

  // A header claiming ~2^96 bytes fails on its sizes, before allocating anything.
  write_gz(path("huge.gz"), idx_bytes(kImagesMagic, {0xffffffff, 0xffffffff, 0xffffffff}, kPixels));
  expect_error([&] { nn::read_idx_images(path("huge.gz")); }, {path("huge.gz"), "implausible sizes"});
  // One claiming 2^32 images of 1x1: read what is there, then report the shortfall.
  write_gz(path("big.gz"), idx_bytes(kImagesMagic, {0xffffffff, 1, 1}, kPixels));
  expect_error([&] { nn::read_idx_images(path("big.gz")); },
               {path("big.gz"), "truncated", "expected 4294967295 bytes", "got 18"});
}

TEST_F(DataFiles, LabelOutOfRangeAndCountMismatch) {
  write_gz(path("labels.gz"), idx_bytes(kLabelsMagic, {4}, {1, 2, 10, 3}));
  expect_error([&] { nn::read_idx_labels(path("labels.gz")); },
               {path("labels.gz"), "label 10 at index 2", "out of range [0, 10)"});
  EXPECT_EQ(nn::read_idx_labels(path("labels.gz"), 11).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 10, 3}));

  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes(kImagesMagic, {3, 2, 3}, kPixels));
  write_gz(path("train-labels-idx1-ubyte.gz"), idx_bytes(kLabelsMagic, {2}, {1, 2}));
  expect_error([&] { nn::load_fashion_mnist(dir_.string()); },
               {path("train-images-idx3-ubyte.gz"), "has 3 images", path("train-labels-idx1-ubyte.gz"), "has 2 labels"});
}

// ---- the real data set ----

TEST(FashionMnist, InstalledDataSet) {
  if (!fs::exists(nn::kFashionMnistDir)) GTEST_SKIP() << nn::kFashionMnistDir << " absent: apt-get install dataset-fashion-mnist";
  nn::Dataset train = nn::load_fashion_mnist(nn::kFashionMnistDir, true, /*normalize=*/false);
  nn::Dataset test = nn::load_fashion_mnist(nn::kFashionMnistDir, false, false);
  EXPECT_EQ(train.inputs.sizes(), (Shape{60000, 784}));
  EXPECT_EQ(train.targets.sizes(), (Shape{60000}));
  EXPECT_EQ(test.inputs.sizes(), (Shape{10000, 784}));
  EXPECT_EQ(test.targets.sizes(), (Shape{10000}));
  auto first = [](const Tensor& y) {
    std::vector<int64_t> v = y.to_vector<int64_t>();
    return std::vector<int64_t>(v.begin(), v.begin() + 10);
  };
  EXPECT_EQ(first(train.targets), (std::vector<int64_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  EXPECT_EQ(first(test.targets), (std::vector<int64_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));

  // The first training image's pixel bytes sum to 76247; the constants are the set's statistics.
  const float* p = train.inputs.data_ptr<float>();
  int64_t byte_sum = 0;
  for (int i = 0; i < 784; ++i) byte_sum += std::lround(p[i] * 255.0);
  EXPECT_EQ(byte_sum, 76247);
  double sum = 0, sum_sq = 0;
  const int64_t n = train.inputs.numel();
  for (int64_t i = 0; i < n; ++i) sum += p[i], sum_sq += double{p[i]} * p[i];
  const double mean = sum / n, std = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_NEAR(mean, nn::kFashionMnistMean, 1e-4);
  EXPECT_NEAR(std, nn::kFashionMnistStd, 1e-4);
}

// ---- DataLoader ----

// N examples: input row i = {i, 100 + i}, target i.
nn::Dataset counting_dataset(int64_t n) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(static_cast<float>(100 + i));
    y.push_back(i);
  }
  return {from_vector(x, {n, 2}), from_vector(y)};
}

// One epoch: the batches' indices, after checking each batch holds exactly those rows.
std::vector<std::vector<int64_t>> run_epoch(nn::DataLoader& loader, int64_t epoch) {
  loader.reset(epoch);
  std::vector<std::vector<int64_t>> out;
  while (auto b = loader.next()) {
    EXPECT_EQ(b->index, static_cast<int64_t>(out.size()));
    EXPECT_EQ(b->inputs.sizes(), (Shape{b->size(), 2}));
    EXPECT_TRUE(b->inputs.is_contiguous());
    EXPECT_FALSE(b->inputs.shares_storage(loader.dataset().inputs));
    std::vector<float> rows;
    for (int64_t i : b->indices) rows.insert(rows.end(), {static_cast<float>(i), static_cast<float>(100 + i)});
    EXPECT_EQ(b->inputs.to_vector<float>(), rows);
    EXPECT_EQ(b->targets.to_vector<int64_t>(), b->indices);
    out.push_back(b->indices);
  }
  EXPECT_FALSE(loader.next().has_value());  // stays finished until reset
  return out;
}

std::vector<int64_t> flat(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(DataLoader, EveryIndexOncePerEpochWithPartialLastBatch) {
  nn::DataLoader loader(counting_dataset(10), nn::DataLoaderOptions(4).seed(7));
  EXPECT_EQ(loader.num_batches(), 3);
  EXPECT_EQ(loader.num_samples(), 10);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    auto batches = run_epoch(loader, epoch);
    ASSERT_EQ(batches.size(), 3u);
    EXPECT_EQ(batches[0].size(), 4u);
    EXPECT_EQ(batches[1].size(), 4u);
    EXPECT_EQ(batches[2].size(), 2u);
    std::vector<int64_t> all = flat(batches);
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  }
}

TEST(DataLoader, OrderDependsOnlyOnSeedAndEpoch) {
  nn::DataLoader a(counting_dataset(10), nn::DataLoaderOptions(4).seed(7));
  nn::DataLoader b(counting_dataset(10), nn::DataLoaderOptions(3).seed(7));
  nn::DataLoader other_seed(counting_dataset(10), nn::DataLoaderOptions(4).seed(8));
  const std::vector<int64_t> e0 = flat(run_epoch(a, 0)), e1 = flat(run_epoch(a, 1));
  EXPECT_NE(e0, e1);
  EXPECT_EQ(flat(run_epoch(a, 0)), e0);  // back to epoch 0: the same order again
  EXPECT_EQ(flat(run_epoch(b, 1)), e1);  // the batch size cuts the order, it doesn't change it
  EXPECT_NE(flat(run_epoch(other_seed, 0)), e0);
  // Pinned: the generator is ours, so this order is the same on every machine and compiler.
  EXPECT_EQ(e0, (std::vector<int64_t>{6, 8, 0, 5, 3, 9, 2, 4, 1, 7}));
  EXPECT_EQ(a.order(), e0);  // the current epoch's permutation
}

TEST(DataLoader, LeavesTheDefaultGeneratorAlone) {
  Generator before = default_generator();
  nn::DataLoader loader(counting_dataset(10), nn::DataLoaderOptions(4).seed(1));
  run_epoch(loader, 5);
  EXPECT_EQ(default_generator().next_u64(), before.next_u64());
}

TEST(DataLoader, DropLast) {
  nn::DataLoader loader(counting_dataset(10), nn::DataLoaderOptions(4).seed(7).drop_last(true));
  EXPECT_EQ(loader.num_batches(), 2);
  EXPECT_EQ(loader.num_samples(), 8);
  auto batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 2u);
  std::vector<int64_t> all = flat(batches);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 8u);
  // The kept 8 are the first 8 of the same epoch's order without drop_last.
  nn::DataLoader keep(counting_dataset(10), nn::DataLoaderOptions(4).seed(7));
  std::vector<int64_t> full = flat(run_epoch(keep, 0));
  EXPECT_EQ(all, std::vector<int64_t>(full.begin(), full.begin() + 8));

  // Batch size dividing N: no partial batch either way.
  nn::DataLoader even(counting_dataset(8), nn::DataLoaderOptions(4));
  EXPECT_EQ(even.num_batches(), 2);
  // Fewer examples than one batch: one partial batch, or none with drop_last.
  nn::DataLoader small(counting_dataset(3), nn::DataLoaderOptions(4));
  EXPECT_EQ(run_epoch(small, 0).size(), 1u);
  nn::DataLoader none(counting_dataset(3), nn::DataLoaderOptions(4).drop_last(true));
  EXPECT_EQ(none.num_batches(), 0);
  EXPECT_TRUE(run_epoch(none, 0).empty());
}

TEST(DataLoader, NoShuffleKeepsOrderAndMultiDimInputs) {
  nn::DataLoader loader(counting_dataset(5), nn::DataLoaderOptions(2).shuffle(false));
  EXPECT_EQ(run_epoch(loader, 3), (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4}}));

  nn::Dataset images{arange(0, 24, 1, DType::Float32), arange(6, DType::Int64)};
  images.inputs = ops::reshape(images.inputs, {6, 2, 2});
  nn::DataLoader il(images, nn::DataLoaderOptions(4).shuffle(false));
  auto b = il.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->inputs.sizes(), (Shape{4, 2, 2}));
  b = il.next();
  EXPECT_EQ(b->inputs.to_vector<float>(), (std::vector<float>{16, 17, 18, 19, 20, 21, 22, 23}));
  EXPECT_EQ(b->targets.to_vector<int64_t>(), (std::vector<int64_t>{4, 5}));
}

TEST(DataLoader, BadArguments) {
  nn::Dataset ds = counting_dataset(4);
  ds.targets = from_vector(std::vector<int64_t>{0, 1, 2});
  expect_error([&] { nn::DataLoader(ds, 2); }, {"4 inputs", "3 targets"});
  expect_error([&] { nn::DataLoader(counting_dataset(4), 0); }, {"batch size must be positive, got 0"});
  expect_error([&] { nn::DataLoader(nn::Dataset{}, 2); }, {"must both be defined"});
  nn::DataLoader ok(counting_dataset(4), 2);
  expect_error([&] { ok.reset(-1); }, {"epoch must be >= 0, got -1"});
}

}  // namespace
