// The `nccl` backend. How the Communicator contract (parallel/communicator.h) maps onto NCCL:
//
// - Two channels. CPU tensors go through the host communicator (`mpi` or `local`) unchanged; tensors
//   on this rank's GPU through NCCL. A send and its receive must agree on the side (the receiver's
//   TensorSpec::device): the pipeline's data plane is on the GPU, its control plane on the CPU.
// - One NCCL communicator per direction of every pair of ranks (to_[j]: this rank -> j; from_[j]:
//   j -> this rank), each with its own stream. NCCL matches a pair's sends and receives in the order
//   they are issued and a send occupies its stream until the receive runs, so with one stream for
//   both directions two ranks sending to each other before receiving would deadlock, where the
//   contract (and `local`) lets them. All 2(P-1) links are created in one grouped init and connected
//   by a one-element exchange at construction, so no later send blocks the host on a connection (the
//   world communicator connects inside its first collective).
// - Tags. NCCL has none. Every message is a header (magic, tag, dtype, shape: 12 int64) and then
//   the payload. The receiver drains a source in the order it sent: it reads a
//   header back to the host (one synchronisation), allocates the payload, receives it into a
//   per-(source, tag) mailbox, and repeats until the message it waits for is there. So messages
//   with different tags may be received in any order, as on `local` and `mpi`.
// - Collectives on device tensors: ncclAllReduce / ncclBroadcast on a world communicator and its
//   own stream. Every rank gets the same bits, but the order of the adds is NCCL's (ring or tree),
//   not `local`'s rank order: a GPU run matches a CPU run to rounding, not bit for bit.
// - Streams. A send and a collective wait (an event) for what the device's compute stream enqueued
//   before them: the tensor they read, and, for a send, any earlier user of the block its header
//   is written into (it comes from the compute stream's list). A receive does not wait: its
//   header and payload are allocated for
//   the link's own stream (cuda::AllocateOn), so the block cannot be one a pending compute still
//   uses, and the payload lands while the compute stream runs. Handed over, a received tensor is
//   marked used on the compute stream (cuda::use_on_stream), so its block goes back to the link's
//   stream only once compute is done with it. A request's wait() polls the transfer's event. Sent
//   tensors stay alive until their transfer ends. Sending a tensor of this rank's GPU never waits
//   on the host: even its header is written by a kernel on the link's stream.
// - Failure. Every wait polls its event against the timeout, NCCL's asynchronous error and the
//   host communicator's stopped() (a rank thread failed under `local`); on any of them every NCCL
//   communicator of this rank is aborted (ncclCommAbort) and the wait throws, naming the operation.
#include "parallel/nccl/comm_nccl.h"

#ifdef MINIPIPE_WITH_NCCL

#include <cuda_runtime.h>

#include <array>
#include <chrono>
#include <cstring>
#include <exception>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "parallel/nccl/nccl_api.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::parallel {

namespace {

using Clock = std::chrono::steady_clock;
using nccl::api;

constexpr int kMaxDims = 8;
constexpr int kHeader = 4 + kMaxDims;  // magic, tag, dtype, ndim, sizes
constexpr int64_t kMagic = 0x6d696e69;  // "mini"
constexpr int kUidWords = static_cast<int>(sizeof(ncclUniqueId) / sizeof(int64_t));
static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0);
static_assert(kHeader <= cuda::kMaxWords);  // written by one launch_write_words

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::Int64: return ncclInt64;
  }
  return ncclFloat32;
}

// A unique id as a CPU tensor (it travels over the host communicator) and back.
Tensor uid_tensor(const ncclUniqueId& id) {
  Tensor t = zeros({kUidWords}, DType::Int64);
  std::memcpy(t.raw_data(), &id, sizeof(id));
  return t;
}
ncclUniqueId uid_of(const Tensor& t) {
  ncclUniqueId id;
  std::memcpy(&id, t.raw_data(), sizeof(id));
  return id;
}
ncclUniqueId new_uid() {
  ncclUniqueId id;
  NCCL_CHECK(api().get_unique_id(&id));
  return id;
}

// cudaEventQuery / cudaStreamQuery with "not ready" kept out of the thread's last error: the runtime
// records it like a failure, and the next CUDA_LAUNCH_CHECK on this thread would report it.
cudaError_t query(cudaEvent_t e) {
  const cudaError_t st = cudaEventQuery(e);
  if (st == cudaErrorNotReady) (void)cudaGetLastError();
  return st;
}
cudaError_t query(cudaStream_t s) {
  const cudaError_t st = cudaStreamQuery(s);
  if (st == cudaErrorNotReady) (void)cudaGetLastError();
  return st;
}

cudaEvent_t record_event(cudaStream_t stream) {
  cudaEvent_t ev;
  CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(ev, stream));
  return ev;
}

// One direction of one pair: a two-rank NCCL communicator and the stream its transfers run on.
struct Link {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
};

// A message drained from a source: its payload, complete when `done` has fired.
struct Arrived {
  Tensor data;
  cudaEvent_t done = nullptr;
};

// One (source, tag): the k-th receive posted for it takes the k-th message that arrives with it. A
// receive dropped before its wait() still owns its message (on `local` it is taken back): drops
// happen when a wait failed, and a failed wait aborts the communicator anyway.
struct TagBox {
  int64_t posted = 0, arrived = 0;
  std::map<int64_t, Arrived> messages;  // arrived, not yet taken, by arrival index
};

// Draining one source: idle, or a header on its way to `header_host`.
struct Inbound {
  bool header_posted = false;
  Tensor header_device;
  cudaEvent_t header_done = nullptr;
  int64_t* header_host = nullptr;  // pinned, kHeader words
  std::map<int, TagBox> by_tag;
};

class NcclComm;

class NcclSend : public Request {
 public:
  NcclSend(NcclComm& comm, std::vector<Tensor> keep, cudaEvent_t done, ncclComm_t link, std::string what)
      : comm_(comm), keep_(std::move(keep)), done_(done), link_(link), what_(std::move(what)) {}
  ~NcclSend() override;
  Tensor wait() override;
  bool test() override;

 private:
  NcclComm& comm_;
  std::vector<Tensor> keep_;  // the header and payload, read by the transfer until `done_`
  cudaEvent_t done_;
  ncclComm_t link_;
  std::string what_;
};

class NcclRecv : public Request {
 public:
  NcclRecv(NcclComm& comm, TensorSpec expect, int src, int tag, int64_t index, std::string what)
      : comm_(comm), expect_(std::move(expect)), src_(src), tag_(tag), index_(index), what_(std::move(what)) {}
  Tensor wait() override;
  bool test() override;

 private:
  NcclComm& comm_;
  TensorSpec expect_;
  int src_, tag_;
  int64_t index_;  // which message of (src, tag) this receive takes
  std::string what_;
};

class NcclCollective : public Request {
 public:
  NcclCollective(NcclComm& comm, Tensor t, cudaEvent_t done, std::string what)
      : comm_(comm), t_(std::move(t)), done_(done), what_(std::move(what)) {}
  ~NcclCollective() override;
  Tensor wait() override;
  bool test() override;

 private:
  NcclComm& comm_;
  Tensor t_;
  cudaEvent_t done_;
  std::string what_;
};

class NcclComm : public Communicator {
 public:
  NcclComm(Communicator& host, std::unique_ptr<Communicator> owned, int device)
      : host_(host), owned_host_(std::move(owned)), device_(device), rank_(host.rank()), size_(host.size()) {
    set_timeout(host.timeout());
    cuda::context(device_);  // checks that the device exists
    cuda::set_device(device_);
    try {
      make_streams();  // first: a failure here comes before any peer waits inside NCCL for this rank
      check_distinct_gpus();
      init_comms();
      connect_links();
    } catch (...) {
      release(false);  // no destructor runs for a constructor that throws
      throw;
    }
  }

  // A collective of the group, unless an error is unwinding: see release().
  ~NcclComm() override { release(std::uncaught_exceptions() == 0); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda(device_); }
  std::string stopped() const override { return aborted_ ? abort_reason_ : host_.stopped(); }

  std::unique_ptr<Request> isend(const Tensor& t, int dst, int tag, const std::string& what) override {
    check_peer("send", dst);
    check_tag("send", tag);
    const std::string d = describe("send", dst, tag, what);
    MP_CHECK(t.defined(), d, ": the tensor is undefined");
    if (t.device().is_cpu()) return host_.isend(t, dst, tag, what);
    check_running(d);
    sweep(false);
    MP_CHECK(static_cast<int>(t.dim()) <= kMaxDims, d, ": tensors of up to ", kMaxDims, " dims can be sent, got ",
             shape_str(t.sizes()));
    Tensor data = ops::contiguous(t.to(device()));  // from another GPU: through this rank's first
    int64_t h[kHeader] = {kMagic, tag, static_cast<int64_t>(t.dtype()), t.dim()};
    for (int64_t i = 0; i < t.dim(); ++i) h[4 + i] = t.size(i);
    Tensor header = empty({kHeader}, {DType::Int64, device()});
    const Link& l = to_[static_cast<size_t>(dst)];
    cuda::set_device(device_);
    // After what compute enqueued: the payload's producer, and any earlier user of the header's block.
    cuda::stream_wait(l.stream, cuda::compute_stream(device_), device_);
    // The header's values travel in a kernel launch on the link's stream: a copy from host memory
    // would wait for the compute stream (to_() synchronises it), so the rank could not enqueue its
    // next compute before this one has run.
    cuda::launch_write_words(static_cast<int64_t*>(header.raw_data()), h, kHeader, l.stream);
    // Two operations, as the receiver posts them (it learns the payload's size from the header).
    NCCL_CHECK(api().send(header.raw_data(), kHeader, ncclInt64, 1, l.comm, l.stream));
    if (data.numel() > 0)
      NCCL_CHECK(api().send(data.raw_data(), static_cast<size_t>(data.numel()), nccl_type(data.dtype()), 1, l.comm,
                            l.stream));
    return std::make_unique<NcclSend>(*this, std::vector<Tensor>{header, data}, record_event(l.stream), l.comm, d);
  }

  std::unique_ptr<Request> irecv(const TensorSpec& expect, int src, int tag, const std::string& what) override {
    check_peer("recv", src);
    check_tag("recv", tag);
    if (expect.device.is_cpu()) return host_.irecv(expect, src, tag, what);
    const std::string d = describe("recv", src, tag, what);
    MP_CHECK(expect.device == device(), d, ": this rank's NCCL communicator receives on ", device().str(),
             ", not on ", expect.device.str());
    const int64_t index = inbound_[static_cast<size_t>(src)].by_tag[tag].posted++;
    return std::make_unique<NcclRecv>(*this, expect, src, tag, index, d);
  }

  void all_reduce(const Tensor& t, ReduceOp op) override {
    if (t.defined() && t.device().is_cpu()) return host_.all_reduce(t, op);
    const std::string name = "rank " + std::to_string(rank_) + " all_reduce";
    check_reduce(t, op, name);
    // Every rank must pass the same count and dtype, or NCCL would mix them up silently.
    check_same_on_all_ranks(host_, "numel=" + std::to_string(t.numel()) + " dtype=" + dtype_name(t.dtype()),
                            "all_reduce tensors");
    start_all_reduce(t, op, name)->wait();
  }

  // Trusts the caller to pass the same count on every rank (the blocking form checks it first).
  std::unique_ptr<Request> iall_reduce(const Tensor& t, ReduceOp op) override {
    if (t.defined() && t.device().is_cpu()) return host_.iall_reduce(t, op);
    const std::string name = "rank " + std::to_string(rank_) + " iall_reduce";
    check_reduce(t, op, name);
    return start_all_reduce(t, op, name);
  }

  void broadcast(const Tensor& t, int root) override {
    if (t.defined() && t.device().is_cpu()) return host_.broadcast(t, root);
    const std::string name = "rank " + std::to_string(rank_) + " broadcast from rank " + std::to_string(root);
    MP_CHECK(root >= 0 && root < size_, name, ": root is not a rank of this group of ", size_);
    MP_CHECK(t.defined() && t.is_contiguous() && t.device() == device(), name, ": needs a defined, contiguous tensor on ",
             device().str());
    check_running(name);
    // The root's shape and dtype first (over the host), so a mismatch is an error, not garbage.
    const TensorSpec mine{t.sizes(), t.dtype()};
    const std::vector<std::string> all = all_gather_strings(host_, mine.str());
    MP_CHECK(all[static_cast<size_t>(root)] == mine.str(), name, ": rank ", rank_, " passed ", mine.str(), ", root ",
             root, " passed ", all[static_cast<size_t>(root)], " (every rank must pass the same shape and dtype)");
    cuda::set_device(device_);
    cuda::stream_wait(world_stream_, cuda::compute_stream(device_), device_);
    NCCL_CHECK(api().broadcast(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), root,
                               world_, world_stream_));
    NcclCollective(*this, t, record_event(world_stream_), name).wait();
  }

  void barrier() override { host_.barrier(); }

  std::unique_ptr<Communicator> split(int color, int key) override {
    std::unique_ptr<Communicator> sub = host_.split(color, key);
    Communicator& h = *sub;
    return std::make_unique<NcclComm>(h, std::move(sub), device_);
  }

  // ---- used by the requests ----
  // Polls `done` until it fires, the timeout passes, NCCL reports an error on `link`, or the host
  // group is stopped; each but the first aborts this rank's NCCL communicators and throws.
  void wait_event(cudaEvent_t done, ncclComm_t link, const std::string& what) {
    check_running(what);  // after an abort `link` is freed, and the event may fire for a transfer that never ran
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout()));
    for (int spins = 0;; ++spins) {
      const cudaError_t st = query(done);
      if (st == cudaSuccess) return;
      if (st != cudaErrorNotReady) CUDA_CHECK(st);
      check_alive(link, what);
      fail_if_overdue(deadline, what);
      if (spins > 200) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  // Past the deadline: abort this rank's NCCL communicators and throw, naming the wait.
  void fail_if_overdue(Clock::time_point deadline, const std::string& what) {
    if (Clock::now() < deadline) return;
    abort_all(what + " timed out");
    MP_CHECK(false, what, ": nothing after ", timeout(),
             " s (the peer may have stopped, be stuck, or run a different schedule; on nccl a CPU tensor's "
             "send must meet a CPU receive and a GPU tensor's a GPU receive; the timeout is "
             "Communicator::set_timeout / --comm-timeout)");
  }

  bool event_done(cudaEvent_t done) {
    const cudaError_t st = query(done);
    if (st == cudaErrorNotReady) return false;
    CUDA_CHECK(st);
    return true;
  }

  // Message `index` from `src` with `tag`, once its payload has arrived; drains other messages to
  // their mailboxes on the way.
  Tensor take(int src, int tag, int64_t index, const std::string& what) {
    check_running(what);
    const Link& l = from_[static_cast<size_t>(src)];
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout()));
    for (int spins = 0;; ++spins) {
      TagBox& box = inbound_[static_cast<size_t>(src)].by_tag[tag];
      auto it = box.messages.find(index);
      if (it != box.messages.end()) {
        wait_event(it->second.done, l.comm, what);
        Tensor data = std::move(it->second.data);
        CUDA_CHECK(cudaEventDestroy(it->second.done));
        box.messages.erase(it);
        // Compute may use it now (the host saw it arrive); its block is the link stream's.
        cuda::use_on_stream(data, cuda::compute_stream(device_));
        return data;
      }
      if (drain_step(src, what)) continue;
      check_alive(l.comm, what);
      fail_if_overdue(deadline, what);
      if (spins > 200) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  // Whether take(src, tag, index) would return at once; drains what it can without blocking.
  bool ready(int src, int tag, int64_t index, const std::string& what) {
    check_running(what);
    for (;;) {
      const TagBox& box = inbound_[static_cast<size_t>(src)].by_tag[tag];
      auto it = box.messages.find(index);
      if (it != box.messages.end()) return event_done(it->second.done);
      if (!drain_step(src, what)) return false;
    }
  }

  // Tensors a dropped request still lends to a transfer: kept until its event fires.
  void bury(std::vector<Tensor> keep, cudaEvent_t done) { graveyard_.push_back({std::move(keep), done}); }

 private:
  std::vector<ncclComm_t> comms() const {
    std::vector<ncclComm_t> all{world_};
    for (const Link& l : to_) all.push_back(l.comm);
    for (const Link& l : from_) all.push_back(l.comm);
    return all;
  }

  // Every link's two streams, the world's stream and the pinned header buffers.
  void make_streams() {
    to_.resize(static_cast<size_t>(size_));
    from_.resize(static_cast<size_t>(size_));
    inbound_.resize(static_cast<size_t>(size_));
    CUDA_CHECK(cudaStreamCreateWithFlags(&world_stream_, cudaStreamNonBlocking));
    for (int j = 0; j < size_; ++j) {
      if (j == rank_) continue;
      CUDA_CHECK(cudaStreamCreateWithFlags(&to_[static_cast<size_t>(j)].stream, cudaStreamNonBlocking));
      CUDA_CHECK(cudaStreamCreateWithFlags(&from_[static_cast<size_t>(j)].stream, cudaStreamNonBlocking));
      void* pinned = nullptr;
      CUDA_CHECK(cudaMallocHost(&pinned, kHeader * sizeof(int64_t)));
      inbound_[static_cast<size_t>(j)].header_host = static_cast<int64_t*>(pinned);
    }
  }

  // The unique ids (the world's from rank 0 by broadcast, each link's from its sender), then every
  // NCCL communicator of this rank in one group: NCCL initialises them together (each pair's two
  // ranks meet inside it), so the order ranks reach their links in cannot deadlock. The group call
  // blocks the host without a timeout: a rank that fails inside it leaves its peers waiting there
  // (under mpirun the job is aborted; rank threads would wait).
  void init_comms() {
    Tensor world_uid = rank_ == 0 ? uid_tensor(new_uid()) : zeros({kUidWords}, DType::Int64);
    host_.broadcast(world_uid, 0);
    std::vector<ncclUniqueId> to_uid(static_cast<size_t>(size_)), from_uid(static_cast<size_t>(size_));
    std::vector<std::unique_ptr<Request>> sends;
    for (int j = 0; j < size_; ++j)
      if (j != rank_) {
        to_uid[static_cast<size_t>(j)] = new_uid();
        sends.push_back(host_.isend(uid_tensor(to_uid[static_cast<size_t>(j)]), j, 0, "nccl: a link's unique id"));
      }
    for (int j = 0; j < size_; ++j)
      if (j != rank_)
        from_uid[static_cast<size_t>(j)] =
            uid_of(host_.recv({{kUidWords}, DType::Int64}, j, 0, "nccl: a link's unique id"));
    for (auto& s : sends) s->wait();
    NCCL_CHECK(api().group_start());
    NCCL_CHECK(api().comm_init_rank(&world_, size_, uid_of(world_uid), rank_));
    for (int j = 0; j < size_; ++j) {
      if (j == rank_) continue;
      NCCL_CHECK(api().comm_init_rank(&to_[static_cast<size_t>(j)].comm, 2, to_uid[static_cast<size_t>(j)], 0));
      NCCL_CHECK(api().comm_init_rank(&from_[static_cast<size_t>(j)].comm, 2, from_uid[static_cast<size_t>(j)], 1));
    }
    NCCL_CHECK(api().group_end());
  }

  // Frees everything this rank holds. With `meet` (no error unwinding) the group's ranks first meet
  // at a host barrier, so none aborts while a peer still receives from it (over a network a send
  // completes once NCCL's proxy holds the data): destroying a communicator is a collective of its
  // group, in the same order on every rank (as grid.cpp and Pipe do: members go in a fixed order).
  // Then, if every transfer of this rank has finished, what dropped requests lent is freed.
  // Aborted, not destroyed: ncclCommDestroy finalizes, which may wait for the peer of each link,
  // and ranks reach their links in different orders; an abort is local (and, with transfers still
  // queued or an error unwinding, the only way out).
  void release(bool meet) noexcept {
    try {
      cuda::set_device(device_);
    } catch (...) {  // a destructor does not throw; the calls below name their stream
    }
    if (meet) {
      try {
        host_.barrier();
      } catch (...) {  // a peer failed or stopped: abort anyway
      }
      bool idle = !aborted_ && world_stream_ && query(world_stream_) == cudaSuccess;
      for (size_t j = 0; j < to_.size(); ++j)
        if (static_cast<int>(j) != rank_)
          idle = idle && query(to_[j].stream) == cudaSuccess && query(from_[j].stream) == cudaSuccess;
      if (idle) sweep(true);  // nothing can still be running, so the sweep cannot wait forever
    }
    abort_all("the communicator was destroyed");
    for (auto& g : graveyard_) cudaEventDestroy(g.second);
    graveyard_.clear();
    for (Inbound& in : inbound_) {
      for (auto& [tag, box] : in.by_tag)
        for (auto& [index, a] : box.messages) cudaEventDestroy(a.done);
      in.by_tag.clear();
      if (in.header_done) cudaEventDestroy(in.header_done);
      in.header_done = nullptr;
      if (in.header_host) cudaFreeHost(in.header_host);
      in.header_host = nullptr;
      in.header_device = Tensor();
    }
    // Each stream is retired before it goes (cuda::retire_stream): compute is ordered after it,
    // since tensors its transfers used may have just been freed (the graveyard's, when the release
    // is not idle), and the blocks receives were allocated for (received tensors still held among
    // them) become compute's. A stream the abort above left with a queued transfer empties as
    // ncclCommAbort ends its kernels.
    std::vector<cudaStream_t*> streams{&world_stream_};
    for (size_t j = 0; j < to_.size(); ++j) streams.insert(streams.end(), {&to_[j].stream, &from_[j].stream});
    for (cudaStream_t* s : streams) {
      if (!*s) continue;
      try {
        cuda::retire_stream(device_, *s);
      } catch (...) {  // the device has failed (a sticky error): no kernel runs on it after this
      }
      cudaStreamDestroy(*s);
      *s = nullptr;
    }
  }

  void check_reduce(const Tensor& t, ReduceOp op, const std::string& name) {
    MP_CHECK(t.defined() && t.is_contiguous() && t.device() == device(), name, ": needs a defined, contiguous tensor on ",
             device().str(), ", got ", t.defined() ? shape_str(t.sizes()) + " on " + t.device().str() : "an undefined one");
    MP_CHECK(op == ReduceOp::Sum || is_floating(t.dtype()), name, ": Avg needs a floating-point tensor, got ",
             dtype_name(t.dtype()));
    check_running(name);
    sweep(false);
  }

  std::unique_ptr<Request> start_all_reduce(const Tensor& t, ReduceOp op, const std::string& name) {
    cuda::set_device(device_);
    cuda::stream_wait(world_stream_, cuda::compute_stream(device_), device_);
    NCCL_CHECK(api().all_reduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()),
                                op == ReduceOp::Sum ? ncclSum : ncclAvg, world_, world_stream_));
    return std::make_unique<NcclCollective>(*this, t, record_event(world_stream_), name);
  }

  // NCCL refuses two ranks of one communicator on one GPU; say so before it does, naming the ranks.
  void check_distinct_gpus() {
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    std::ostringstream uuid;
    for (unsigned char c : prop.uuid.bytes) uuid << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(c);
    const std::vector<std::string> all = all_gather_strings(host_, uuid.str());
    for (int a = 0; a < size_; ++a)
      for (int b = a + 1; b < size_; ++b)
        MP_CHECK(all[static_cast<size_t>(a)] != all[static_cast<size_t>(b)], "nccl: ranks ", a, " and ", b,
                 " are on the same GPU (", prop.name, ", cuda:", device_, " on rank ", rank_,
                 "), and NCCL needs one GPU per rank. Ranks that share a GPU: --comm local (threads) or --comm mpi, "
                 "with --device cuda");
  }

  // One element each way over every link, all in one group: NCCL connects a pair on its first
  // transfer and blocks the host while it does; here every rank is doing it at once.
  void connect_links() {
    if (size_ == 1) return;
    Tensor out = zeros({1}, {DType::Int64, device()});
    std::vector<Tensor> in;
    for (int j = 0; j < size_; ++j)
      if (j != rank_) {
        in.push_back(zeros({1}, {DType::Int64, device()}));
        // The blocks come from the compute stream's free list: after what compute enqueued (they
        // may be ones a pending kernel still reads), and after the zeros themselves.
        for (const Link* l : {&to_[static_cast<size_t>(j)], &from_[static_cast<size_t>(j)]})
          cuda::stream_wait(l->stream, cuda::compute_stream(device_), device_);
      }
    NCCL_CHECK(api().group_start());
    for (int j = 0, k = 0; j < size_; ++j) {
      if (j == rank_) continue;
      NCCL_CHECK(api().send(out.raw_data(), 1, ncclInt64, 1, to_[static_cast<size_t>(j)].comm, to_[static_cast<size_t>(j)].stream));
      NCCL_CHECK(api().recv(in[static_cast<size_t>(k++)].raw_data(), 1, ncclInt64, 0, from_[static_cast<size_t>(j)].comm,
                            from_[static_cast<size_t>(j)].stream));
    }
    NCCL_CHECK(api().group_end());
    for (int j = 0; j < size_; ++j) {
      if (j == rank_) continue;
      for (const Link* l : {&to_[static_cast<size_t>(j)], &from_[static_cast<size_t>(j)]}) {
        cudaEvent_t ev = record_event(l->stream);
        try {
          wait_event(ev, l->comm, "nccl: connecting rank " + std::to_string(rank_) + " and rank " + std::to_string(j));
        } catch (...) {
          cudaEventDestroy(ev);
          throw;
        }
        CUDA_CHECK(cudaEventDestroy(ev));
      }
    }
  }

  // One step of draining `src` without blocking: post a header receive, or turn an arrived header
  // into a payload receive. Whether anything moved.
  bool drain_step(int src, const std::string& what) {
    Inbound& in = inbound_[static_cast<size_t>(src)];
    const Link& l = from_[static_cast<size_t>(src)];
    cuda::set_device(device_);
    if (!in.header_posted) {
      {
        cuda::AllocateOn on_link(device_, l.stream);  // no wait for compute: the block is the link's
        in.header_device = empty({kHeader}, {DType::Int64, device()});
      }
      NCCL_CHECK(api().recv(in.header_device.raw_data(), kHeader, ncclInt64, 0, l.comm, l.stream));
      CUDA_CHECK(cudaMemcpyAsync(in.header_host, in.header_device.raw_data(), kHeader * sizeof(int64_t),
                                 cudaMemcpyDeviceToHost, l.stream));
      in.header_done = record_event(l.stream);
      in.header_posted = true;
      return true;
    }
    if (!event_done(in.header_done)) return false;
    CUDA_CHECK(cudaEventDestroy(in.header_done));
    in.header_done = nullptr;
    in.header_posted = false;
    in.header_device = Tensor();
    const int64_t* h = in.header_host;
    if (h[0] != kMagic || h[3] < 0 || h[3] > kMaxDims || h[2] < 0 || h[2] > static_cast<int64_t>(DType::Int64)) {
      abort_all(what + ": a message that is not a minipipe tensor");
      MP_CHECK(false, what, ": received a message that is not a minipipe tensor (header ", h[0], ", ", h[1], ", ", h[2],
               ", ", h[3], ")");
    }
    Shape shape(h + 4, h + 4 + h[3]);
    Tensor data;
    {
      cuda::AllocateOn on_link(device_, l.stream);  // lands beside the compute already enqueued
      data = empty(shape, {static_cast<DType>(h[2]), device()});
    }
    if (data.numel() > 0)
      NCCL_CHECK(api().recv(data.raw_data(), static_cast<size_t>(data.numel()), nccl_type(data.dtype()), 0, l.comm,
                            l.stream));
    TagBox& box = in.by_tag[static_cast<int>(h[1])];
    box.messages.emplace(box.arrived++, Arrived{data, record_event(l.stream)});
    return true;
  }

  void check_running(const std::string& what) const {
    if (aborted_) throw Aborted(what + ": this rank's NCCL communicators were aborted (" + abort_reason_ + ")");
  }

  void check_alive(ncclComm_t link, const std::string& what) {
    for (ncclComm_t c : {link, world_}) {
      if (!c) continue;
      ncclResult_t st = ncclSuccess;
      NCCL_CHECK(api().comm_get_async_error(c, &st));
      if (st != ncclSuccess && st != ncclInProgress) {
        const std::string why = std::string(api().get_error_string(st)) + " (" + api().get_last_error(c) + ")";
        abort_all(why);
        MP_CHECK(false, what, ": NCCL failed: ", why);
      }
    }
    const std::string stop = host_.stopped();
    if (!stop.empty()) {
      abort_all(stop);
      throw Aborted(what + ": stopped because " + stop);
    }
  }

  void abort_all(const std::string& why) {
    if (aborted_) return;
    aborted_ = true;
    abort_reason_ = why;
    for (ncclComm_t c : comms())
      if (c) api().comm_abort(c);
    world_ = nullptr;
    for (Link& l : to_) l.comm = nullptr;
    for (Link& l : from_) l.comm = nullptr;
  }

  // Frees what dropped requests lent to finished transfers (all of it, synchronising, when `all`).
  void sweep(bool all) {
    std::erase_if(graveyard_, [&](std::pair<std::vector<Tensor>, cudaEvent_t>& g) {
      if (all) cudaEventSynchronize(g.second);
      else if (query(g.second) != cudaSuccess) return false;
      cudaEventDestroy(g.second);
      return true;
    });
  }

  Communicator& host_;
  std::unique_ptr<Communicator> owned_host_;  // a split's host group; null for the world
  int device_, rank_, size_;
  ncclComm_t world_ = nullptr;
  cudaStream_t world_stream_ = nullptr;
  std::vector<Link> to_, from_;   // by peer rank
  std::vector<Inbound> inbound_;  // by source rank
  std::vector<std::pair<std::vector<Tensor>, cudaEvent_t>> graveyard_;
  bool aborted_ = false;
  std::string abort_reason_;
};

NcclSend::~NcclSend() {
  if (keep_.empty()) return;
  if (query(done_) == cudaSuccess) cudaEventDestroy(done_);  // destructors do not throw
  else comm_.bury(std::move(keep_), done_);
}

Tensor NcclSend::wait() {
  comm_.wait_event(done_, link_, what_);
  CUDA_CHECK(cudaEventDestroy(done_));
  keep_.clear();
  return {};
}

bool NcclSend::test() { return keep_.empty() || comm_.event_done(done_); }

Tensor NcclRecv::wait() {
  Tensor data = comm_.take(src_, tag_, index_, what_);
  MP_CHECK(expect_.fits(data.sizes(), data.dtype()), what_, ": got ", TensorSpec{data.sizes(), data.dtype()}.str(),
           ", expected ", expect_.str());
  return data;
}

bool NcclRecv::test() { return comm_.ready(src_, tag_, index_, what_); }

NcclCollective::~NcclCollective() {
  if (!t_.defined()) return;
  if (query(done_) == cudaSuccess) cudaEventDestroy(done_);  // destructors do not throw
  else comm_.bury({t_}, done_);
}

Tensor NcclCollective::wait() {
  comm_.wait_event(done_, nullptr, what_);
  CUDA_CHECK(cudaEventDestroy(done_));
  t_ = Tensor();
  return {};
}

bool NcclCollective::test() { return !t_.defined() || comm_.event_done(done_); }

}  // namespace

bool nccl_is_built() { return true; }

std::unique_ptr<Communicator> make_nccl(Communicator& host, int device) {
  return std::make_unique<NcclComm>(host, nullptr, device);
}

}  // namespace minipipe::parallel

#else  // no NCCL in this build

namespace minipipe::parallel {

bool nccl_is_built() { return false; }

std::unique_ptr<Communicator> make_nccl(Communicator&, int) {
  MP_CHECK(false, "this build of minipipe has no NCCL backend: it needs the CUDA toolkit with NCCL "
                  "(/usr/local/cuda/include/nccl.h); configure again with it present (cmake -DMINIPIPE_CUDA=ON)");
  return nullptr;
}

}  // namespace minipipe::parallel

#endif
