// CUDA checks: skipped without a device (as on the CI machines); with one, the runtime answers.
// Kernel-vs-CPU comparisons join this file with the CUDA backend.
#include <gtest/gtest.h>

#include "tensor/device.h"
#include "tensor/factory.h"

using namespace minipipe;

TEST(Cuda, CpuOnlyBuildReportsNoDevice) {
  if (cuda_is_built()) GTEST_SKIP() << "CUDA build";
  EXPECT_FALSE(cuda_is_available());
  EXPECT_EQ(cuda_device_count(), 0);
}

TEST(Cuda, AllocatingOnCudaWithoutABackendIsAClearError) {
  try {
    zeros({2, 2}, Device::cuda(0));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

TEST(Cuda, DeviceIsVisibleWhenPresent) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  EXPECT_GT(cuda_device_count(), 0);
}
