// Text corpora for the GPT trainer (examples/train_gpt.cpp): the default corpus (the English
// fortunes of Debian's `fortunes` package), a character- or byte-level vocabulary, a
// deterministic train/validation split, and random [B, T+1] windows from a seeded Generator.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/generator.h"
#include "tensor/tensor.h"

namespace minipipe::nn {

inline constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

// The whole file; an error names the path if it is missing, unreadable or a directory.
std::string read_text_file(const std::string& path);

// The fortune files of `dir` concatenated in sorted name order: regular files only, skipping
// the `.dat` index files, the `.u8` links and any subdirectory (such as `off/`). `files`, if
// given, receives the names used.
std::string load_fortunes(const std::string& dir = kFortunesDir, std::vector<std::string>* files = nullptr);

// Token ids <-> bytes. char: the sorted unique bytes of a text; byte: all 256 bytes.
class Vocabulary {
 public:
  static Vocabulary chars(std::string_view text);
  static Vocabulary bytes();
  int64_t size() const { return static_cast<int64_t>(symbols_.size()); }
  const std::string& symbols() const { return symbols_; }  // id -> byte
  bool contains(unsigned char c) const { return ids_[c] >= 0; }
  std::vector<int64_t> encode(std::string_view text) const;  // error on a byte not in the vocabulary
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  explicit Vocabulary(std::string symbols);
  std::string symbols_;
  std::array<int32_t, 256> ids_{};  // byte -> id, -1 when absent
};

// Entropy of the token frequencies in nats, -sum p log p: the loss of the best model that
// ignores context (a unigram model), the baseline a language model must beat.
double unigram_entropy(const std::vector<int64_t>& tokens, int64_t vocab_size);
// Conditional entropy of the next token given the current one, H(next | current) in nats, over
// the consecutive pairs of `tokens`: the loss of the best model that sees one token of context
// (a bigram model), the level a language model passes once it looks further back.
double bigram_entropy(const std::vector<int64_t>& tokens, int64_t vocab_size);

struct TextSplit {
  std::vector<int64_t> train, val;
};

// Cuts the tokens into consecutive blocks of `block` tokens; every (1/val_fraction)-th block
// goes to validation (blocks 9, 19, 29, ... for 0.1), the rest to training, each in order.
// Deterministic, and validation samples the whole corpus rather than only its last files.
TextSplit split_train_val(const std::vector<int64_t>& tokens, double val_fraction = 0.1, int64_t block = 8192);

// B windows of T + 1 consecutive tokens at offsets drawn uniformly from the generator:
// x = window[0:T], y = window[1:T+1], both int64 [B, T].
struct Batch {
  Tensor x, y;
};
Batch sample_batch(const std::vector<int64_t>& tokens, int64_t batch, int64_t context, Generator& gen,
                   const char* split_name = "corpus");

}  // namespace minipipe::nn
