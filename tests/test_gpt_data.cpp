// Tests of the GPT trainer's text data (nn/text_data.h): corpus loading (the fortunes layout
// rebuilt in a temporary directory), vocabularies, the unigram baseline, the deterministic
// train/validation split and batch sampling, and the errors for missing or short corpora.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nn/text_data.h"

namespace minipipe::nn {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("minipipe_gpt_data_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

TEST(TextData, LoadFortunesSkipsIndexFilesLinksAndSubdirectories) {
  fs::path d = temp_dir("fortunes");
  write(d / "zoo", "Z\n%\n");
  write(d / "art", "A\n%\n");
  write(d / "art.dat", std::string("\0\0\x02binary", 9));
  fs::create_symlink(d / "art", d / "art.u8");
  fs::create_symlink(d / "zoo", d / "zoolink");
  fs::create_directories(d / "off");
  write(d / "off" / "rude", "R\n");
  std::vector<std::string> files;
  EXPECT_EQ(load_fortunes(d.string(), &files), "A\n%\nZ\n%\n");  // sorted: art, zoo
  EXPECT_EQ(files, (std::vector<std::string>{"art", "zoo"}));
  fs::remove_all(d);
}

TEST(TextData, MissingAndEmptyCorporaAreClearErrors) {
  try {
    read_text_file("/nonexistent/corpus.txt");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/corpus.txt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_fortunes("/nonexistent/fortunes"), Error);
  fs::path d = temp_dir("empty");
  EXPECT_THROW(load_fortunes(d.string()), Error);  // no text at all
  EXPECT_THROW(read_text_file(d.string()), Error);  // a directory
  fs::remove_all(d);
}

TEST(TextData, InstalledFortunesAreEnglishText) {
  if (!fs::is_directory(kFortunesDir)) GTEST_SKIP() << "the fortunes package is not installed";
  std::vector<std::string> files;
  const std::string text = load_fortunes(kFortunesDir, &files);
  EXPECT_GT(text.size(), 1000000u);
  for (const auto& f : files) EXPECT_FALSE(f.ends_with(".dat") || f.ends_with(".u8")) << f;
  EXPECT_NE(text.find("the"), std::string::npos);
}

TEST(TextData, CharVocabularyIsTheSortedUniqueBytes) {
  Vocabulary v = Vocabulary::chars("hello, world");
  EXPECT_EQ(v.symbols(), " ,dehlorw");
  EXPECT_EQ(v.size(), 9);
  const auto ids = v.encode("world");
  EXPECT_EQ(ids, (std::vector<int64_t>{8, 6, 7, 5, 2}));
  EXPECT_EQ(v.decode(ids), "world");
  try {
    v.encode("hex");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'x'"), std::string::npos) << m;
    EXPECT_NE(m.find("position 2"), std::string::npos) << m;
  }
  EXPECT_THROW(v.decode({9}), Error);
  EXPECT_THROW(Vocabulary::chars(""), Error);
}

TEST(TextData, ByteVocabularyCoversAllBytes) {
  Vocabulary v = Vocabulary::bytes();
  EXPECT_EQ(v.size(), 256);
  const std::string s("\x00\xff\x41", 3);
  EXPECT_EQ(v.encode(s), (std::vector<int64_t>{0, 255, 65}));
  EXPECT_EQ(v.decode(v.encode(s)), s);
}

TEST(TextData, UnigramEntropy) {
  EXPECT_NEAR(unigram_entropy({0, 1, 2, 3, 0, 1, 2, 3}, 4), std::log(4.0), 1e-12);
  EXPECT_EQ(unigram_entropy({2, 2, 2}, 5), 0.0);
  const double h = unigram_entropy({0, 0, 0, 1}, 2);  // p = 3/4, 1/4
  EXPECT_NEAR(h, -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)), 1e-12);
}

TEST(TextData, BigramEntropy) {
  EXPECT_NEAR(bigram_entropy({0, 1, 0, 1, 0, 1}, 2), 0.0, 1e-15);  // the next token is determined
  // After 0 comes 0 or 1 equally often, after 1 always 0: H = p(a = 0) * ln 2 = (4/6) ln 2.
  EXPECT_NEAR(bigram_entropy({0, 0, 1, 0, 1, 0, 0}, 2), 4.0 / 6.0 * std::log(2.0), 1e-12);
  // Every pair equally often: the current token tells nothing, H = ln 2 (less the one pair cut off).
  std::vector<int64_t> cycle;
  for (int i = 0; i < 16; ++i)
    for (int64_t t : {0, 0, 1, 1}) cycle.push_back(t);  // pairs 00, 01, 11, 10 equally often
  EXPECT_NEAR(bigram_entropy(cycle, 2), std::log(2.0), 0.02);
  EXPECT_THROW(bigram_entropy({1}, 2), Error);
  EXPECT_THROW(bigram_entropy({0, 2}, 2), Error);
}

TEST(TextData, SplitSendsEveryTenthBlockToValidation) {
  std::vector<int64_t> ids(1000);
  for (int i = 0; i < 1000; ++i) ids[i] = i;
  TextSplit s = split_train_val(ids, 0.1, 10);
  ASSERT_EQ(s.val.size(), 100u);
  ASSERT_EQ(s.train.size(), 900u);
  EXPECT_EQ(s.val[0], 90);  // block 9
  EXPECT_EQ(s.val[10], 190);  // block 19
  EXPECT_EQ(s.train[90], 100);
  TextSplit again = split_train_val(ids, 0.1, 10);
  EXPECT_EQ(s.train, again.train);
  EXPECT_EQ(s.val, again.val);
  // Shorter than ten blocks: the last tenth goes to validation.
  TextSplit small = split_train_val(std::vector<int64_t>(50, 1), 0.1, 10);
  EXPECT_EQ(small.train.size(), 45u);
  EXPECT_EQ(small.val.size(), 5u);
}

TEST(TextData, BatchesAreShiftedWindowsFromTheSeed) {
  std::vector<int64_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[i] = i;
  Generator g1(3), g2(3);
  Batch a = sample_batch(ids, 4, 8, g1), b = sample_batch(ids, 4, 8, g2);
  EXPECT_EQ(a.x.sizes(), Shape({4, 8}));
  EXPECT_EQ(a.x.dtype(), DType::Int64);
  EXPECT_EQ(a.x.to_vector<int64_t>(), b.x.to_vector<int64_t>());
  const auto x = a.x.to_vector<int64_t>(), y = a.y.to_vector<int64_t>();
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < 8; ++t) {
      EXPECT_EQ(y[r * 8 + t], x[r * 8 + t] + 1);
      if (t > 0) {
        EXPECT_EQ(x[r * 8 + t], x[r * 8 + t - 1] + 1);
      }
    }
  // Exactly context + 1 tokens: one window only.
  Generator g3(0);
  Batch c = sample_batch(std::vector<int64_t>{5, 6, 7}, 2, 2, g3);
  EXPECT_EQ(c.x.to_vector<int64_t>(), (std::vector<int64_t>{5, 6, 5, 6}));
}

TEST(TextData, CorpusShorterThanContextNamesTheNumbers) {
  Generator g(0);
  try {
    sample_batch(std::vector<int64_t>(100, 0), 2, 128, g, "validation");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("100 tokens"), std::string::npos) << m;
    EXPECT_NE(m.find("129"), std::string::npos) << m;
    EXPECT_NE(m.find("validation"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace minipipe::nn
