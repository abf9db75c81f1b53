// CUDA checks. Without a device (as on the CI machines) the availability functions must still
// agree with each other and with the machine (no /dev/nvidiaN node: no device), and asking for a
// device that is not there is a clear error; with one, the runtime must answer for every device it
// counts, copies must round-trip, the caching allocator must reuse and count, and an op mixing
// devices must name both. The layout the CUDA reductions give their kernels is plain tensor code,
// and the allocator's bookkeeping (size classes, per-stream lists, blocks waiting for another
// stream) has no CUDA in it: both are checked here on every machine, the bookkeeping with fake
// streams. Kernel-vs-CPU comparisons: tests/test_cuda_ops.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <regex>
#include <thread>
#include <vector>

#include "tensor/device.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/cuda/block_cache.h"
#include "tensor/cuda/rows.h"
#ifdef MINIPIPE_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda/context.h"
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

// ---- the device allocator's bookkeeping (tensor/cuda/block_cache.h), with fake streams: a stream
// is a count of work enqueued and of work finished, an event the enqueued count when recorded ----
namespace {
class FakeStreams final : public cuda::StreamEvents {
 public:
  struct Stream {
    int64_t enqueued = 0, finished = 0;
  };
  void* record(void* stream) override {
    if (records_left == 0) return nullptr;
    if (records_left > 0) --records_left;
    auto* s = static_cast<Stream*>(stream);
    events.push_back(std::make_unique<Event>(Event{s, s->enqueued}));
    return events.back().get();
  }
  bool done(void* e) override {
    const auto* ev = static_cast<Event*>(e);
    return ev->stream->finished >= ev->at;
  }
  void destroy(void* e) override {
    std::erase_if(events, [&](const std::unique_ptr<Event>& p) { return p.get() == e; });
  }
  size_t live() const { return events.size(); }
  int records_left = -1;  // how many more events can be made (-1: any number)

 private:
  struct Event {
    Stream* stream;
    int64_t at;
  };
  std::vector<std::unique_ptr<Event>> events;
};

struct CudaBlockCache : ::testing::Test {
  FakeStreams fake;
  FakeStreams::Stream compute_s, link_s, other_s;
  void* compute = &compute_s;
  void* link = &link_s;
  void* other = &other_s;
  char memory[4] = {};
  void* a = &memory[0];
  void* b = &memory[1];
  cuda::BlockCache cache{fake};
};
}  // namespace

TEST_F(CudaBlockCache, AFreedBlockIsReusedOnItsOwnStreamAtOnceAndNeverOnAnother) {
  cache.lend(a, 1024, link);
  EXPECT_EQ(cache.counts().in_use, 1024);
  cache.give_back(a);
  EXPECT_EQ(cache.counts().in_use, 0);
  EXPECT_EQ(cache.counts().cached, 1024);
  EXPECT_EQ(cache.counts().waiting, 0);
  EXPECT_EQ(cache.take(compute, 1024), nullptr) << "a block of the link's stream went to the compute stream";
  EXPECT_EQ(cache.take(link, 512), nullptr) << "a block of another size class was handed out";
  EXPECT_EQ(cache.take(link, 1024), a);
  EXPECT_EQ(cache.counts().reuses, 1);
  EXPECT_EQ(cache.counts().in_use, 1024);
  EXPECT_EQ(cache.counts().cached, 0);
  EXPECT_EQ(fake.live(), 0u);
}

// A received tensor: allocated for the link's stream, then used by compute. Its block must not go
// back to the link before compute has run what was enqueued when it was freed.
TEST_F(CudaBlockCache, ABlockUsedOnAnotherStreamWaitsForThatStream) {
  cache.lend(a, 1024, link);
  cache.use_on(a, compute);
  cache.use_on(a, compute);  // once is enough
  cache.use_on(a, link);     // its own stream: nothing to wait for
  compute_s.enqueued = 5;    // kernels reading it, not yet run
  compute_s.finished = 3;
  cache.give_back(a);
  EXPECT_EQ(fake.live(), 1u);
  EXPECT_EQ(cache.counts().cached, 1024);
  EXPECT_EQ(cache.counts().waiting, 1024);
  compute_s.enqueued = 9;  // later work does not matter
  compute_s.finished = 4;
  EXPECT_EQ(cache.take(link, 1024), nullptr) << "handed out while compute may still read it";
  compute_s.finished = 5;
  EXPECT_EQ(cache.take(compute, 1024), nullptr) << "a block of the link's stream went to the compute stream";
  EXPECT_EQ(cache.counts().waiting, 0) << "the finished wait was not collected";
  EXPECT_EQ(cache.counts().cached, 1024);
  EXPECT_EQ(cache.take(link, 1024), a);
  EXPECT_EQ(fake.live(), 0u) << "the event was not destroyed";
}

TEST_F(CudaBlockCache, ABlockUsedOnSeveralStreamsWaitsForAllOfThem) {
  cache.lend(a, 2048, link);
  cache.use_on(a, compute);
  cache.use_on(a, other);
  compute_s.enqueued = other_s.enqueued = 1;
  cache.give_back(a);
  EXPECT_EQ(fake.live(), 2u);
  compute_s.finished = 1;
  EXPECT_EQ(cache.take(link, 2048), nullptr);
  EXPECT_EQ(fake.live(), 1u) << "a fired event is destroyed as soon as it is seen";
  other_s.finished = 1;
  EXPECT_EQ(cache.take(link, 2048), a);
}

TEST_F(CudaBlockCache, ARetiredStreamsBlocksBecomeTheComputeStreams) {
  cache.lend(a, 1024, link);  // a received tensor still held
  cache.lend(b, 1024, link);
  cache.use_on(a, compute);
  cache.give_back(b);  // cached for the link
  cache.retire_stream(link, compute);
  EXPECT_EQ(cache.counts().cached, 1024);
  EXPECT_EQ(cache.counts().in_use, 1024);
  EXPECT_EQ(cache.take(link, 1024), nullptr);
  EXPECT_EQ(cache.take(compute, 1024), b);
  compute_s.enqueued = 1;  // compute is now a's own stream: nothing to wait for
  cache.give_back(a);
  EXPECT_EQ(cache.counts().waiting, 0);
  EXPECT_EQ(cache.take(compute, 1024), a);
  EXPECT_EQ(fake.live(), 0u);
}

TEST_F(CudaBlockCache, UsesOnARetiredStreamAreWaitedForOnTheStreamThatReplacesIt) {
  cache.lend(a, 1024, other);
  cache.use_on(a, link);
  cache.retire_stream(link, compute);  // compute now runs after everything on the link
  compute_s.enqueued = 2;
  cache.give_back(a);
  EXPECT_EQ(cache.counts().waiting, 1024);
  EXPECT_EQ(cache.take(other, 1024), nullptr);
  compute_s.finished = 2;
  EXPECT_EQ(cache.take(other, 1024), a);
  // A block waiting when its stream retires lands on the replacing stream's list.
  cache.lend(b, 512, link);
  cache.use_on(b, other);
  other_s.enqueued = 1;
  cache.give_back(b);
  cache.retire_stream(link, compute);
  other_s.finished = 1;
  EXPECT_EQ(cache.take(link, 512), nullptr);
  EXPECT_EQ(cache.take(compute, 512), b);
}

TEST_F(CudaBlockCache, TakeAllEmptiesTheCacheWaitingBlocksIncluded) {
  cache.lend(a, 1024, link);
  cache.lend(b, 4096, compute);
  cache.use_on(a, compute);
  compute_s.enqueued = 1;
  cache.give_back(a);
  cache.give_back(b);
  auto all = cache.take_all();
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::pair<void*, size_t>>{{a, 1024}, {b, 4096}}));
  EXPECT_EQ(cache.counts().cached, 0);
  EXPECT_EQ(cache.counts().waiting, 0);
  EXPECT_EQ(fake.live(), 0u);
  EXPECT_EQ(cache.take(compute, 4096), nullptr);
}

// Without an event there is no knowing when the other stream is done: the block waits until the
// whole device is (take_all, after a device synchronisation), and the events already made go.
TEST_F(CudaBlockCache, ABlockWhoseEventCannotBeMadeWaitsForTakeAll) {
  cache.lend(a, 1024, link);
  cache.use_on(a, compute);
  cache.use_on(a, other);
  fake.records_left = 1;  // compute's event is made, other's is not
  cache.give_back(a);
  EXPECT_EQ(fake.live(), 0u) << "the event made before the failure was not destroyed";
  EXPECT_EQ(cache.counts().in_use, 0);
  EXPECT_EQ(cache.counts().cached, 1024);
  EXPECT_EQ(cache.counts().waiting, 1024);
  compute_s.finished = other_s.finished = 100;
  EXPECT_EQ(cache.take(link, 1024), nullptr) << "handed out with no event to say it was free";
  EXPECT_EQ(cache.take_all(), (std::vector<std::pair<void*, size_t>>{{a, 1024}}));
  EXPECT_EQ(cache.counts().cached, 0);
}

TEST_F(CudaBlockCache, PeakFollowsTheMostLentSinceItsReset) {
  cache.lend(a, 1024, compute);
  cache.lend(b, 512, compute);
  cache.give_back(a);
  EXPECT_EQ(cache.counts().peak, 1536);
  cache.reset_peak();
  EXPECT_EQ(cache.counts().peak, 512);
  EXPECT_EQ(cache.take(compute, 1024), a);
  EXPECT_EQ(cache.counts().peak, 1536);
}

TEST_F(CudaBlockCache, BlocksThatAreNotLentAreErrors) {
  auto expect_error = [](auto f, const std::string& want) {
    try {
      f();
      ADD_FAILURE() << "expected an error containing: " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error([&] { cache.give_back(a); }, "is given back but is not lent");
  expect_error([&] { cache.use_on(a, compute); }, "which is not lent");
  cache.lend(a, 512, compute);
  expect_error([&] { cache.lend(a, 512, compute); }, "is lent twice");
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

// What the nccl communicator's receives rely on: a block allocated for another stream (AllocateOn)
// goes back to that stream's list, not the compute stream's; marked used on compute, it waits for
// compute; when its stream retires, its blocks become the compute stream's.
TEST(CudaAllocator, BlocksOfAnotherStreamStayWithItUntilItRetires) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  cuda::empty_cache();
  cuda::set_device(0);
  cudaStream_t link = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&link, cudaStreamNonBlocking), cudaSuccess);
  const int64_t n = int64_t{3} << 18;  // 3 MiB of float32
  auto on_link = [&] {
    cuda::AllocateOn scope(0, link);
    return empty({n}, Device::cuda(0));
  };
  { Tensor t = on_link(); }
  const auto cached_on_link = cuda::allocator_stats(0);
  { Tensor t = empty({n}, Device::cuda(0)); }
  const auto after_compute = cuda::allocator_stats(0);
  EXPECT_EQ(after_compute.reuses, cached_on_link.reuses) << "the compute stream took the link's block";
  EXPECT_EQ(after_compute.device_allocs, cached_on_link.device_allocs + 1);
  // Freed while the compute stream is held (a host function waits for `go`) with a kernel writing
  // it queued: the block waits for compute, it is not back on the link's list.
  std::atomic<bool> go{false};
  auto hold = [](void* flag) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!static_cast<std::atomic<bool>*>(flag)->load() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  };
  ASSERT_EQ(cudaLaunchHostFunc(cuda::compute_stream(0), hold, &go), cudaSuccess);
  {
    Tensor t = on_link();
    cuda::use_on_stream(t, cuda::compute_stream(0));
    ops::fill_(t, 1.0);  // queued on the compute stream behind the host function
  }
  const auto held = cuda::allocator_stats(0);
  EXPECT_EQ(held.reuses, after_compute.reuses + 1);
  EXPECT_EQ(held.waiting, 3 << 20) << "freed while compute may still write it, and not waiting for compute";
  go = true;
  cuda::synchronize(0);  // the event recorded on compute when it was freed has fired
  { Tensor t = on_link(); }
  EXPECT_EQ(cuda::allocator_stats(0).waiting, 0);
  const auto reused = cuda::allocator_stats(0);
  EXPECT_EQ(reused.reuses, after_compute.reuses + 2);
  EXPECT_EQ(reused.device_allocs, after_compute.device_allocs);
  cuda::retire_stream(0, link);
  ASSERT_EQ(cudaStreamDestroy(link), cudaSuccess);
  {
    Tensor a = empty({n}, Device::cuda(0)), b = empty({n}, Device::cuda(0));  // both blocks, now compute's
  }
  EXPECT_EQ(cuda::allocator_stats(0).reuses, reused.reuses + 2);
  EXPECT_EQ(cuda::allocator_stats(0).device_allocs, reused.device_allocs);
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
