// IDX reader over zlib (gzread also reads plain files), and the Fashion-MNIST loader.
// IDX layout: magic [0, 0, type, ndim] (type 0x08 = unsigned byte), ndim big-endian uint32
// sizes, then the values in row-major order. Sizes are checked before anything is allocated.
#include "nn/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "tensor/factory.h"

namespace minipipe::nn {

namespace {

struct GzClose {
  void operator()(gzFile_s* f) const { gzclose_r(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzClose>;

struct IdxData {
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;  // the values, row-major
};

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

class IdxReader {
 public:
  explicit IdxReader(const std::string& path) : path_(path) {
    std::error_code ec;  // when exists() cannot tell (e.g. no permission), gzopen's errno will
    MP_CHECK(std::filesystem::exists(path, ec) || ec, "IDX file ", path, " does not exist");
    MP_CHECK(!std::filesystem::is_directory(path, ec), "IDX file ", path, " is a directory");
    errno = 0;
    f_.reset(gzopen(path.c_str(), "rb"));
    MP_CHECK(f_ != nullptr, "cannot open IDX file ", path, ": ",
             errno != 0 ? std::strerror(errno) : "zlib could not allocate its state");
    gzbuffer(f_.get(), 1 << 18);
  }

  // Reads up to n bytes; fewer only at the end of the (decompressed) stream.
  size_t read(void* dst, size_t n) {
    size_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1 << 20));
      const int r = gzread(f_.get(), static_cast<char*>(dst) + got, chunk);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(f_.get(), &err);
        MP_CHECK(false, "IDX file ", path_, " is damaged: ",
                 err == Z_ERRNO ? std::strerror(errno) : msg, " (after ", offset_ + got, " bytes)");
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    offset_ += got;
    return got;
  }

  // "" or " (zlib: unexpected end of file)": why a gzip stream stopped early, if it knows.
  std::string zlib_note() {
    int err = Z_OK;
    const char* msg = gzerror(f_.get(), &err);
    return err == Z_OK ? "" : std::string(" (zlib: ") + msg + ")";
  }

  size_t offset() const { return offset_; }

 private:
  std::string path_;
  GzFile f_;
  size_t offset_ = 0;  // decompressed bytes read so far
};

// Reads a whole unsigned-byte IDX file with `ndim` dims; `what` names the data for messages.
IdxData read_idx(const std::string& path, uint32_t ndim, const char* what) {
  IdxReader in(path);
  uint8_t magic[4];
  const size_t got_magic = in.read(magic, 4);
  MP_CHECK(got_magic == 4, "IDX file ", path, " is truncated: expected a 4-byte magic number, got ",
           got_magic, " bytes", in.zlib_note());
  const uint32_t expect = 0x0800u | ndim;
  const uint32_t got = uint32_t{magic[0]} << 24 | uint32_t{magic[1]} << 16 | uint32_t{magic[2]} << 8 | magic[3];
  MP_CHECK(got == expect, "IDX file ", path, " has a bad magic number: expected ", hex32(expect),
           " (unsigned bytes, ", ndim, " dims: ", what, "), got ", hex32(got),
           got == (0x0800u | (ndim == 3 ? 1u : 3u)) ? " (an IDX file of the other kind: images and labels swapped?)" : "");

  IdxData out;
  uint64_t total = 1;
  constexpr uint64_t kMaxBytes = uint64_t{1} << 40;  // far beyond any real data set
  for (uint32_t d = 0; d < ndim; ++d) {
    uint8_t b[4];
    const size_t n = in.read(b, 4);
    MP_CHECK(n == 4, "IDX file ", path, " is truncated: expected a ", 4 + 4 * ndim,
             "-byte header, got ", in.offset(), " bytes", in.zlib_note());
    const uint64_t size = uint64_t{b[0]} << 24 | uint64_t{b[1]} << 16 | uint64_t{b[2]} << 8 | b[3];
    MP_CHECK(d == 0 || size > 0, "IDX file ", path, " has size 0 in dim ", d, " of its header");
    MP_CHECK(size == 0 || total <= kMaxBytes / size, "IDX file ", path,
             " has implausible sizes in its header (more than 2^40 bytes of ", what, ")");
    total *= size;
    out.dims.push_back(static_cast<int64_t>(size));
  }

  // Read in chunks so that a header claiming more than the file holds fails as "truncated"
  // after reading what is there, instead of allocating the claimed size first.
  constexpr size_t kChunk = size_t{1} << 22;
  while (out.bytes.size() < total) {
    const size_t have = out.bytes.size();
    const size_t want = std::min<uint64_t>(kChunk, total - have);
    out.bytes.resize(have + want);
    const size_t n = in.read(out.bytes.data() + have, want);
    out.bytes.resize(have + n);
    if (n < want) break;
  }
  std::string shape;
  for (size_t d = 0; d < out.dims.size(); ++d) shape += (d ? " x " : "") + std::to_string(out.dims[d]);
  MP_CHECK(out.bytes.size() == total, "IDX file ", path, " is truncated: expected ", total,
           " bytes of ", what, " (", shape, ") after the ", 4 + 4 * ndim, "-byte header, got ",
           out.bytes.size(), in.zlib_note());
  uint8_t extra;
  MP_CHECK(in.read(&extra, 1) == 0, "IDX file ", path, " has data past the ", total, " bytes of ",
           what, " (", shape, ") its header announces");
  return out;
}

std::string find_fashion_file(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path gz = fs::path(dir) / (name + ".gz"), plain = fs::path(dir) / name;
  std::error_code ec;
  if (fs::exists(gz, ec)) return gz.string();
  if (fs::exists(plain, ec)) return plain.string();
  MP_CHECK(false, "Fashion-MNIST file ", gz.string(), " not found (nor ", plain.string(),
           "): install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist),"
           " or point --data at a directory holding the IDX files");
  return {};
}

// Pixel byte -> float through a 256-entry table: b / 255 in [0, 1], then (if `normalize`)
// (x - mean) / std — the same roundings as read_idx_images followed by normalize_, in one pass.
Tensor read_images(const std::string& path, bool normalize, double mean, double std) {
  IdxData d = read_idx(path, 3, "images");
  float lut[256];
  for (int b = 0; b < 256; ++b) {
    lut[b] = static_cast<float>(b / 255.0);
    if (normalize) lut[b] = static_cast<float>((static_cast<double>(lut[b]) - mean) / std);
  }
  Tensor out = empty({d.dims[0], d.dims[1] * d.dims[2]}, DType::Float32);
  float* p = out.data_ptr<float>();
  for (size_t i = 0; i < d.bytes.size(); ++i) p[i] = lut[d.bytes[i]];
  return out;
}

}  // namespace

Tensor read_idx_images(const std::string& path) { return read_images(path, false, 0.0, 1.0); }

Tensor read_idx_labels(const std::string& path, int64_t num_classes) {
  MP_CHECK(num_classes > 0, "read_idx_labels: num_classes must be positive, got ", num_classes);
  IdxData d = read_idx(path, 1, "labels");
  Tensor out = empty({d.dims[0]}, DType::Int64);
  int64_t* p = out.data_ptr<int64_t>();
  for (size_t i = 0; i < d.bytes.size(); ++i) {
    MP_CHECK(d.bytes[i] < num_classes, "IDX file ", path, ": label ", int{d.bytes[i]}, " at index ",
             i, " is out of range [0, ", num_classes, ")");
    p[i] = d.bytes[i];
  }
  return out;
}

void normalize_(const Tensor& x, double mean, double std) {
  MP_CHECK(x.defined() && x.is_contiguous(), "normalize_: expected a defined, contiguous tensor");
  MP_CHECK(std > 0, "normalize_: std must be positive, got ", std);
  MP_DISPATCH_FLOAT(x.dtype(), "normalize_", [&] {
    scalar_t* p = x.data_ptr<scalar_t>();
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i)
      p[i] = static_cast<scalar_t>((static_cast<double>(p[i]) - mean) / std);
  });
}

Dataset load_fashion_mnist(const std::string& dir, bool train, bool normalize) {
  const std::string split = train ? "train" : "t10k";
  const std::string images_path = find_fashion_file(dir, split + "-images-idx3-ubyte");
  const std::string labels_path = find_fashion_file(dir, split + "-labels-idx1-ubyte");
  Dataset ds{read_images(images_path, normalize, kFashionMnistMean, kFashionMnistStd),
             read_idx_labels(labels_path, 10)};
  MP_CHECK(ds.inputs.size(0) == ds.targets.size(0), "Fashion-MNIST: ", images_path, " has ",
           ds.inputs.size(0), " images but ", labels_path, " has ", ds.targets.size(0), " labels");
  return ds;
}

}  // namespace minipipe::nn
