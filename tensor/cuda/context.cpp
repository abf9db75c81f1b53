// Per-device streams, events and cuBLAS handles (context.h), and the runtime questions of
// runtime.h: device count and name, synchronize, the TF32 switch.
#include "tensor/cuda/context.h"

#include <array>
#include <atomic>
#include <memory>
#include <mutex>

#include "tensor/cuda/runtime.h"

namespace minipipe::cuda {

namespace {

constexpr int kMaxDevices = 64;
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;  // what cuBLAS asks for on Hopper

std::mutex contexts_mutex;
std::array<std::atomic<DeviceContext*>, kMaxDevices> contexts{};  // never freed: streams outlive static destruction
thread_local int current_device = -1;
std::atomic<bool> tf32{false};

}  // namespace

int device_count() {
  int n = 0;
  // No driver or no device is not an error here: it means "run on the CPU".
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

void set_device(int device) {
  if (device == current_device) return;
  const cudaError_t err = cudaSetDevice(device);
  MP_CHECK(err == cudaSuccess, "cudaSetDevice(", device, ") for cuda:", device, " failed: ", cudaGetErrorName(err), ": ",
           cudaGetErrorString(err));
  current_device = device;
}

DeviceContext& context(int device) {
  MP_CHECK(device >= 0 && device < kMaxDevices, "cuda:", device, " is not a valid device index");
  if (DeviceContext* c = contexts[device].load(std::memory_order_acquire)) [[likely]]
    return *c;
  std::lock_guard<std::mutex> lock(contexts_mutex);
  if (DeviceContext* c = contexts[device].load(std::memory_order_acquire)) return *c;
  const int n = device_count();
  MP_CHECK(device < n, "cuda:", device, " does not exist: this machine has ", n, " CUDA device", n == 1 ? "" : "s");
  auto c = std::make_unique<DeviceContext>();
  c->index = device;
  int previous = 0;
  CUDA_CHECK(cudaGetDevice(&previous));
  current_device = -1;  // unknown until restored below (an error on the way leaves it unknown)
  CUDA_CHECK(cudaSetDevice(device));
  // Non-blocking: never implicitly ordered with the legacy default stream of other libraries.
  CUDA_CHECK(cudaStreamCreateWithFlags(&c->compute, cudaStreamNonBlocking));
  CUDA_CHECK(cudaSetDevice(previous));
  current_device = previous;
  contexts[device].store(c.get(), std::memory_order_release);
  return *c.release();
}

cublasHandle_t cublas_handle(int device) {
  DeviceContext& c = context(device);
  std::call_once(c.cublas_once, [&] {  // an error leaves the flag unset: the next GEMM tries again
    set_device(device);
    // The workspace first: a handle made and then lost to a failing cudaMalloc would leak each try.
    void* workspace = nullptr;
    CUDA_CHECK(cudaMalloc(&workspace, kCublasWorkspaceBytes));
    cublasHandle_t h = nullptr;
    const cublasStatus_t st = cublas().create(&h);
    if (st != CUBLAS_STATUS_SUCCESS) cudaFree(workspace);
    CUBLAS_CHECK(st);
    CUBLAS_CHECK(cublas().set_stream(h, c.compute));
    CUBLAS_CHECK(cublas().set_workspace(h, workspace, kCublasWorkspaceBytes));
    c.cublas = h;
    c.cublas_workspace = workspace;
  });
  return c.cublas;
}

void stream_wait(cudaStream_t waiter, cudaStream_t producer, int producer_device) {
  if (waiter == producer) return;
  set_device(producer_device);  // an event is recorded on a stream of its own device
  // A fresh event per wait keeps this thread-safe; creation is cheap with timing disabled.
  cudaEvent_t ev;
  CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  const char* call = "cudaEventRecord";
  cudaError_t err = cudaEventRecord(ev, producer);
  if (err == cudaSuccess) {
    call = "cudaStreamWaitEvent";
    err = cudaStreamWaitEvent(waiter, ev, 0);
  }
  cudaEventDestroy(ev);  // released once the wait has consumed it (and not leaked when it failed)
  MP_CHECK(err == cudaSuccess, call, " in stream_wait failed: ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
}

void synchronize(int device) { CUDA_CHECK(cudaStreamSynchronize(compute_stream(device))); }

void set_allow_tf32(bool allow) { tf32.store(allow, std::memory_order_relaxed); }
bool allow_tf32() { return tf32.load(std::memory_order_relaxed); }

}  // namespace minipipe::cuda
