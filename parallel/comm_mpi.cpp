// The `mpi` backend (OpenMPI). A message is two MPI messages on the same tag — a header (dtype and
// shape) and the data — posted together on both sides, so MPI's ordering matches them even with
// several receives outstanding; the receiver checks the header against what it expects before it
// uses the data. Every operation is non-blocking and polled against the timeout.
#include "parallel/comm_mpi.h"

#include <cstdlib>

#ifdef MINIPIPE_WITH_MPI

#include <mpi.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"

// Names the call, where it was made, and MPI's own error string.
#define MPI_CHECK(call)                                                                                  \
  do {                                                                                                   \
    const int mpi_rc_ = (call);                                                                          \
    if (mpi_rc_ != MPI_SUCCESS) {                                                                        \
      char mpi_msg_[MPI_MAX_ERROR_STRING];                                                               \
      int mpi_len_ = 0;                                                                                  \
      MPI_Error_string(mpi_rc_, mpi_msg_, &mpi_len_);                                                    \
      MP_CHECK(false, #call, " failed (", __FILE__, ":", __LINE__, "): ", std::string(mpi_msg_, mpi_len_)); \
    }                                                                                                    \
  } while (0)

namespace minipipe::parallel {

namespace {

using Clock = std::chrono::steady_clock;

// MPI is initialised on first use and finalised at exit, unless the program did it itself.
struct MpiSession {
  MpiSession() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      owned = true;
    }
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned && !finalized) MPI_Finalize();
  }
  bool owned = false;
};

void ensure_initialized() { static MpiSession session; }

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

// Header of a message: magic, dtype, ndim, up to kMaxDims sizes.
constexpr int kMaxDims = 8;
constexpr int kHeader = 3 + kMaxDims;
constexpr int64_t kMagic = 0x6d696e69;   // "mini"
constexpr int64_t kChunk = int64_t{1} << 30;  // bytes per MPI message: counts are ints

std::array<int64_t, kHeader> header_of(const TensorSpec& s) {
  MP_CHECK(static_cast<int>(s.shape.size()) <= kMaxDims, "mpi: tensors of up to ", kMaxDims,
           " dims can be sent, got ", s.str());
  std::array<int64_t, kHeader> h{};
  h[0] = kMagic;
  h[1] = static_cast<int64_t>(s.dtype);
  h[2] = static_cast<int64_t>(s.shape.size());
  for (size_t i = 0; i < s.shape.size(); ++i) h[3 + i] = s.shape[i];
  return h;
}

TensorSpec spec_of(const std::array<int64_t, kHeader>& h) {
  TensorSpec s;
  s.dtype = static_cast<DType>(h[1]);
  for (int64_t i = 0; i < h[2]; ++i) s.shape.push_back(h[static_cast<size_t>(3 + i)]);
  return s;
}

int64_t num_chunks(int64_t bytes) { return std::max<int64_t>(1, (bytes + kChunk - 1) / kChunk); }

// Polls `reqs` until all are done, the deadline passes (Error) — never blocking inside MPI.
void poll(std::vector<MPI_Request>& reqs, double timeout, const std::string& what) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  for (int spins = 0;; ++spins) {
    bool all = true;
    for (MPI_Request& r : reqs) {
      if (r == MPI_REQUEST_NULL) continue;
      int done = 0;
      MPI_CHECK(MPI_Test(&r, &done, MPI_STATUS_IGNORE));
      all = all && done;
    }
    if (all) return;
    MP_CHECK(Clock::now() < deadline, what, ": nothing after ", timeout,
             " s (the peer may have stopped, be stuck, or run a different schedule; the timeout is "
             "Communicator::set_timeout / --comm-timeout)");
    if (spins > 200) std::this_thread::sleep_for(std::chrono::microseconds(20));  // leave the core to compute
  }
}

class MpiComm;

// A request dropped before it completed (its wait threw): a receive is cancelled, a send left to
// finish on its own; either way MPI may forget the handle — but may still read or write its buffer,
// which is therefore kept alive (leaked: the job is ending with an error). Returns whether any was.
bool release(std::vector<MPI_Request>& reqs, bool cancel, const Tensor& buffer) {
  bool pending = false;
  for (MPI_Request& r : reqs)
    if (r != MPI_REQUEST_NULL) {
      if (cancel) MPI_Cancel(&r);
      MPI_Request_free(&r);
      pending = true;
    }
  if (pending && buffer.defined()) new Tensor(buffer);  // NOLINT: deliberately never freed
  return pending;
}

// Tests each request (so MPI progresses them); true when all are done.
bool all_done(std::vector<MPI_Request>& reqs) {
  bool all = true;
  for (MPI_Request& r : reqs) {
    int done = 0;
    if (r != MPI_REQUEST_NULL) MPI_CHECK(MPI_Test(&r, &done, MPI_STATUS_IGNORE));
    all = all && r == MPI_REQUEST_NULL;
  }
  return all;
}

class MpiSend : public Request {
 public:
  MpiSend(Tensor data, std::vector<MPI_Request> reqs, double timeout, std::string what)
      : data_(std::move(data)), reqs_(std::move(reqs)), timeout_(timeout), what_(std::move(what)) {}
  ~MpiSend() override { release(reqs_, false, data_); }
  Tensor wait() override {
    poll(reqs_, timeout_, what_);
    data_ = Tensor();
    return {};
  }
  bool test() override { return all_done(reqs_); }

 private:
  Tensor data_;  // kept alive until MPI is done reading it
  std::array<int64_t, kHeader> header_{};
  std::vector<MPI_Request> reqs_;
  double timeout_;
  std::string what_;
  friend class MpiComm;
};

class MpiRecv : public Request {
 public:
  MpiRecv(TensorSpec expect, double timeout, std::string what)
      : expect_(std::move(expect)), timeout_(timeout), what_(std::move(what)) {}
  ~MpiRecv() override { release(reqs_, true, data_); }
  Tensor wait() override {
    std::vector<MPI_Request> head{reqs_[0]};
    poll(head, timeout_, what_);
    reqs_[0] = MPI_REQUEST_NULL;
    MP_CHECK(header_[0] == kMagic, what_, ": received a message that is not a minipipe tensor");
    const TensorSpec got = spec_of(header_);
    MP_CHECK(expect_.fits(got.shape, got.dtype), what_, ": got ", got.str(), ", expected ", expect_.str());
    poll(reqs_, timeout_, what_);
    return data_.to(expect_.device);  // received in host memory; a device receiver gets a copy there
  }
  bool test() override { return all_done(reqs_); }

 private:
  TensorSpec expect_;
  Tensor data_;
  std::array<int64_t, kHeader> header_{};
  std::vector<MPI_Request> reqs_;
  double timeout_;
  std::string what_;
  friend class MpiComm;
};

// The all_reduce both backends compute the same way: rank r adds slice r of every rank's tensor in
// rank order — rank 0's value first, as the `local` backend does — and the reduced slices are then
// gathered everywhere. So every rank holds the same bits, the same bits as under `local`, whatever
// algorithm MPI would have picked for MPI_Allreduce. Phase 1 is MPI_Ialltoallv (slice j to rank j)
// on the communicator; phase 2, after this rank's sum, MPI_Iallgatherv on a duplicate of it.
// Collectives match in the order they are posted, so every rank must post phase 2s in one order:
// the reductions queue per communicator (ReduceQueue) and post them in the order they started.
struct ReduceState {
  Tensor t, incoming;
  Tensor device_result;  // a device tensor reduced through `t`, its host copy: gets the result at the end
  ReduceOp op = ReduceOp::Sum;
  int rank = 0, size = 1;
  std::vector<int64_t> bounds;
  std::vector<int> counts, displs;
  MPI_Request req = MPI_REQUEST_NULL;
  int phase = 1;  // 1: slices travelling to their reducers, 2: sums travelling back, 3: done

  void reduce_my_slice() {
    const int64_t len = counts[static_cast<size_t>(rank)], at = bounds[static_cast<size_t>(rank)];
    MP_DISPATCH_ALL(t.dtype(), "all_reduce", [&] {
      const scalar_t* in = incoming.data_ptr<scalar_t>();
      scalar_t* out = t.data_ptr<scalar_t>() + at;
      for (int64_t i = 0; i < len; ++i) {
        scalar_t acc = in[i];
        for (int r = 1; r < size; ++r) acc += in[r * len + i];
        if (op == ReduceOp::Avg) acc /= static_cast<scalar_t>(size);
        out[i] = acc;
      }
    });
  }
};

class ReduceQueue {
 public:
  ReduceQueue(MPI_Comm slices, MPI_Comm sums) : slices_(slices), sums_(sums) {}

  std::shared_ptr<ReduceState> start(const Tensor& t, ReduceOp op, int rank, int size, const std::string& what) {
    auto s = std::make_shared<ReduceState>();
    s->t = t;
    s->op = op;
    s->rank = rank;
    s->size = size;
    const int64_t n = t.numel();
    for (int r = 0; r <= size; ++r) s->bounds.push_back(n * r / size);
    MP_CHECK(s->bounds[1] < INT32_MAX, what, ": ", n, " elements over ", size,
             " ranks makes slices too long for MPI's int counts");
    for (int r = 0; r < size; ++r) {
      s->counts.push_back(static_cast<int>(s->bounds[static_cast<size_t>(r) + 1] - s->bounds[static_cast<size_t>(r)]));
      s->displs.push_back(static_cast<int>(s->bounds[static_cast<size_t>(r)]));
    }
    const int mine = s->counts[static_cast<size_t>(rank)];
    s->incoming = empty({static_cast<int64_t>(size) * mine}, t.dtype());
    std::vector<int> recv_counts(static_cast<size_t>(size), mine), recv_displs;
    for (int r = 0; r < size; ++r) recv_displs.push_back(r * mine);
    MPI_CHECK(MPI_Ialltoallv(t.raw_data(), s->counts.data(), s->displs.data(), mpi_type(t.dtype()),
                             s->incoming.raw_data(), recv_counts.data(), recv_displs.data(), mpi_type(t.dtype()), slices_,
                             &s->req));
    queue_.push_back(s);
    return s;
  }

  // Moves every reduction as far as it can go: phase 2s are posted strictly in queue order.
  void progress() {
    bool in_order = true;
    for (auto& s : queue_) {
      if (s->phase == 3) continue;
      int done = 0;
      MPI_CHECK(MPI_Test(&s->req, &done, MPI_STATUS_IGNORE));
      if (s->phase == 1) {
        if (!done || !in_order) {
          in_order = false;  // a later reduction must not post its phase 2 before this one
          continue;
        }
        s->reduce_my_slice();
        MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, s->t.raw_data(), s->counts.data(),
                                  s->displs.data(), mpi_type(s->t.dtype()), sums_, &s->req));
        s->phase = 2;
      } else if (done) {
        s->phase = 3;
        if (s->device_result.defined()) ops::copy_(s->device_result, s->t);
        s->device_result = Tensor();
        s->t = Tensor();
        s->incoming = Tensor();
      }
    }
    while (!queue_.empty() && queue_.front()->phase == 3) queue_.pop_front();
  }

 private:
  MPI_Comm slices_, sums_;
  std::deque<std::shared_ptr<ReduceState>> queue_;
};

class MpiReduce : public Request {
 public:
  MpiReduce(ReduceQueue& queue, std::shared_ptr<ReduceState> state, double timeout, std::string what)
      : queue_(queue), state_(std::move(state)), timeout_(timeout), what_(std::move(what)) {}
  Tensor wait() override {
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_));
    for (int spins = 0; !test(); ++spins) {
      MP_CHECK(Clock::now() < deadline, what_, ": nothing after ", timeout_,
               " s (a rank may have stopped, be stuck, or run a different schedule; the timeout is "
               "Communicator::set_timeout / --comm-timeout)");
      if (spins > 200) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    return {};
  }
  bool test() override {
    queue_.progress();
    return state_->phase == 3;
  }

 private:
  ReduceQueue& queue_;
  std::shared_ptr<ReduceState> state_;  // the queue keeps it (and its buffers) until MPI is done
  double timeout_;
  std::string what_;
};

class MpiComm : public Communicator {
 public:
  MpiComm(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_CHECK(MPI_Comm_dup(comm_, &sums_));  // collective: every rank constructs its MpiComm together
    MPI_CHECK(MPI_Comm_set_errhandler(sums_, MPI_ERRORS_RETURN));
    reduces_ = std::make_unique<ReduceQueue>(comm_, sums_);
  }
  ~MpiComm() override {
    reduces_.reset();
    MPI_Comm_free(&sums_);
    if (owned_) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }

  std::unique_ptr<Request> isend(const Tensor& t, int dst, int tag, const std::string& what) override {
    check_peer("send", dst);
    check_tag("send", tag);
    const std::string d = describe("send", dst, tag, what);
    MP_CHECK(t.defined(), d, ": the tensor is undefined");
    // MPI reads host memory: a device tensor is staged through a host copy (complete on return).
    auto req = std::make_unique<MpiSend>(ops::contiguous(t.to(Device::cpu())), std::vector<MPI_Request>{}, timeout(), d);
    req->header_ = header_of({t.sizes(), t.dtype()});
    req->reqs_.emplace_back();
    MPI_CHECK(MPI_Isend(req->header_.data(), kHeader, MPI_INT64_T, dst, tag, comm_, &req->reqs_.back()));
    post_data(req->data_, dst, tag, req->reqs_, true);
    return req;
  }

  std::unique_ptr<Request> irecv(const TensorSpec& expect, int src, int tag, const std::string& what) override {
    check_peer("recv", src);
    check_tag("recv", tag);
    auto req = std::make_unique<MpiRecv>(expect, timeout(), describe("recv", src, tag, what));
    req->data_ = empty(expect.shape, expect.dtype);
    req->reqs_.emplace_back();
    MPI_CHECK(MPI_Irecv(req->header_.data(), kHeader, MPI_INT64_T, src, tag, comm_, &req->reqs_.back()));
    post_data(req->data_, src, tag, req->reqs_, false);
    return req;
  }

  void all_reduce(const Tensor& t, ReduceOp op) override {
    const std::string name = "rank " + std::to_string(rank_) + " all_reduce";
    MP_CHECK(t.defined() && t.is_contiguous(), name, ": needs a defined, contiguous tensor");
    MP_CHECK(op == ReduceOp::Sum || is_floating(t.dtype()), name, ": Avg needs a floating-point tensor, got ",
             dtype_name(t.dtype()));
    // Every rank must pass the same count and dtype, or MPI would silently mix them up.
    std::array<int64_t, 4> mine = {t.numel(), -t.numel(), static_cast<int64_t>(t.dtype()),
                                   -static_cast<int64_t>(t.dtype())};
    std::array<int64_t, 4> all{};
    std::vector<MPI_Request> reqs(1);
    MPI_CHECK(MPI_Iallreduce(mine.data(), all.data(), 4, MPI_INT64_T, MPI_MAX, comm_, &reqs[0]));
    poll(reqs, timeout(), name);
    MP_CHECK(all[0] == -all[1] && all[2] == -all[3], name, ": ranks passed different tensors (between ", -all[1],
             " and ", all[0], " elements; this rank ", TensorSpec{t.sizes(), t.dtype()}.str(), ")");
    const Tensor host = t.to(Device::cpu());  // a device tensor is reduced in a host copy
    MpiReduce(*reduces_, reduces_->start(host, op, rank_, size_, name), timeout(), name).wait();
    if (!host.is_same(t)) ops::copy_(t, host);
  }

  // Trusts the caller to pass the same count on every rank (the blocking form checks it first;
  // DataParallel compares its bucket layout across replicas once, at construction).
  std::unique_ptr<Request> iall_reduce(const Tensor& t, ReduceOp op) override {
    const std::string name = "rank " + std::to_string(rank_) + " iall_reduce";
    MP_CHECK(t.defined() && t.is_contiguous(), name, ": needs a defined, contiguous tensor, got ",
             t.defined() ? shape_str(t.sizes()) + (t.is_contiguous() ? "" : " (not contiguous)") : "undefined");
    MP_CHECK(op == ReduceOp::Sum || is_floating(t.dtype()), name, ": Avg needs a floating-point tensor, got ",
             dtype_name(t.dtype()));
    // A device tensor is reduced in a host copy, copied back when the reduction completes.
    const Tensor host = t.to(Device::cpu());
    auto state = reduces_->start(host, op, rank_, size_, name);
    if (!host.is_same(t)) state->device_result = t;
    return std::make_unique<MpiReduce>(*reduces_, std::move(state), timeout(), name);
  }

  void broadcast(const Tensor& t, int root) override {
    const std::string name = "rank " + std::to_string(rank_) + " broadcast from rank " + std::to_string(root);
    MP_CHECK(root >= 0 && root < size_, name, ": root is not a rank of this group of ", size_);
    MP_CHECK(t.defined() && t.is_contiguous(), name, ": needs a defined, contiguous tensor");
    if (!t.device().is_cpu()) {  // through a host copy
      const Tensor host = t.to(Device::cpu());
      broadcast(host, root);
      ops::copy_(t, host);
      return;
    }
    auto header = header_of({t.sizes(), t.dtype()});
    std::vector<MPI_Request> reqs(1);
    MPI_CHECK(MPI_Ibcast(header.data(), kHeader, MPI_INT64_T, root, comm_, &reqs[0]));
    poll(reqs, timeout(), name);
    const TensorSpec got = spec_of(header), mine{t.sizes(), t.dtype()};
    MP_CHECK(got == mine, name, ": rank ", rank_, " passed ", mine.str(), ", root ", root, " passed ", got.str(),
             " (every rank must pass the same shape and dtype)");
    char* p = static_cast<char*>(t.raw_data());
    const int64_t bytes = static_cast<int64_t>(t.nbytes());
    reqs.clear();
    for (int64_t at = 0; at < bytes; at += kChunk) {
      reqs.emplace_back();
      MPI_CHECK(MPI_Ibcast(p + at, static_cast<int>(std::min(kChunk, bytes - at)), MPI_BYTE, root, comm_, &reqs.back()));
    }
    poll(reqs, timeout(), name);
  }

  void barrier() override {
    std::vector<MPI_Request> reqs(1);
    MPI_CHECK(MPI_Ibarrier(comm_, &reqs[0]));
    poll(reqs, timeout(), "rank " + std::to_string(rank_) + " barrier");
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MP_CHECK(color >= 0, "rank ", rank_, " split: color must be >= 0, got ", color);
    MPI_Comm sub;
    MPI_CHECK(MPI_Comm_split(comm_, color, key, &sub));
    auto comm = std::make_unique<MpiComm>(sub, true);
    comm->set_timeout(timeout());
    return comm;
  }

 private:
  // The data of a message as MPI messages of at most kChunk bytes (MPI counts are ints).
  void post_data(const Tensor& data, int peer, int tag, std::vector<MPI_Request>& reqs, bool send) {
    char* p = static_cast<char*>(data.raw_data());
    const int64_t bytes = static_cast<int64_t>(data.nbytes());
    for (int64_t i = 0, n = num_chunks(bytes); i < n; ++i) {
      const int64_t at = i * kChunk, len = std::min(kChunk, bytes - at);
      reqs.emplace_back();
      if (send) MPI_CHECK(MPI_Isend(p + at, static_cast<int>(len), MPI_BYTE, peer, tag, comm_, &reqs.back()));
      else MPI_CHECK(MPI_Irecv(p + at, static_cast<int>(len), MPI_BYTE, peer, tag, comm_, &reqs.back()));
    }
  }

  MPI_Comm comm_;
  MPI_Comm sums_ = MPI_COMM_NULL;  // a duplicate: the second phase of every all_reduce
  bool owned_;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<ReduceQueue> reduces_;
};

}  // namespace

bool mpi_is_built() { return true; }

std::unique_ptr<Communicator> mpi_world() {
  ensure_initialized();
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, false);
}

void mpi_abort(int code) {
  ensure_initialized();
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

namespace {
// This process's rank among the processes of the job on this machine, and how many there are.
std::pair<int, int> node_rank_and_size() {
  ensure_initialized();
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int r = 0, n = 1;
  MPI_Comm_rank(node, &r);
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return {r, n};
}
}  // namespace

int mpi_ranks_on_this_machine() { return node_rank_and_size().second; }
int mpi_local_rank() { return node_rank_and_size().first; }

}  // namespace minipipe::parallel

#else  // no MPI in this build

namespace minipipe::parallel {

bool mpi_is_built() { return false; }

std::unique_ptr<Communicator> mpi_world() {
  MP_CHECK(false, "this build of minipipe has no MPI backend: install Debian's openmpi-bin and libopenmpi-dev "
                  "(./test.sh and ./run.sh do), then configure again (cmake -DMINIPIPE_MPI=ON)");
  return nullptr;
}

void mpi_abort(int code) { std::_Exit(code); }

int mpi_ranks_on_this_machine() { return 1; }
int mpi_local_rank() { return 0; }

}  // namespace minipipe::parallel

#endif
