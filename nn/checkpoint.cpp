// safetensors reader and writer, and Module save/load on top of them. Loading validates the
// whole file and every name, shape and dtype before it copies anything into the module.
#include "nn/checkpoint.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "nn/atomic_file.h"

namespace minipipe::nn {

// The data is written and read as raw host-order bytes; safetensors is little-endian.
static_assert(std::endian::native == std::endian::little, "checkpoint I/O assumes a little-endian host");

namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the limit the safetensors library enforces
constexpr const char* kMetadataKey = "__metadata__";

const char* st_dtype(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
  }
  return "?";
}

std::string errno_str() { return std::strerror(errno); }

// ---- reading ----

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // byte range within the data section
};

// Parses one tensor's header entry; every defect names the file and the tensor.
Entry parse_entry(const std::string& path, const std::string& name, const json& v) {
  auto fail_if = [&](bool bad, const std::string& what) {
    MP_CHECK(!bad, "checkpoint ", path, " has a damaged header: tensor '", name, "' ", what);
  };
  fail_if(!v.is_object(), "is not described by a JSON object");
  fail_if(!v.contains("dtype") || !v["dtype"].is_string(), "has no \"dtype\" string");
  fail_if(!v.contains("shape") || !v["shape"].is_array(), "has no \"shape\" array");
  fail_if(!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2 ||
              !v["data_offsets"][0].is_number_unsigned() || !v["data_offsets"][1].is_number_unsigned(),
          "has no \"data_offsets\" pair of non-negative integers");
  Entry e{name, DType::Float32, {}, v["data_offsets"][0].get<uint64_t>(), v["data_offsets"][1].get<uint64_t>()};

  const std::string dt = v["dtype"].get<std::string>();
  if (dt == "F32") e.dtype = DType::Float32;
  else if (dt == "F64") e.dtype = DType::Float64;
  else if (dt == "I64") e.dtype = DType::Int64;
  else MP_CHECK(false, "checkpoint ", path, ": tensor '", name, "' has dtype ", dt,
                ", which minipipe does not support (F32, F64, I64)");

  uint64_t bytes = element_size(e.dtype);
  bool overflow = false;
  for (const json& d : v["shape"]) {
    fail_if(!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{INT64_MAX},
            "has a shape entry that is not a non-negative integer: " + d.dump());
    e.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    overflow |= __builtin_mul_overflow(bytes, d.get<uint64_t>(), &bytes);
  }
  fail_if(e.end < e.begin, "has reversed data_offsets [" + std::to_string(e.begin) + ", " +
                               std::to_string(e.end) + "]");
  fail_if(overflow || e.end - e.begin != bytes,
          "has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] (" +
              std::to_string(e.end - e.begin) + " bytes), but shape " + shape_str(e.shape) + " of " + dt +
              " needs " + (overflow ? std::string("more than 2^64") : std::to_string(bytes)) + " bytes");
  return e;
}

}  // namespace

void save_tensors(const TensorMap& tensors, const std::string& path, const Metadata& metadata) {
  json header = json::object();
  std::vector<Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    MP_CHECK(!name.empty() && name != kMetadataKey, "save: invalid tensor name '", name, "'");
    MP_CHECK(t.defined(), "save: tensor '", name, "' is undefined");
    data.push_back(ops::contiguous(t.to(Device::cpu())));  // a device tensor is copied to the host first
    const uint64_t n = t.nbytes();
    header[name] = {{"dtype", st_dtype(t.dtype())},
                    {"shape", t.sizes()},
                    {"data_offsets", json::array({offset, offset + n})}};
    offset += n;
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    MP_CHECK(false, "save: cannot encode the header of ", path, ": ", e.what());
  }
  // Pad with spaces (JSON whitespace) so the data starts 8-byte aligned, as safetensors does.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t len = text.size();

  AtomicFile out(path, "save");
  out.write(&len, 8);
  out.write(text.data(), text.size());
  for (const Tensor& t : data) out.write(t.raw_data(), t.nbytes());
  out.commit();
}

TensorMap load_tensors(const std::string& path, Metadata* metadata) {
  namespace fs = std::filesystem;
  std::error_code ec;
  MP_CHECK(fs::exists(path, ec), "checkpoint ", path, " does not exist");
  MP_CHECK(fs::is_regular_file(path, ec), "checkpoint ", path, " is not a regular file");
  const uint64_t size = fs::file_size(path, ec);
  MP_CHECK(!ec, "checkpoint ", path, ": cannot read its size: ", ec.message());
  std::ifstream in(path, std::ios::binary);
  MP_CHECK(in.good(), "cannot open checkpoint ", path, ": ", errno_str());

  MP_CHECK(size >= 8, "checkpoint ", path, " is truncated: ", size,
           " bytes, too short for the 8-byte header length");
  uint64_t len = 0;
  in.read(reinterpret_cast<char*>(&len), 8);
  MP_CHECK(in.good(), "checkpoint ", path, ": cannot read the header length");
  MP_CHECK(len <= size - 8, "checkpoint ", path, " is truncated or damaged: its header length (", len,
           " bytes) runs past the end of the file (", size, " bytes)");
  MP_CHECK(len <= kMaxHeaderBytes, "checkpoint ", path, " is damaged: header length ", len,
           " exceeds the ", kMaxHeaderBytes, "-byte limit");
  std::string text(len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(len));
  MP_CHECK(in.good(), "checkpoint ", path, ": cannot read its ", len, "-byte header");

  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    MP_CHECK(false, "checkpoint ", path, " has a damaged header: invalid JSON: ", e.what());
  }
  MP_CHECK(header.is_object(), "checkpoint ", path, " has a damaged header: expected a JSON object, got ",
           header.type_name());

  const uint64_t data_size = size - 8 - len;
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == kMetadataKey) {
      MP_CHECK(v.is_object(), "checkpoint ", path, " has a damaged header: ", kMetadataKey,
               " is not a JSON object");
      for (const auto& [k, s] : v.items()) {
        MP_CHECK(s.is_string(), "checkpoint ", path, " has a damaged header: ", kMetadataKey,
                 " entry '", k, "' is not a string");
        if (metadata) (*metadata)[k] = s.get<std::string>();
      }
      continue;
    }
    Entry e = parse_entry(path, name, v);
    MP_CHECK(e.end <= data_size, "checkpoint ", path, " is truncated or damaged: tensor '", name,
             "' has data_offsets [", e.begin, ", ", e.end, "] but the file holds only ", data_size,
             " bytes of data after the header");
    entries.push_back(std::move(e));
  }

  // The ranges must tile [0, data_size) exactly: no overlap, no hole, nothing after the last.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    MP_CHECK(e.begin >= at, "checkpoint ", path, " has a damaged header: the data of tensors '",
             prev->name, "' [", prev->begin, ", ", prev->end, "] and '", e.name, "' [", e.begin, ", ",
             e.end, "] overlap");
    MP_CHECK(e.begin == at, "checkpoint ", path, " has a damaged header: bytes [", at, ", ", e.begin,
             ") of the data belong to no tensor");
    at = e.end;
    prev = &e;
  }
  MP_CHECK(at == data_size, "checkpoint ", path, " is damaged: ", data_size - at,
           " bytes after the last tensor's data belong to no tensor");

  TensorMap out;
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    in.seekg(static_cast<std::streamoff>(8 + len + e.begin));
    in.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(e.end - e.begin));
    MP_CHECK(in.good(), "checkpoint ", path, ": cannot read the data of tensor '", e.name,
             "' (the file changed while being read?)");
    out.emplace(e.name, std::move(t));
  }
  return out;
}

namespace {
// What a module saves and loads: its parameters, then its defined buffers.
std::vector<std::pair<std::string, Tensor>> module_tensors(const Module& m) {
  auto out = m.named_parameters();
  for (auto& [name, t] : m.named_buffers())
    if (t.defined()) out.emplace_back(name, t);
  return out;
}
}  // namespace

void save(const Module& module, const std::string& path, Metadata metadata) {
  TensorMap tensors;
  for (auto& [name, t] : module_tensors(module)) tensors.emplace(name, t.detach());
  metadata.emplace("format", "pt");
  save_tensors(tensors, path, metadata);
}

void load(Module& module, const std::string& path) {
  TensorMap file = load_tensors(path);
  const auto want = module_tensors(module);

  std::vector<std::string> problems;
  std::set<std::string> known;
  for (const auto& [name, t] : want) {
    known.insert(name);
    auto it = file.find(name);
    if (it == file.end()) {
      problems.push_back("missing tensor '" + name + "' (" + dtype_name(t.dtype()) + " " +
                         shape_str(t.sizes()) + ")");
      continue;
    }
    const Tensor& got = it->second;
    if (got.dtype() != t.dtype())
      problems.push_back("tensor '" + name + "' has dtype " + dtype_name(got.dtype()) +
                         " in the file, the module expects " + dtype_name(t.dtype()));
    if (got.sizes() != t.sizes())
      problems.push_back("tensor '" + name + "' has shape " + shape_str(got.sizes()) +
                         " in the file, the module expects " + shape_str(t.sizes()));
  }
  for (const auto& [name, t] : file)
    if (!known.count(name))
      problems.push_back("unexpected tensor '" + name + "' (" + dtype_name(t.dtype()) + " " +
                         shape_str(t.sizes()) + "), which the module does not have");
  if (!problems.empty()) {
    constexpr size_t kShow = 8;
    std::string msg;
    for (size_t i = 0; i < std::min(problems.size(), kShow); ++i) msg += "\n  " + problems[i];
    if (problems.size() > kShow) msg += "\n  ... and " + std::to_string(problems.size() - kShow) + " more";
    MP_CHECK(false, "load: checkpoint ", path, " does not match the module (", module.type_name(),
             "); nothing was loaded:", msg);
  }

  // In place: optimizers hold these very handles.
  NoGradGuard no_grad;
  for (const auto& [name, t] : want) ops::copy_(t, file.at(name));
}

}  // namespace minipipe::nn
