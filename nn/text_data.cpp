// Corpus reading, vocabularies, the train/validation split and batch sampling.
#include "nn/text_data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tensor/factory.h"

namespace minipipe::nn {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  MP_CHECK(fs::exists(path, ec), "corpus file '", path, "' does not exist");
  MP_CHECK(!fs::is_directory(path, ec), "corpus path '", path, "' is a directory, expected a text file");
  std::ifstream in(path, std::ios::binary);
  MP_CHECK(in.good(), "cannot open corpus file '", path, "'");
  std::ostringstream os;
  os << in.rdbuf();
  MP_CHECK(!in.bad(), "error while reading corpus file '", path, "'");
  return os.str();
}

std::string load_fortunes(const std::string& dir, std::vector<std::string>* files) {
  std::error_code ec;
  MP_CHECK(fs::is_directory(dir, ec), "fortunes directory '", dir,
           "' not found: install Debian's `fortunes` package (apt-get install fortunes) or pass --data FILE");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const fs::path& p = entry.path();
    if (entry.is_symlink() || !entry.is_regular_file()) continue;  // .u8 links, off/
    const std::string ext = p.extension().string();
    if (ext == ".dat" || ext == ".u8") continue;
    names.push_back(p.filename().string());
  }
  std::sort(names.begin(), names.end());
  std::string text;
  for (const auto& n : names) text += read_text_file((fs::path(dir) / n).string());
  MP_CHECK(!text.empty(), "no fortune text found in '", dir, "'");
  if (files) *files = names;
  return text;
}

Vocabulary::Vocabulary(std::string symbols) : symbols_(std::move(symbols)) {
  ids_.fill(-1);
  for (size_t i = 0; i < symbols_.size(); ++i) ids_[static_cast<unsigned char>(symbols_[i])] = static_cast<int32_t>(i);
}

Vocabulary Vocabulary::chars(std::string_view text) {
  MP_CHECK(!text.empty(), "vocabulary: cannot build a character vocabulary from an empty text");
  std::array<bool, 256> seen{};
  for (char c : text) seen[static_cast<unsigned char>(c)] = true;
  std::string symbols;
  for (int b = 0; b < 256; ++b)
    if (seen[b]) symbols.push_back(static_cast<char>(b));
  return Vocabulary(std::move(symbols));
}

Vocabulary Vocabulary::bytes() {
  std::string symbols(256, '\0');
  for (int b = 0; b < 256; ++b) symbols[b] = static_cast<char>(b);
  return Vocabulary(std::move(symbols));
}

std::vector<int64_t> Vocabulary::encode(std::string_view text) const {
  std::vector<int64_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    MP_CHECK(ids_[c] >= 0, "vocabulary: byte ", static_cast<int>(c), " ('", std::string(1, text[i]), "') at position ",
             i, " is not in the ", size(), "-symbol vocabulary of the corpus");
    ids[i] = ids_[c];
  }
  return ids;
}

std::string Vocabulary::decode(const std::vector<int64_t>& ids) const {
  std::string s;
  s.reserve(ids.size());
  for (int64_t id : ids) {
    MP_CHECK(id >= 0 && id < size(), "vocabulary: token id ", id, " is out of range for ", size(), " symbols");
    s.push_back(symbols_[static_cast<size_t>(id)]);
  }
  return s;
}

double unigram_entropy(const std::vector<int64_t>& tokens, int64_t vocab_size) {
  MP_CHECK(!tokens.empty(), "unigram_entropy: no tokens");
  std::vector<int64_t> count(static_cast<size_t>(vocab_size), 0);
  for (int64_t t : tokens) {
    MP_CHECK(t >= 0 && t < vocab_size, "unigram_entropy: token ", t, " out of range for ", vocab_size);
    ++count[static_cast<size_t>(t)];
  }
  double h = 0;
  const double n = static_cast<double>(tokens.size());
  for (int64_t c : count)
    if (c > 0) h -= static_cast<double>(c) / n * std::log(static_cast<double>(c) / n);
  return h;
}

double bigram_entropy(const std::vector<int64_t>& tokens, int64_t vocab_size) {
  MP_CHECK(tokens.size() >= 2, "bigram_entropy: need at least two tokens, got ", tokens.size());
  MP_CHECK(vocab_size > 0 && vocab_size <= 65536, "bigram_entropy: vocab_size must be in 1..65536, got ", vocab_size);
  const auto V = static_cast<size_t>(vocab_size);
  std::vector<int64_t> pair(V * V, 0), first(V, 0);  // count(a, b) and count(a) over the pairs
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    const int64_t a = tokens[i], b = tokens[i + 1];
    MP_CHECK(a >= 0 && a < vocab_size && b >= 0 && b < vocab_size, "bigram_entropy: token ",
             (a >= 0 && a < vocab_size) ? b : a, " out of range for ", vocab_size);
    ++pair[static_cast<size_t>(a) * V + static_cast<size_t>(b)];
    ++first[static_cast<size_t>(a)];
  }
  // -sum over pairs of p(a, b) log p(b | a), with p(b | a) = count(a, b) / count(a).
  double h = 0;
  const double n = static_cast<double>(tokens.size() - 1);
  for (size_t a = 0; a < V; ++a)
    for (size_t b = 0; b < V; ++b)
      if (const int64_t c = pair[a * V + b]; c > 0)
        h -= static_cast<double>(c) / n * std::log(static_cast<double>(c) / static_cast<double>(first[a]));
  return h;
}

TextSplit split_train_val(const std::vector<int64_t>& tokens, double val_fraction, int64_t block) {
  MP_CHECK(val_fraction > 0 && val_fraction < 1, "split: validation fraction must be in (0, 1), got ", val_fraction);
  MP_CHECK(block > 0, "split: block size must be positive, got ", block);
  TextSplit s;
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t b = 0; b * block < n; ++b) {
    // Block b is validation when the running count floor((b + 1) f) steps up: b = 9, 19, ... for f = 0.1.
    const bool val = std::floor(static_cast<double>(b + 1) * val_fraction) > std::floor(static_cast<double>(b) * val_fraction);
    auto& dst = val ? s.val : s.train;
    dst.insert(dst.end(), tokens.begin() + b * block, tokens.begin() + std::min(n, (b + 1) * block));
  }
  // A text shorter than 1/f blocks has no validation block yet: take its tail.
  if (s.val.empty() && n > 1) {
    const int64_t cut = n - std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n) * val_fraction));
    s.train.assign(tokens.begin(), tokens.begin() + cut);
    s.val.assign(tokens.begin() + cut, tokens.end());
  }
  return s;
}

Batch sample_batch(const std::vector<int64_t>& tokens, int64_t batch, int64_t context, Generator& gen,
                   const char* split_name) {
  MP_CHECK(batch > 0 && context > 0, "sample_batch: batch and context must be positive, got batch=", batch,
           " context=", context);
  const int64_t n = static_cast<int64_t>(tokens.size());
  MP_CHECK(n >= context + 1, "the ", split_name, " split has ", n, " tokens, fewer than context + 1 = ", context + 1,
           ": use a longer corpus or a smaller --context");
  Tensor x = empty({batch, context}, DType::Int64), y = empty({batch, context}, DType::Int64);
  int64_t *px = x.data_ptr<int64_t>(), *py = y.data_ptr<int64_t>();
  const auto starts = static_cast<uint64_t>(n - context);  // offsets 0 .. n - context - 1
  for (int64_t b = 0; b < batch; ++b) {
    const auto o = static_cast<int64_t>(gen.below(starts));
    std::copy(tokens.begin() + o, tokens.begin() + o + context, px + b * context);
    std::copy(tokens.begin() + o + 1, tokens.begin() + o + context + 1, py + b * context);
  }
  return {x, y};
}

}  // namespace minipipe::nn
