// The workloads bench_mlp_step and bench_gpt share with their libtorch twins (benchmarks/torch/),
// one list each, so the two sides of a row in run_benchmarks.sh --libtorch train the same shapes.
// Plain data: included by programs that link minipipe and by programs that link libtorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minipipe::bench {

struct MlpWorkload {
  std::string name;
  std::vector<int64_t> widths;  // in, hidden..., out
  int64_t batch;
};

// A wider MLP whose step is dominated by its GEMMs, and train_mlp's default for reference.
inline const std::vector<MlpWorkload> kMlpWorkloads = {
    {"784-1024-1024-10/b256", {784, 1024, 1024, 10}, 256},
    {"784-512-256-10/b128", {784, 512, 256, 10}, 128},
};

struct GptWorkload {
  std::string name;
  int64_t layers, d_model, heads, context, batch;
  bool fused_attention = true;  // false: attention composed from differentiable views and ops
};

// train_gpt's default, and a larger model of 6 layers, d_model 256 (same tokens per step), both also
// at context 128. Vocabulary 128 (the fortunes' char vocabulary has 114 symbols).
inline const std::vector<GptWorkload> kGptWorkloads = {
    {"L4-C128-H4-T64-B32", 4, 128, 4, 64, 32},
    {"L4-C128-H4-T128-B16", 4, 128, 4, 128, 16},
    {"L6-C256-H8-T64-B32", 6, 256, 8, 64, 32},
    {"L6-C256-H8-T128-B16", 6, 256, 8, 128, 16},
};
inline constexpr int64_t kGptVocab = 128;

}  // namespace minipipe::bench
