// CUDA checks. Without a device (as on the CI machines) the availability functions must still
// agree with each other and with the machine (no /dev/nvidiaN node: no device); with one, the
// runtime must answer for every device it counts. Kernel-vs-CPU comparisons join this file with
// the CUDA backend.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "tensor/device.h"
#include "tensor/factory.h"
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

TEST(Cuda, AllocatingOnCudaWithoutABackendIsAClearError) {
  try {
    zeros({2, 2}, Device::cuda(0));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
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
