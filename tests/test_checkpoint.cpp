// Tests for nn/checkpoint.h: bit-exact round trips of an MLP (float32, float64), the file read
// back by hand as safetensors, and every damaged-file case — each an Error naming the tensor or
// the problem, with the module's parameters left exactly as they were.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <thread>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/nn.h"
#include "tests/hammer.h"
#include "tests/temp_dir_test.h"

namespace {

namespace fs = std::filesystem;
using namespace minipipe;
using nlohmann::json;
using Bytes = std::vector<char>;

// 4 -> hidden -> 3: parameters 0.weight [hidden, 4], 0.bias [hidden], 2.weight [3, hidden], 2.bias [3].
std::shared_ptr<nn::Sequential> mlp(DType dt, uint64_t seed, int64_t hidden = 8) {
  Generator g(seed);
  return std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(nn::LinearOptions(4, hidden).dtype(dt).generator(&g)),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(nn::LinearOptions(hidden, 3).dtype(dt).generator(&g))});
}

// Every parameter's name and raw bytes: equal snapshots mean bit-identical parameters.
std::vector<std::pair<std::string, Bytes>> snapshot(const nn::Module& m) {
  std::vector<std::pair<std::string, Bytes>> out;
  for (const auto& [name, t] : m.named_parameters()) {
    const char* p = static_cast<const char*>(t.raw_data());
    out.emplace_back(name, Bytes(p, p + t.nbytes()));
  }
  return out;
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A safetensors file split by hand: header length, JSON header, data.
struct Parsed {
  uint64_t len;
  json header;
  Bytes data;
};

Parsed parse_file(const Bytes& b) {
  Parsed p;
  std::memcpy(&p.len, b.data(), 8);
  p.header = json::parse(std::string(b.data() + 8, p.len));
  p.data.assign(b.begin() + 8 + static_cast<std::ptrdiff_t>(p.len), b.end());
  return p;
}

// Header text (padded to 8 bytes, as a writer would) plus data.
Bytes assemble(const std::string& header_text, const Bytes& data) {
  std::string h = header_text;
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t len = h.size();
  Bytes out(8 + h.size() + data.size());
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, h.data(), h.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + h.size(), data.data(), data.size());
  return out;
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

class Checkpoint : public test_util::TempDirTest {
 protected:
  Checkpoint() : TempDirTest("minipipe_test_ckpt_") {}

  // A valid checkpoint of mlp(Float32, 1) at path("good.safetensors"), as bytes.
  Bytes good_file() {
    nn::save(*mlp(DType::Float32, 1), path("good.safetensors"));
    return read_file(path("good.safetensors"));
  }

  // Loading `bytes` into a fresh float32 MLP fails with all of `parts` (and the path) in the
  // message, and leaves every parameter bit-identical.
  void expect_load_fails(const Bytes& bytes, std::vector<std::string> parts) {
    const std::string p = path("bad.safetensors");
    write_file(p, bytes);
    auto m = mlp(DType::Float32, 99);
    const auto before = snapshot(*m);
    parts.push_back(p);
    expect_error([&] { nn::load(*m, p); }, parts);
    EXPECT_EQ(snapshot(*m), before) << "the module changed although loading failed";
  }

};

// ---- round trips ----

TEST_F(Checkpoint, RoundTripIsBitExactAndInPlace) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dt));
    auto a = mlp(dt, 1), b = mlp(dt, 2);
    ASSERT_NE(snapshot(*a), snapshot(*b));
    nn::save(*a, path("mlp.safetensors"));
    const std::vector<Tensor> handles = b->parameters();
    nn::load(*b, path("mlp.safetensors"));
    EXPECT_EQ(snapshot(*b), snapshot(*a));
    // The same tensor objects, still trainable leaves: an optimizer's handles stay valid.
    const std::vector<Tensor> after = b->parameters();
    ASSERT_EQ(after.size(), handles.size());
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_TRUE(after[i].is_same(handles[i]));
      EXPECT_TRUE(after[i].requires_grad());
      EXPECT_TRUE(after[i].is_leaf());
    }
    Tensor x = randn({5, 4}, dt);
    const Tensor ya = a->forward(x), yb = b->forward(x);
    EXPECT_EQ(std::memcmp(ya.raw_data(), yb.raw_data(), ya.nbytes()), 0);
  }
}

TEST_F(Checkpoint, HeaderIsSafetensors) {
  auto m = mlp(DType::Float32, 1);
  nn::save(*m, path("mlp.safetensors"), {{"epoch", "3"}});
  const Bytes file = read_file(path("mlp.safetensors"));
  const Parsed p = parse_file(file);
  EXPECT_EQ(p.len % 8, 0u);  // data 8-byte aligned
  EXPECT_EQ(p.header["__metadata__"], (json{{"format", "pt"}, {"epoch", "3"}}));

  const std::vector<std::pair<std::string, std::vector<int64_t>>> expect = {
      {"0.weight", {8, 4}}, {"0.bias", {8}}, {"2.weight", {3, 8}}, {"2.bias", {3}}};
  EXPECT_EQ(p.header.size(), expect.size() + 1);
  uint64_t total = 0;
  for (const auto& [name, shape] : expect) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(p.header.contains(name));
    const json& e = p.header[name];
    EXPECT_EQ(e["dtype"], "F32");
    EXPECT_EQ(e["shape"].get<std::vector<int64_t>>(), shape);
    const uint64_t begin = e["data_offsets"][0], end = e["data_offsets"][1];
    EXPECT_EQ(end - begin, 4u * static_cast<uint64_t>(shape_numel(shape)));
    ASSERT_LE(end, p.data.size());
    total += end - begin;
    // The raw little-endian bytes at those offsets are the parameter's.
    Tensor t;
    for (const auto& [n, v] : m->named_parameters())
      if (n == name) t = v;
    EXPECT_EQ(std::memcmp(p.data.data() + begin, t.raw_data(), end - begin), 0);
  }
  EXPECT_EQ(total, p.data.size());  // the tensors tile the data exactly
  EXPECT_EQ(file.size(), 8 + p.len + total);
}

TEST_F(Checkpoint, TensorsOfEveryDtypeAndShape) {
  nn::TensorMap in = {
      {"ids", from_vector(std::vector<int64_t>{-3, 0, 1LL << 40})},
      {"scalar", scalar_tensor(2.5, DType::Float64)},
      {"empty", zeros({0, 3})},
      {"transposed", ops::transpose(from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}), 0, 1)},
  };
  nn::save_tensors(in, path("t.safetensors"), {{"note", "hi"}});
  nn::Metadata meta;
  nn::TensorMap out = nn::load_tensors(path("t.safetensors"), &meta);
  EXPECT_EQ(meta, (nn::Metadata{{"note", "hi"}}));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out["ids"].to_vector<int64_t>(), (std::vector<int64_t>{-3, 0, 1LL << 40}));
  EXPECT_EQ(out["scalar"].dim(), 0);
  EXPECT_EQ(out["scalar"].dtype(), DType::Float64);
  EXPECT_EQ(out["scalar"].item(), 2.5);
  EXPECT_EQ(out["empty"].sizes(), (Shape{0, 3}));
  EXPECT_EQ(out["transposed"].sizes(), (Shape{3, 2}));
  EXPECT_EQ(out["transposed"].to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  const json h = parse_file(read_file(path("t.safetensors"))).header;
  EXPECT_EQ(h["ids"]["dtype"], "I64");
  EXPECT_EQ(h["scalar"]["dtype"], "F64");
  EXPECT_EQ(h["scalar"]["shape"], json::array());
}

// A module with a buffer: buffers are saved and loaded next to the parameters.
struct WithBuffer : nn::Module {
  WithBuffer(float v) : nn::Module("WithBuffer") {
    w = register_parameter("w", full({2}, v));
    running = register_buffer("running", full({2}, v * 10));
  }
  Tensor w, running;
};

TEST_F(Checkpoint, BuffersTravelToo) {
  WithBuffer a(1), b(2);
  nn::save(a, path("b.safetensors"));
  nn::load(b, path("b.safetensors"));
  EXPECT_EQ(b.running.to_vector<float>(), (std::vector<float>{10, 10}));
  EXPECT_EQ(b.w.to_vector<float>(), (std::vector<float>{1, 1}));
}

TEST_F(Checkpoint, SavingReplacesAnOldFile) {
  nn::save(*mlp(DType::Float32, 1), path("m.safetensors"));
  auto second = mlp(DType::Float32, 2);
  nn::save(*second, path("m.safetensors"));
  auto m = mlp(DType::Float32, 3);
  nn::load(*m, path("m.safetensors"));
  EXPECT_EQ(snapshot(*m), snapshot(*second));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

// ---- damaged files: an Error naming the problem, and the module unchanged ----

TEST_F(Checkpoint, TruncatedAnywhere) {
  const Bytes good = good_file();
  const uint64_t len = parse_file(good).len;
  struct Case {
    size_t keep;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {0, {"truncated", "0 bytes, too short for the 8-byte header length"}},
      {5, {"truncated", "5 bytes"}},
      {8, {"truncated", "header length"}},
      {8 + len / 2, {"truncated", "header length", "runs past the end"}},
      {8 + len, {"truncated", "tensor '", "data_offsets"}},
      {8 + len + 1, {"truncated", "data_offsets"}},
      {good.size() - 4, {"truncated", "tensor '2.weight'", "the file holds only"}},
      {good.size() - 1, {"truncated", "tensor '2.weight'"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("cut at " + std::to_string(c.keep) + " of " + std::to_string(good.size()));
    expect_load_fails(Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(c.keep)), c.parts);
  }
  // Trailing bytes are damage too.
  Bytes longer = good;
  longer.push_back(0);
  expect_load_fails(longer, {"1 bytes after the last tensor's data belong to no tensor"});
}

TEST_F(Checkpoint, CorruptHeaderLength) {
  const Bytes good = good_file();
  auto with_len = [&](uint64_t len) {
    Bytes b = good;
    std::memcpy(b.data(), &len, 8);
    return b;
  };
  const uint64_t len = parse_file(good).len;
  expect_load_fails(with_len(good.size()), {"header length", "runs past the end of the file"});
  expect_load_fails(with_len(~uint64_t{0}), {"header length", "runs past the end of the file"});
  expect_load_fails(with_len(0), {"invalid JSON"});
  expect_load_fails(with_len(len - 8), {"invalid JSON"});
}

TEST_F(Checkpoint, InvalidJson) {
  Bytes b = good_file();
  const Bytes data = parse_file(b).data;
  b[8] = 'x';
  expect_load_fails(b, {"damaged header", "invalid JSON"});
  expect_load_fails(assemble("[1, 2]", data), {"damaged header", "expected a JSON object, got array"});
  expect_load_fails(assemble("{\"0.weight\": 3}", data), {"damaged header", "tensor '0.weight'", "JSON object"});
}

// Rewrites the good file's header through `edit`, keeping its data.
template <typename Edit>
Bytes edited(const Bytes& good, Edit edit) {
  Parsed p = parse_file(good);
  edit(p.header);
  return assemble(p.header.dump(), p.data);
}

TEST_F(Checkpoint, BadEntriesAndOffsets) {
  const Bytes good = good_file();
  const json h = parse_file(good).header;
  const uint64_t b0 = h["0.bias"]["data_offsets"][0];
  const uint64_t data_size = parse_file(good).data.size();

  expect_load_fails(edited(good, [](json& j) { j["0.bias"]["dtype"] = "F16"; }),
                    {"tensor '0.bias'", "dtype F16", "does not support"});
  expect_load_fails(edited(good, [](json& j) { j["0.bias"]["dtype"] = 32; }),
                    {"damaged header", "tensor '0.bias'", "\"dtype\""});
  expect_load_fails(edited(good, [](json& j) { j["0.bias"]["shape"] = json::array({-8}); }),
                    {"damaged header", "tensor '0.bias'", "shape entry", "-8"});
  expect_load_fails(edited(good, [](json& j) { j["0.bias"].erase("data_offsets"); }),
                    {"damaged header", "tensor '0.bias'", "data_offsets"});
  expect_load_fails(edited(good, [](json& j) { j["__metadata__"]["format"] = 1; }),
                    {"damaged header", "__metadata__", "'format'"});
  // Offsets that disagree with shape x dtype.
  expect_load_fails(edited(good, [&](json& j) { j["0.bias"]["data_offsets"] = {b0, b0 + 28}; }),
                    {"tensor '0.bias'", "(28 bytes)", "shape [8] of F32 needs 32 bytes"});
  expect_load_fails(edited(good, [&](json& j) { j["0.bias"]["data_offsets"] = {b0 + 32, b0}; }),
                    {"tensor '0.bias'", "reversed data_offsets"});
  // Out of range.
  expect_load_fails(edited(good, [&](json& j) { j["2.weight"]["data_offsets"] = {data_size + 1000, data_size + 1096}; }),
                    {"tensor '2.weight'", "the file holds only " + std::to_string(data_size) + " bytes"});
  // Overlapping: 0.weight moved to start where 0.bias starts.
  expect_load_fails(edited(good, [&](json& j) { j["0.weight"]["data_offsets"] = {b0, b0 + 128}; }),
                    {"tensors '0.bias'", "'0.weight'", "overlap"});
  // A tensor dropped from the header leaves its bytes unclaimed.
  expect_load_fails(edited(good, [](json& j) { j.erase("0.bias"); }), {"belong to no tensor"});
}

TEST_F(Checkpoint, WrongShapeNamesEveryTensor) {
  nn::save(*mlp(DType::Float32, 1, /*hidden=*/9), path("wide.safetensors"));
  expect_load_fails(read_file(path("wide.safetensors")),
                    {"does not match", "nothing was loaded",
                     "tensor '0.weight' has shape [9, 4] in the file, the module expects [8, 4]",
                     "tensor '0.bias' has shape [9] in the file, the module expects [8]",
                     "tensor '2.weight' has shape [3, 9] in the file, the module expects [3, 8]"});
}

TEST_F(Checkpoint, WrongDtype) {
  nn::save(*mlp(DType::Float64, 1), path("f64.safetensors"));
  expect_load_fails(read_file(path("f64.safetensors")),
                    {"tensor '0.weight' has dtype float64 in the file, the module expects float32",
                     "tensor '2.bias' has dtype float64"});
}

TEST_F(Checkpoint, MissingAndExtraTensors) {
  auto a = mlp(DType::Float32, 1);
  nn::TensorMap tensors;
  for (const auto& [name, t] : a->named_parameters()) tensors[name] = t;
  nn::TensorMap missing = tensors;
  missing.erase("2.bias");
  nn::save_tensors(missing, path("missing.safetensors"));
  expect_load_fails(read_file(path("missing.safetensors")), {"missing tensor '2.bias' (float32 [3])"});

  nn::TensorMap extra = tensors;
  extra["3.weight"] = zeros({2, 2});
  nn::save_tensors(extra, path("extra.safetensors"));
  expect_load_fails(read_file(path("extra.safetensors")), {"unexpected tensor '3.weight'"});
}

TEST_F(Checkpoint, MissingFile) {
  auto m = mlp(DType::Float32, 1);
  expect_error([&] { nn::load(*m, path("nope.safetensors")); }, {path("nope.safetensors"), "does not exist"});
  expect_error([&] { nn::load(*m, dir_.string()); }, {dir_.string(), "not a regular file"});
}

// ---- saving failures leave nothing behind ----

TEST_F(Checkpoint, SaveFailuresLeaveNoTempFile) {
  auto m = mlp(DType::Float32, 1);
  const std::string nowhere = path("no/such/dir/m.safetensors");
  expect_error([&] { nn::save(*m, nowhere); }, {nowhere, "No such file or directory"});
  // The rename fails (the target is a directory): the temporary file is removed.
  fs::create_directories(path("taken"));
  expect_error([&] { nn::save(*m, path("taken")); }, {"rename", path("taken")});
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);

  expect_error([&] { nn::save_tensors({{"x", Tensor()}}, path("u.safetensors")); }, {"tensor 'x' is undefined"});
  expect_error([&] { nn::save_tensors({{"__metadata__", zeros({1})}}, path("u.safetensors")); },
               {"invalid tensor name '__metadata__'"});
  EXPECT_FALSE(fs::exists(path("u.safetensors")));
}

// Threads saving different contents to the same path at once (e.g. two pipeline ranks that are
// threads): each save has a temporary file of its own, so every one succeeds, and the file left
// is one complete save — never bytes of two, never a failed rename.
TEST_F(Checkpoint, ConcurrentSavesToOnePathAllSucceedAndLeaveOneWholeFile) {
  constexpr int kThreads = 8, kRounds = 20;
  const std::string target = path("shared.safetensors");
  std::vector<nn::TensorMap> contents(kThreads);
  for (int t = 0; t < kThreads; ++t)  // different values and sizes per thread
    contents[t] = {{"w", full({64, 64 + t}, t)}, {"b", full({16 + t}, -t, DType::Float64)}};
  const std::vector<std::string> errors =
      test_util::hammer(kThreads, kRounds, [&](int t) { nn::save_tensors(contents[t], target); });
  EXPECT_TRUE(errors.empty()) << errors.size() << " saves failed, the first: " << errors.front();
  nn::TensorMap got = nn::load_tensors(target);
  ASSERT_EQ(got.size(), 2u);
  const int t = static_cast<int>(got.at("w").to_vector<float>().at(0));
  ASSERT_GE(t, 0);
  ASSERT_LT(t, kThreads);
  EXPECT_EQ(got.at("w").sizes(), contents[t].at("w").sizes());
  EXPECT_EQ(got.at("w").to_vector<float>(), contents[t].at("w").to_vector<float>());
  EXPECT_EQ(got.at("b").to_vector<double>(), contents[t].at("b").to_vector<double>());
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

}  // namespace
