// What the libtorch twins of the benchmarks (benchmarks/torch/torch_*.cpp) share: the thread
// setup and a one-line description of the libtorch build they run on. Only compiled with
// -DMINIPIPE_LIBTORCH=ON (CMakeLists.txt); nothing here links minipipe.
#pragma once

#include <ATen/Version.h>
#include <torch/torch.h>

#include <cstdio>
#include <string>

namespace minipipe::bench {

// Once, first thing in main(): inter-op threads stay 1 (the benchmarks run one op at a time, as
// minipipe does); intra-op threads are set per benchmark with set_torch_threads.
inline void init_torch() {
  at::set_num_interop_threads(1);
  torch::manual_seed(0);
  // show_config() names the vector kernels ATen dispatches to on this CPU ("CPU capability usage: AVX2").
  const std::string config = at::show_config();
  std::string capability = "CPU capability unknown";
  if (const size_t at = config.find("CPU capability usage:"); at != std::string::npos)
    capability = config.substr(at, config.find('\n', at) - at);
  std::printf("libtorch %s: %s intra-op threads, %s, %s\n", TORCH_VERSION,
              at::get_parallel_info().find("OpenMP") != std::string::npos ? "OpenMP" : "native",
              at::hasMKLDNN() ? "oneDNN built in" : "no oneDNN", capability.c_str());
}

// The intra-op thread count a benchmark runs with (OpenMP's, as minipipe's set_num_threads).
inline void set_torch_threads(int n) { torch::set_num_threads(n); }

// Gradients to none, as minipipe's Optimizer::zero_grad and PyTorch 2's default (libtorch 1.13's
// zero_grad() zeroes them in place instead).
inline void zero_grad_to_none(torch::optim::Optimizer& opt) {
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) p.mutable_grad() = torch::Tensor();
}

}  // namespace minipipe::bench
