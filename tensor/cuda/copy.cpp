// CUDA copies: within a device (cudaMemcpyAsync when the bytes are one contiguous run, else the
// strided cast kernel of copy.cu), fill, and copies across devices — host -> device, device ->
// host, device -> device (peer). Across devices the copy is complete when copy_ returns (the CPU
// may then reuse or read its buffer). Large host copies go through two pinned staging buffers per
// device, double-buffered: the CPU fills one while the DMA engine drains the other; pageable
// memory would be staged by the driver anyway, one chunk at a time, without the overlap.
#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

#include "tensor/cuda/ops_common.h"

namespace minipipe::cuda {

namespace {

constexpr size_t kStageBytes = size_t{4} << 20;      // each pinned buffer
constexpr size_t kDirectBytes = size_t{256} << 10;   // below this, one plain cudaMemcpyAsync

struct Staging {
  std::mutex mu;
  void* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
};

Staging& staging_slot(int device) {
  static auto* all = new std::array<Staging, 64>();  // never destroyed (pinned memory lives to exit)
  return (*all)[static_cast<size_t>(device)];
}

// The caller holds s.mu: one copy at a time uses a device's buffers.
// Each buffer and event is kept only once made, so a failure half-way (pinned memory is scarce in
// containers) leaves the rest to the next call, never a null buffer behind a set one.
void ensure_buffers(Staging& s, int device) {
  set_device(device);
  for (int i = 0; i < 2; ++i) {
    if (!s.buf[i]) {
      void* b = nullptr;
      CUDA_CHECK(cudaMallocHost(&b, kStageBytes));
      s.buf[i] = b;
    }
    if (!s.done[i]) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      s.done[i] = e;
    }
  }
}

void host_to_device(void* dst, const void* src, size_t bytes, int device) {
  cudaStream_t stream = compute_stream(device);
  if (bytes < kDirectBytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return;
  }
  Staging& s = staging_slot(device);
  std::lock_guard<std::mutex> lock(s.mu);
  ensure_buffers(s, device);
  for (size_t off = 0, i = 0; off < bytes; off += kStageBytes, i ^= 1) {
    const size_t len = std::min(kStageBytes, bytes - off);
    CUDA_CHECK(cudaEventSynchronize(s.done[i]));  // the DMA from this buffer two chunks ago is done
    std::memcpy(s.buf[i], static_cast<const char*>(src) + off, len);
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, s.buf[i], len, cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaEventRecord(s.done[i], stream));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

void device_to_host(void* dst, const void* src, size_t bytes, int device) {
  cudaStream_t stream = compute_stream(device);  // after every kernel that wrote src
  if (bytes < kDirectBytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return;
  }
  Staging& s = staging_slot(device);
  std::lock_guard<std::mutex> lock(s.mu);
  ensure_buffers(s, device);
  // Chunk c goes to buffer c % 2; while it is in flight the CPU copies chunk c - 1 out.
  const size_t chunks = (bytes + kStageBytes - 1) / kStageBytes;
  auto len_of = [&](size_t c) { return std::min(kStageBytes, bytes - c * kStageBytes); };
  for (size_t c = 0; c <= chunks; ++c) {
    if (c < chunks) {
      CUDA_CHECK(cudaMemcpyAsync(s.buf[c % 2], static_cast<const char*>(src) + c * kStageBytes, len_of(c),
                                 cudaMemcpyDeviceToHost, stream));
      CUDA_CHECK(cudaEventRecord(s.done[c % 2], stream));
    }
    if (c > 0) {
      CUDA_CHECK(cudaEventSynchronize(s.done[(c - 1) % 2]));
      std::memcpy(static_cast<char*>(dst) + (c - 1) * kStageBytes, s.buf[(c - 1) % 2], len_of(c - 1));
    }
  }
}

void device_to_device(void* dst, int dst_device, const void* src, int src_device, size_t bytes) {
  cudaStream_t dst_stream = compute_stream(dst_device);
  stream_wait(dst_stream, context(src_device).compute, src_device);  // src is written before we read it
  set_device(dst_device);
  CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, bytes, dst_stream));
  CUDA_CHECK(cudaStreamSynchronize(dst_stream));  // src may be freed (on its own stream) once we return
}

}  // namespace

void copy_across(const Tensor& dst, const Tensor& src) {
  MP_INTERNAL_ASSERT(dst.sizes() == src.sizes() && dst.dtype() == src.dtype() && src.is_contiguous(),
                     "copy_across: dispatch hands over equal shapes and dtypes and a contiguous source");
  cpu::check_writable("copy_", dst);
  if (!dst.is_contiguous()) {  // land contiguous on dst's device, then scatter there
    Tensor tmp = empty(dst.sizes(), dst.options());
    copy_across(tmp, src);
    ops::copy_(dst, tmp);
    return;
  }
  const size_t bytes = dst.nbytes();
  if (bytes == 0) return;
  const Device dd = dst.device(), sd = src.device();
  if (sd.is_cpu()) return host_to_device(dst.raw_data(), src.raw_data(), bytes, dd.index);
  if (dd.is_cpu()) return device_to_host(dst.raw_data(), src.raw_data(), bytes, sd.index);
  MP_CHECK(dd.is_cuda() && sd.is_cuda(), "copy_: no CUDA path from ", sd.str(), " to ", dd.str());
  device_to_device(dst.raw_data(), dd.index, src.raw_data(), sd.index, bytes);
}

void copy_(const Tensor& dst, const Tensor& src) {
  cpu::check_writable("copy_", dst);
  MP_CHECK(ops::broadcast_shapes(dst.sizes(), src.sizes(), "copy_") == dst.sizes(), "copy_: cannot copy shape ",
           shape_str(src.sizes()), " into ", shape_str(dst.sizes()));
  cudaStream_t stream = stream_of(dst);
  if (dst.dtype() == src.dtype() && dst.sizes() == src.sizes() && dst.is_contiguous() && src.is_contiguous()) {
    if (dst.nbytes() > 0 && dst.raw_data() != src.raw_data())
      CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const auto g = geometry<2>(dst.sizes(), {dst.strides(), cpu::broadcast_strides(src, dst.sizes())}, "copy_");
  launch_copy(dst.raw_data(), scalar_type(dst.dtype()), src.raw_data(), scalar_type(src.dtype()), g, dst.numel(),
              stream);
}

void fill_(const Tensor& t, double value) {
  cpu::check_writable("fill_", t);
  MP_CHECK(t.dtype() != DType::Int64 || (value >= -0x1p63 && value < 0x1p63), "fill_: cannot convert value ", value,
           " to int64 (NaN, infinite, or outside [-2^63, 2^63))");
  const auto g = geometry<1>(t.sizes(), {t.strides()}, "fill_");
  launch_fill(t.raw_data(), scalar_type(t.dtype()), value, g, t.numel(), stream_of(t));
}

}  // namespace minipipe::cuda
