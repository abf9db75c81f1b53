// CUDA checks. Without a device (as on the CI machines) the availability functions must still
// agree with each other and with the machine (no /dev/nvidiaN node: no device), and asking for a
// device that is not there is a clear error; with one, the runtime must answer for every device it
// counts, copies must round-trip, the caching allocator must reuse and count, and an op mixing
// devices must name both. The layout the CUDA reductions give their kernels is plain tensor code,
// checked here on every machine. Kernel-vs-CPU comparisons: tests/test_cuda_ops.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "tensor/device.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/cuda/rows.h"
#ifdef MINIPIPE_CUDA
#include "tensor/cuda/runtime.h"
#endif

using namespace minipipe;

namespace {
// Device nodes through which a GPU can be reached: /dev/nvidia0, /dev/nvidia1, ... (one per GPU,
// made by the NVIDIA driver), or /dev/dxg (WSL's GPU paravirtualisation).
int gpu_device_nodes() {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/dev", ec))
    if (std::regex_match(e.path().filename().string(), std::regex(R"(nvidia\d+|dxg)"))) ++n;
  return n;
}
}  // namespace

// rows_last(t, dim) is what max / argmax / softmax kernels read as [rows, n]: slice k of its last dim
// must be slice k of `dim` with the other dims in their order (a transpose of `dim` and the last
// dim swapped two of them and scrambled max over dim 0 of a 3-D tensor), and rows_back undoes it.
TEST(CudaRows, TheReducedDimMovesLastAndTheOthersKeepTheirOrder) {
  Generator gen(11);
  const Tensor t = randn({2, 3, 4, 5}, DType::Float64, &gen);
  for (int64_t dim = 0; dim < t.dim(); ++dim) {
    const Tensor r = cuda::rows_last(t, dim);
    Shape want = t.sizes();
    want.erase(want.begin() + dim);
    want.push_back(t.size(dim));
    ASSERT_EQ(r.sizes(), want) << "dim " << dim;
    EXPECT_TRUE(r.is_contiguous()) << "dim " << dim;
    for (int64_t k = 0; k < t.size(dim); ++k)
      EXPECT_EQ(ops::select(r, -1, k).to_vector<double>(), ops::select(t, dim, k).to_vector<double>())
          << "dim " << dim << ", slice " << k;
    // Row i of the [rows, n] view is the i-th element of max(t, dim)'s result.
    EXPECT_EQ(std::get<0>(ops::max(r, -1)).to_vector<double>(), std::get<0>(ops::max(t, dim)).to_vector<double>())
        << "dim " << dim;
    const Tensor back = cuda::rows_back(r, dim, t.dim());
    EXPECT_EQ(back.sizes(), t.sizes()) << "dim " << dim;
    EXPECT_EQ(back.to_vector<double>(), t.to_vector<double>()) << "dim " << dim;
  }
}

TEST(Cuda, AvailabilityAgreesWithTheDeviceCount) {
  const int n = cuda_device_count();
  EXPECT_GE(n, 0);
  EXPECT_EQ(cuda_is_available(), n > 0) << "count " << n;
  EXPECT_EQ(cuda_device_count(), n) << "the count changed between two calls";
  if (!cuda_is_built()) {
    EXPECT_EQ(n, 0) << "a CPU-only build cannot see a CUDA device";
  }
}

TEST(Cuda, NoDeviceNodeMeansNoDevice) {
  if (gpu_device_nodes() > 0) GTEST_SKIP() << "this machine has GPU device nodes";
  EXPECT_EQ(cuda_device_count(), 0);
  EXPECT_FALSE(cuda_is_available());
}

// Without a CUDA build there is no backend; with one, a device past the count does not exist.
// Either way the error names the device.
TEST(Cuda, AllocatingOnAMissingDeviceIsAClearError) {
  const int missing = cuda_device_count();
  try {
    zeros({2, 2}, Device::cuda(missing));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:" + std::to_string(missing)), std::string::npos) << e.what();
  }
}

#ifdef MINIPIPE_CUDA
// Every counted device has properties, and one past the last is an error naming the CUDA call.
TEST(Cuda, EveryCountedDeviceAnswersAndOnePastTheLastIsAnError) {
  const int n = cuda_device_count();
  if (n == 0) GTEST_SKIP() << "no CUDA device";
  for (int i = 0; i < n; ++i) EXPECT_FALSE(cuda::device_name(i).empty()) << "device " << i;
  try {
    cuda::device_name(n);
    FAIL() << "expected an error for device " << n << " of " << n;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cudaGetDeviceProperties"), std::string::npos) << e.what();
  }
}
#endif

#ifdef MINIPIPE_CUDA
// The size classes need no device: at least the request, multiples of 512 bytes, and at most 25%
// (plus one 512-byte step) above it.
TEST(CudaAllocator, SizeClassesCoverTheRequestWithBoundedWaste) {
  size_t previous = 0;
  for (size_t n : {size_t{1}, size_t{511}, size_t{512}, size_t{513}, size_t{4096}, size_t{1} << 20,
                   (size_t{1} << 20) + 1, size_t{3} << 20, (size_t{5} << 28) + 7}) {
    const size_t c = cuda::device_size_class(n);
    EXPECT_GE(c, n);
    EXPECT_EQ(c % 512, 0u) << n;
    EXPECT_LE(c, n + n / 4 + 512) << n;
    EXPECT_GE(c, previous) << "size classes must grow with the request";
    previous = c;
  }
}

TEST(CudaAllocator, FreedBlocksAreReusedAndCounted) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  cuda::empty_cache();
  const auto before = cuda::allocator_stats(0);
  { Tensor t = empty({1 << 20}, Device::cuda(0)); }  // 4 MiB, freed at once
  const auto freed = cuda::allocator_stats(0);
  EXPECT_EQ(freed.in_use, before.in_use);
  EXPECT_GE(freed.cached, 4 << 20);
  EXPECT_GE(freed.peak_in_use, before.in_use + (4 << 20));
  { Tensor t = empty({1 << 20}, Device::cuda(0)); }
  const auto again = cuda::allocator_stats(0);
  EXPECT_EQ(again.reuses, freed.reuses + 1);
  EXPECT_EQ(again.device_allocs, freed.device_allocs);
  cuda::empty_cache();
  EXPECT_EQ(cuda::allocator_stats(0).cached, 0);
}

TEST(CudaAllocator, OutOfMemoryNamesTheDeviceTheRequestAndTheCounters) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  try {
    empty({int64_t{1} << 48}, Device::cuda(0));  // 1 PiB of float32
    FAIL() << "expected an out-of-memory error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* want : {"out of memory", "cuda:0", "1125899906842624", "cached", "retried"})
      EXPECT_NE(msg.find(want), std::string::npos) << want << " missing from: " << msg;
  }
  EXPECT_GE(cuda::allocator_stats(0).oom_retries, 1);
}

TEST(CudaCopies, HostDeviceHostRoundTripsExactly) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  for (int64_t n : {int64_t{0}, int64_t{5}, int64_t{1} << 16, (int64_t{3} << 20) + 3}) {  // direct and staged
    Tensor x = randn({n});
    Tensor back = x.to(Device::cuda(0)).to(Device::cpu());
    EXPECT_EQ(back.to_vector<float>(), x.to_vector<float>()) << n;
  }
  Tensor strided = ops::transpose(randn({30, 40}), 0, 1);  // non-contiguous source
  EXPECT_EQ(strided.to(Device::cuda(0)).to_vector<float>(), ops::contiguous(strided).to_vector<float>());
  Tensor i = from_vector(std::vector<int64_t>{3, -1, 1LL << 40});
  EXPECT_EQ(i.to(Device::cuda(0)).to_vector<int64_t>(), i.to_vector<int64_t>());
  EXPECT_DOUBLE_EQ(full({}, 2.5, Device::cuda(0)).item(), 2.5);
}

TEST(CudaCopies, DeviceToDeviceWhenThereAreTwo) {
  if (cuda_device_count() < 2) GTEST_SKIP() << "fewer than two CUDA devices";
  Tensor x = randn({1000});
  Tensor y = x.to(Device::cuda(0)).to(Device::cuda(1));
  EXPECT_EQ(y.device(), Device::cuda(1));
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
}

TEST(CudaDispatch, AnOpMixingDevicesNamesBoth) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor a = ones({3}), b = ones({3}, Device::cuda(0));
  try {
    ops::add(a, b);
    FAIL() << "expected a device mismatch";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("add"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  }
}

TEST(CudaDispatch, PrintingAndFactoriesCopyAcrossExplicitly) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  Tensor r = arange(int64_t{4}, {DType::Float32, Device::cuda(0)});
  EXPECT_EQ(r.device(), Device::cuda(0));
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_NE(r.str().find("device=cuda:0"), std::string::npos) << r.str();
  EXPECT_NE(r.str().find("3.0000"), std::string::npos) << r.str();
  Generator g1(5), g2(5);  // the same seed gives the same numbers on either device
  EXPECT_EQ(randn({8}, {DType::Float32, Device::cuda(0)}, &g1).to_vector<float>(), randn({8}, {}, &g2).to_vector<float>());
}
#endif
