// The Communicator: how ranks exchange tensors. Point to point (blocking and non-blocking send and
// receive with tags) and collectives (all_reduce, broadcast, barrier, split into sub-groups) behind
// one interface with three backends: `local` — every rank a thread of this process (comm_local.h) —,
// `mpi` — one process per rank under mpirun (comm_mpi.h) — and `nccl` — a GPU per rank
// (nccl/comm_nccl.h). The executor, the pipeline and the tests see only this; parallel/ outside
// nccl/ never touches an MPI, CUDA or NCCL type.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace minipipe::parallel {

enum class ReduceOp { Sum, Avg };

// What a receive expects: a message of another shape or dtype is an error naming both ranks. The
// received tensor lands on `device` (the receiver's choice: the sender's tensor may sit elsewhere).
struct TensorSpec {
  Shape shape;
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  std::string str() const;  // "float32 [4, 16]", "float32 [4, 16] on cuda:1"
  // Whether a message of `shape` and `dtype` fits this spec (the device is the receiver's to pick).
  bool fits(const Shape& s, DType t) const { return s == shape && t == dtype; }
  friend bool operator==(const TensorSpec&, const TensorSpec&) = default;
};

// Thrown on the ranks that are stopped because another rank failed (its error is the one to show).
class Aborted : public Error {
 public:
  using Error::Error;
};

// A pending non-blocking operation.
class Request {
 public:
  virtual ~Request() = default;
  // Blocks until done, at most the communicator's timeout; returns the received tensor (a
  // receive) or an undefined one (a send). Throws on a mismatch, a timeout, or an abort.
  virtual Tensor wait() = 0;
  // Done yet? Never blocks.
  virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;  // "local", "mpi", "nccl"
  // Every backend moves CPU and CUDA tensors: `local` copies device to device, `mpi` stages device
  // tensors through host memory, `nccl` sends from and receives into its rank's GPU (device()).
  // The rank's own device for `nccl`; the CPU for `local` and `mpi`.
  virtual Device device() const { return Device::cpu(); }
  // Why this rank's group was stopped (another rank failed and launch() cancelled the rest), or ""
  // while it runs. `local` sets it; a communicator layered on another (`nccl`) checks it in its waits.
  virtual std::string stopped() const { return {}; }

  // ---- point to point ----
  // `tag` (0 <= tag < kMaxTag) tells apart messages between the same two ranks; messages with the
  // same (source, tag) are received in the order they were sent, and receives posted for them are
  // matched in the order they were posted. The receiver never shares memory with the sender. `what`
  // names the operation in errors (the executor passes its schedule action, e.g. "1RECV_F3").
  // A send may wait until its receive is posted and taken (local always, mpi for large messages):
  // programs must not rely on buffering — lowering.h orders them so blocking sends cannot deadlock.
  // The sent tensor must not change until the send's wait() returns.
  virtual std::unique_ptr<Request> isend(const Tensor& t, int dst, int tag, const std::string& what = "") = 0;
  virtual std::unique_ptr<Request> irecv(const TensorSpec& expect, int src, int tag, const std::string& what = "") = 0;
  void send(const Tensor& t, int dst, int tag, const std::string& what = "") { isend(t, dst, tag, what)->wait(); }
  Tensor recv(const TensorSpec& expect, int src, int tag, const std::string& what = "") {
    return irecv(expect, src, tag, what)->wait();
  }
  static constexpr int kMaxTag = 1 << 30;

  // ---- collectives: every rank of the group calls them, in the same order ----
  // In place on a contiguous float32, float64 or int64 tensor of the same shape on every rank. The
  // sum adds rank 0's value first, then rank 1's, ...: every rank gets the same bits. Avg: floating
  // point only.
  virtual void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  // The same, started now and finished by the request's wait(): on `local` a helper thread of this
  // rank runs it (so the rank's own thread keeps computing), on `mpi` MPI_Iallreduce. `t` must not
  // be touched until wait() returns. Collectives on one communicator run in the order they were
  // started: a blocking one first waits for this rank's non-blocking ones. (The default runs the
  // blocking all_reduce at once.)
  virtual std::unique_ptr<Request> iall_reduce(const Tensor& t, ReduceOp op = ReduceOp::Sum);
  // Copies root's tensor into every rank's `t` (same shape and dtype everywhere).
  virtual void broadcast(const Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // Ranks passing the same color form a new group, ranked by (key, old rank) — MPI_Comm_split.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // How long one wait may last before it fails with an error naming this rank, the peer, the tag and
  // `what` (seconds; default 300: a real pipeline step never waits minutes for one message).
  double timeout() const { return timeout_; }
  void set_timeout(double seconds);

 protected:
  void check_peer(const char* op, int peer) const;  // 0 <= peer < size(), peer != rank()
  static void check_tag(const char* op, int tag);
  std::string describe(const char* op, int peer, int tag, const std::string& what) const;

 private:
  double timeout_ = 300.0;
};

// Every rank's string, by rank (a collective): how ranks compare their configurations.
std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine);

// Checks that every rank passed the same `fields` ("key=value" tokens separated by spaces); if not,
// throws on every rank an Error naming the first differing key and the ranks' values. `what` names
// the configuration in the error ("pipeline options").
void check_same_on_all_ranks(Communicator& comm, const std::string& fields, const std::string& what);

}  // namespace minipipe::parallel
