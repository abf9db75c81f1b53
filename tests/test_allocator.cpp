// The caching host allocator (tensor/allocator.h): size classes, reuse of freed blocks, exact
// counters, empty_host_cache, turning it off, and many threads allocating and freeing at once.
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "nn/nn.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe {
namespace {

// Each test runs with caching on (sanitizer builds start with it off) and an empty cache.
class HostAllocator : public ::testing::Test {
 protected:
  void SetUp() override {
    was_ = host_caching();
    set_host_caching(true);
    empty_host_cache();
  }
  void TearDown() override {
    set_host_caching(was_);
    set_host_cache_limit(limit_);
  }
  bool was_ = true;
  int64_t limit_ = host_cache_limit();
};

TEST(HostSizeClass, MultiplesOf64ThenFourClassesPerPowerOfTwo) {
  EXPECT_EQ(host_size_class(0), 64u);
  EXPECT_EQ(host_size_class(1), 64u);
  EXPECT_EQ(host_size_class(64), 64u);
  EXPECT_EQ(host_size_class(65), 128u);
  EXPECT_EQ(host_size_class(4096), 4096u);
  EXPECT_EQ(host_size_class(4097), 5120u);  // 4096 + 4096/4
  EXPECT_EQ(host_size_class(1 << 20), size_t{1} << 20);
  EXPECT_EQ(host_size_class((1 << 20) + 1), (size_t{1} << 20) + (1 << 18));
  EXPECT_EQ(host_size_class(7 << 20), size_t{7} << 20);  // 1.75 x 4 MiB is a class
  for (size_t n : {size_t{100}, size_t{5000}, size_t{123457}, size_t{3} << 30}) {
    const size_t c = host_size_class(n);
    EXPECT_GE(c, n);
    EXPECT_LE(c, n + n / 4 + 64) << n;
    EXPECT_EQ(c % 64, 0u) << n;
  }
}

TEST_F(HostAllocator, AFreedBlockIsHandedOutAgainAndCountedExactly) {
  const HostAllocatorStats s0 = host_allocator_stats();
  void* first = nullptr;
  {
    Tensor a = empty({1000, 1000});  // 4,000,000 bytes: class 4 MiB (4,194,304)
    first = a.raw_data();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
    const HostAllocatorStats s1 = host_allocator_stats();
    EXPECT_EQ(s1.in_use - s0.in_use, 4194304);
    EXPECT_EQ(s1.system_allocs - s0.system_allocs, 1);
    EXPECT_EQ(s1.cached, 0);
  }
  const HostAllocatorStats s2 = host_allocator_stats();
  EXPECT_EQ(s2.in_use, s0.in_use);
  EXPECT_EQ(s2.cached, 4194304);
  // Another request in the same class (4,100,000 bytes) gets the same block, from the cache.
  Tensor b = empty({1025, 1000});
  EXPECT_EQ(b.raw_data(), first);
  const HostAllocatorStats s3 = host_allocator_stats();
  EXPECT_EQ(s3.system_allocs, s2.system_allocs);
  EXPECT_EQ(s3.reuses - s2.reuses, 1);
  EXPECT_EQ(s3.cached, 0);
  EXPECT_GE(s3.peak_in_use, s3.in_use);
}

TEST_F(HostAllocator, SteadyTrainingLikeLoopAllocatesNothingNew) {
  Tensor w = ones({256, 256});
  auto step = [&] {
    Tensor x = ones({64, 256});
    Tensor y = ops::relu(ops::matmul(x, w));
    return ops::sum(y).item();
  };
  const double first = step();
  const int64_t after_first = host_allocator_stats().system_allocs;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(step(), first);
  EXPECT_EQ(host_allocator_stats().system_allocs, after_first);
}

// The promise, on a whole training step: once AdamW has its moments and every parameter
// its gradient, forward + backward + step take every block from the cache.
TEST_F(HostAllocator, SteadyMlpTrainingStepsAllocateNothingFromTheSystem) {
  manual_seed(4);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(32, 64), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(64, 10)});
  optim::AdamW opt(model->parameters(), {});
  Tensor x = randn({16, 32});
  Tensor y = from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5});
  auto step = [&] {
    Tensor loss = cross_entropy((*model)(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  step();
  step();
  const HostAllocatorStats warm = host_allocator_stats();
  for (int i = 0; i < 10; ++i) step();
  const HostAllocatorStats after = host_allocator_stats();
  EXPECT_EQ(after.system_allocs, warm.system_allocs);
  EXPECT_GT(after.reuses - warm.reuses, 10 * 10);  // every step reuses its activations and grads
  EXPECT_EQ(after.in_use, warm.in_use);          // and gives them all back
}

TEST_F(HostAllocator, EmptyCacheAndTurningItOff) {
  { Tensor a = empty({4096}); }
  EXPECT_EQ(host_allocator_stats().cached, 16384);
  empty_host_cache();
  EXPECT_EQ(host_allocator_stats().cached, 0);
  set_host_caching(false);
  EXPECT_FALSE(host_caching());
  const int64_t before = host_allocator_stats().system_allocs;
  for (int i = 0; i < 3; ++i) Tensor a = empty({4096});
  EXPECT_EQ(host_allocator_stats().system_allocs - before, 3);  // every one from the system
  EXPECT_EQ(host_allocator_stats().cached, 0);
}

TEST_F(HostAllocator, ABlockFreedIntoAFullCacheGoesBackToTheSystem) {
  set_host_cache_limit(20000);
  { Tensor a = empty({4096}); }  // 16,384 bytes: fits
  EXPECT_EQ(host_allocator_stats().cached, 16384);
  { Tensor b = empty({2048}); }  // 8,192 more would pass the limit
  EXPECT_EQ(host_allocator_stats().cached, 16384);
  { Tensor c = empty({512}); }  // 2,048 more still fit
  EXPECT_EQ(host_allocator_stats().cached, 16384 + 2048);
}

// Ranks are threads: blocks allocated on one thread and freed on another, many at once. Every
// thread writes its own pattern into its blocks and checks it, so two threads handed one block
// would fail (and TSan, which runs this test, would report the race).
TEST_F(HostAllocator, ThreadsAllocateAndFreeConcurrently) {
  constexpr int kThreads = 4, kRounds = 200;
  std::vector<std::vector<Tensor>> handoff(kThreads);
  std::vector<std::thread> threads;
  std::vector<int> bad(kThreads, 0);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        Tensor a = full({64 + 16 * (r % 7)}, static_cast<double>(t));
        Tensor b = full({1000 + r % 3}, static_cast<double>(t + 10));
        for (double v : a.to_vector<double>()) bad[t] += v != t;
        for (double v : b.to_vector<double>()) bad[t] += v != t + 10;
        if (r % 10 == 0) handoff[t].push_back(a);  // freed later, on the main thread
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
  handoff.clear();
  const HostAllocatorStats s = host_allocator_stats();
  EXPECT_GT(s.reuses, 0);
  EXPECT_GE(s.cached, 0);
}

}  // namespace
}  // namespace minipipe
