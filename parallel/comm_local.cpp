// The `local` backend: ranks are threads. A group (the world, or one made by split) holds one
// mutex and condition variable, the mailboxes and the state of the collective in progress; the
// world holds the abort flag every wait checks. Point to point is a rendezvous: the receiver
// copies the sender's tensor on its own thread, then releases the sender — so a rank's memory
// account changes only on that rank's thread, and the executor can measure what an action keeps.
#include "parallel/comm_local.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::parallel {

namespace {

using Clock = std::chrono::steady_clock;

class LocalGroup;

class LocalWorld {
 public:
  bool aborted() const { return aborted_.load(); }
  std::string reason() const {
    std::lock_guard<std::mutex> lk(mu_);
    return reason_;
  }
  void add_group(const std::shared_ptr<LocalGroup>& g) {
    std::lock_guard<std::mutex> lk(mu_);
    groups_.push_back(g);
  }
  void abort(const std::string& reason);

 private:
  std::atomic<bool> aborted_{false};
  mutable std::mutex mu_;
  std::string reason_;
  std::vector<std::weak_ptr<LocalGroup>> groups_;
};

// A posted send: the sender's tensor, read by the receiver when it takes the message (rendezvous:
// the receiver copies on its own thread, so the copy is its memory; the sender waits for it).
struct SendSlot {
  Tensor source;
  std::string sender_what;
  bool done = false;
};

// A posted receive, and the send it was matched with.
struct RecvSlot {
  TensorSpec expect;
  std::shared_ptr<SendSlot> matched;
};

struct Mailbox {
  std::deque<std::shared_ptr<SendSlot>> sends;  // posted, not yet matched (posting order)
  std::deque<std::shared_ptr<RecvSlot>> recvs;  // posted, not yet matched (posting order)
};

class LocalGroup {
 public:
  LocalGroup(std::shared_ptr<LocalWorld> world, std::vector<int> world_ranks)
      : world(std::move(world)), world_ranks(std::move(world_ranks)), slots(this->world_ranks.size()),
        splits(this->world_ranks.size()), split_result(this->world_ranks.size()) {}
  int size() const { return static_cast<int>(world_ranks.size()); }

  // Waits (lock held) until done(), the deadline, or an abort; `describe` names the wait in errors.
  template <typename Done, typename Describe>
  void wait(std::unique_lock<std::mutex>& lk, double timeout, Done done, Describe describe) {
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    while (!done()) {
      if (world->aborted()) throw Aborted(describe() + ": stopped because " + world->reason());
      if (cv.wait_until(lk, deadline) == std::cv_status::timeout && !done()) {
        if (world->aborted()) throw Aborted(describe() + ": stopped because " + world->reason());
        MP_CHECK(false, describe(), ": nothing after ", timeout,
                 " s (the peer may have stopped, be stuck, or run a different schedule; the timeout is "
                 "Communicator::set_timeout / --comm-timeout)");
      }
    }
  }
  // Every rank of the group arrives; the last one releases the others.
  template <typename Describe>
  void arrive(std::unique_lock<std::mutex>& lk, double timeout, Describe describe) {
    const uint64_t gen = generation;
    if (++arrived == size()) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    wait(lk, timeout, [&] { return generation != gen; }, describe);
  }

  std::shared_ptr<LocalWorld> world;
  std::vector<int> world_ranks;  // group rank -> world rank
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::tuple<int, int, int>, Mailbox> mailboxes;  // (source, destination, tag)
  // The collective in progress: each rank's tensor, its split request, what rank 0 built.
  std::vector<Tensor> slots;
  std::vector<std::pair<int, int>> splits;  // (color, key)
  std::vector<std::pair<std::shared_ptr<LocalGroup>, int>> split_result;
  uint64_t generation = 0;
  int arrived = 0;
};

void LocalWorld::abort(const std::string& reason) {
  std::vector<std::weak_ptr<LocalGroup>> groups;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!aborted_) reason_ = reason;  // the first reason is the cause; later ones are consequences
    aborted_ = true;
    groups = groups_;
  }
  for (auto& w : groups)
    if (auto g = w.lock()) {
      std::lock_guard<std::mutex> lk(g->mu);  // so no waiter misses the notification
      g->cv.notify_all();
    }
}

class LocalComm;

class LocalSend : public Request {
 public:
  LocalSend(const LocalComm& comm, std::shared_ptr<SendSlot> slot, std::string description)
      : comm_(comm), slot_(std::move(slot)), description_(std::move(description)) {}
  Tensor wait() override;
  bool test() override;

 private:
  const LocalComm& comm_;
  std::shared_ptr<SendSlot> slot_;
  std::string description_;
};

class LocalRecv : public Request {
 public:
  LocalRecv(const LocalComm& comm, std::shared_ptr<RecvSlot> slot, std::tuple<int, int, int> box,
            std::string description)
      : comm_(comm), slot_(std::move(slot)), box_(box), description_(std::move(description)) {}
  // A receive dropped before its wait() returned (its wait threw, or nobody waited): taken back
  // from the mailbox, so it cannot swallow a later message, and a sender it matched is released.
  ~LocalRecv() override;
  Tensor wait() override;
  bool test() override;

 private:
  const LocalComm& comm_;
  std::shared_ptr<RecvSlot> slot_;
  std::tuple<int, int, int> box_;  // (source, destination, tag)
  std::string description_;
  bool finished_ = false;
};

// A non-blocking collective handed to a rank's helper thread, and how it ended.
struct Job {
  Tensor t;
  ReduceOp op = ReduceOp::Sum;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
};

class JobRequest : public Request {
 public:
  explicit JobRequest(std::shared_ptr<Job> job) : job_(std::move(job)) {}
  Tensor wait() override {
    std::unique_lock<std::mutex> lk(job_->mu);
    job_->cv.wait(lk, [&] { return job_->done; });  // the collective itself times out or aborts
    if (job_->error) std::rethrow_exception(job_->error);
    return {};
  }
  bool test() override {
    std::lock_guard<std::mutex> lk(job_->mu);
    return job_->done;
  }

 private:
  std::shared_ptr<Job> job_;
};

class LocalComm : public Communicator {
 public:
  LocalComm(std::shared_ptr<LocalGroup> group, int rank) : group_(std::move(group)), rank_(rank) {}
  ~LocalComm() override {
    if (!helper_.joinable()) return;
    {
      std::lock_guard<std::mutex> lk(jobs_mu_);
      stop_ = true;
    }
    jobs_cv_.notify_all();
    helper_.join();
  }
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  const char* backend() const override { return "local"; }
  std::string stopped() const override { return group_->world->aborted() ? group_->world->reason() : ""; }
  LocalGroup& group() const { return *group_; }

  std::unique_ptr<Request> isend(const Tensor& t, int dst, int tag, const std::string& what) override {
    check_peer("send", dst);
    check_tag("send", tag);
    MP_CHECK(t.defined(), describe("send", dst, tag, what), ": the tensor is undefined");
    auto slot = std::make_shared<SendSlot>();
    slot->source = t;
    slot->sender_what = what;
    {
      std::lock_guard<std::mutex> lk(group_->mu);
      Mailbox& box = group_->mailboxes[{rank_, dst, tag}];
      if (!box.recvs.empty()) {
        box.recvs.front()->matched = slot;
        box.recvs.pop_front();
        group_->cv.notify_all();
      } else {
        box.sends.push_back(slot);
      }
    }
    return std::make_unique<LocalSend>(*this, std::move(slot), describe("send", dst, tag, what));
  }

  std::unique_ptr<Request> irecv(const TensorSpec& expect, int src, int tag, const std::string& what) override {
    check_peer("recv", src);
    check_tag("recv", tag);
    auto slot = std::make_shared<RecvSlot>();
    slot->expect = expect;
    {
      std::lock_guard<std::mutex> lk(group_->mu);
      Mailbox& box = group_->mailboxes[{src, rank_, tag}];
      if (!box.sends.empty() && box.recvs.empty()) {
        slot->matched = std::move(box.sends.front());
        box.sends.pop_front();
      } else {
        box.recvs.push_back(slot);
      }
    }
    return std::make_unique<LocalRecv>(*this, std::move(slot), std::make_tuple(src, rank_, tag),
                                       describe("recv", src, tag, what));
  }

  void all_reduce(const Tensor& t, ReduceOp op) override {
    check_reduce(t, op);
    drain();
    run_all_reduce(t, op);
  }

  std::unique_ptr<Request> iall_reduce(const Tensor& t, ReduceOp op) override {
    check_reduce(t, op);
    auto job = std::make_shared<Job>();
    job->t = t;
    job->op = op;
    {
      std::lock_guard<std::mutex> lk(jobs_mu_);
      if (!helper_.joinable()) helper_ = std::thread([this] { helper_loop(); });
      jobs_.push_back(job);
    }
    jobs_cv_.notify_all();
    return std::make_unique<JobRequest>(std::move(job));
  }

  void run_all_reduce(const Tensor& t, ReduceOp op) {
    const auto name = [&] { return "rank " + std::to_string(rank_) + " all_reduce"; };
    LocalGroup& g = *group_;
    // A device tensor is reduced in a host copy (the same adds in the same order as a CPU one, so
    // the same bits) and copied back: correct on ranks that share a GPU; `nccl` is the fast path.
    const Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu());
    std::unique_lock<std::mutex> lk(g.mu);
    g.slots[static_cast<size_t>(rank_)] = host;
    g.arrive(lk, timeout(), name);
    check_same_specs("all_reduce", 0);
    lk.unlock();
    // This rank reduces elements [lo, hi) over all ranks, in rank order, and writes the result into
    // every rank's tensor: each element is summed once, so every rank holds the same bits.
    const int P = size();
    const int64_t n = host.numel(), lo = n * rank_ / P, hi = n * (rank_ + 1) / P;
    if (P > 1) MP_DISPATCH_ALL(host.dtype(), "all_reduce", [&] {
      std::vector<scalar_t*> ptr;
      for (const Tensor& s : g.slots) ptr.push_back(s.data_ptr<scalar_t>());
      for (int64_t i = lo; i < hi; ++i) {
        scalar_t acc = ptr[0][i];
        for (int r = 1; r < P; ++r) acc += ptr[static_cast<size_t>(r)][i];
        if (op == ReduceOp::Avg) acc /= static_cast<scalar_t>(P);
        for (int r = 0; r < P; ++r) ptr[static_cast<size_t>(r)][i] = acc;
      }
    });
    lk.lock();
    g.arrive(lk, timeout(), name);
    g.slots[static_cast<size_t>(rank_)] = Tensor();
    lk.unlock();
    if (!host.is_same(t)) ops::copy_(t, host);
  }

  void broadcast(const Tensor& t, int root) override {
    drain();
    const auto name = [&] { return "rank " + std::to_string(rank_) + " broadcast from rank " + std::to_string(root); };
    MP_CHECK(root >= 0 && root < size(), name(), ": root is not a rank of this group of ", size());
    MP_CHECK(t.defined(), name(), ": the tensor is undefined");
    LocalGroup& g = *group_;
    std::unique_lock<std::mutex> lk(g.mu);
    g.slots[static_cast<size_t>(rank_)] = t;
    g.arrive(lk, timeout(), name);
    check_same_specs("broadcast", root);
    lk.unlock();
    if (rank_ != root) ops::copy_(t, g.slots[static_cast<size_t>(root)]);
    lk.lock();
    g.arrive(lk, timeout(), name);
    g.slots[static_cast<size_t>(rank_)] = Tensor();
  }

  void barrier() override {
    drain();
    std::unique_lock<std::mutex> lk(group_->mu);
    group_->arrive(lk, timeout(), [&] { return "rank " + std::to_string(rank_) + " barrier"; });
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    drain();
    const auto name = [&] { return "rank " + std::to_string(rank_) + " split"; };
    MP_CHECK(color >= 0, name(), ": color must be >= 0, got ", color);
    LocalGroup& g = *group_;
    std::unique_lock<std::mutex> lk(g.mu);
    g.splits[static_cast<size_t>(rank_)] = {color, key};
    g.arrive(lk, timeout(), name);
    if (rank_ == 0) {
      std::map<int, std::vector<std::pair<int, int>>> by_color;  // color -> (key, old rank)
      for (int r = 0; r < size(); ++r) by_color[g.splits[static_cast<size_t>(r)].first].push_back({g.splits[static_cast<size_t>(r)].second, r});
      for (auto& [c, members] : by_color) {
        std::sort(members.begin(), members.end());
        std::vector<int> world_ranks;
        for (auto& [k, r] : members) world_ranks.push_back(g.world_ranks[static_cast<size_t>(r)]);
        auto sub = std::make_shared<LocalGroup>(g.world, world_ranks);
        g.world->add_group(sub);
        for (size_t i = 0; i < members.size(); ++i) g.split_result[static_cast<size_t>(members[i].second)] = {sub, static_cast<int>(i)};
      }
    }
    g.arrive(lk, timeout(), name);
    auto [sub, sub_rank] = g.split_result[static_cast<size_t>(rank_)];
    auto comm = std::make_unique<LocalComm>(sub, sub_rank);
    comm->set_timeout(timeout());
    return comm;
  }

 private:
  void check_reduce(const Tensor& t, ReduceOp op) const {
    const std::string name = "rank " + std::to_string(rank_) + " all_reduce";
    MP_CHECK(t.defined() && t.is_contiguous(), name, ": needs a defined, contiguous tensor, got ",
             t.defined() ? shape_str(t.sizes()) + " with strides " + shape_str(t.strides()) : "an undefined tensor");
    MP_CHECK(op == ReduceOp::Sum || is_floating(t.dtype()), name, ": Avg needs a floating-point tensor, got ",
             dtype_name(t.dtype()));
  }

  // The helper thread: runs this rank's non-blocking collectives one after another, in order.
  void helper_loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(jobs_mu_);
        jobs_cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, nothing left
        job = jobs_.front();
        running_ = true;
      }
      std::exception_ptr error;
      try {
        run_all_reduce(job->t, job->op);
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(job->mu);
        job->error = error;
        job->done = true;
        job->t = Tensor();
      }
      job->cv.notify_all();
      {
        std::lock_guard<std::mutex> lk(jobs_mu_);
        jobs_.pop_front();
        running_ = false;
      }
      jobs_cv_.notify_all();
    }
  }

  // Blocking collectives keep the order: this rank's non-blocking ones finish first.
  void drain() {
    std::unique_lock<std::mutex> lk(jobs_mu_);
    jobs_cv_.wait(lk, [&] { return jobs_.empty() && !running_; });
  }

  // After the first barrier of a collective every rank's slot holds its tensor; every rank checks
  // all of them against `ref`'s, so a mismatch fails on every rank and nobody is left waiting.
  void check_same_specs(const char* op, int ref) const {
    const auto& slots = group_->slots;
    const Tensor& want = slots[static_cast<size_t>(ref)];
    for (int r = 0; r < size(); ++r) {
      const Tensor& t = slots[static_cast<size_t>(r)];
      MP_CHECK(t.sizes() == want.sizes() && t.dtype() == want.dtype(), op, " (on rank ", rank_, "): rank ", r,
               " passed ", TensorSpec{t.sizes(), t.dtype()}.str(), ", rank ", ref, " passed ",
               TensorSpec{want.sizes(), want.dtype()}.str(), " (every rank must pass the same shape and dtype)");
    }
  }

  std::shared_ptr<LocalGroup> group_;
  int rank_;
  std::thread helper_;  // started by the first iall_reduce
  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<std::shared_ptr<Job>> jobs_;
  bool running_ = false, stop_ = false;
};

Tensor LocalSend::wait() {
  LocalGroup& g = comm_.group();
  std::unique_lock<std::mutex> lk(g.mu);
  g.wait(lk, comm_.timeout(), [&] { return slot_->done; }, [&] { return description_; });
  return {};
}

bool LocalSend::test() {
  std::lock_guard<std::mutex> lk(comm_.group().mu);
  return slot_->done;
}

LocalRecv::~LocalRecv() {
  if (finished_) return;
  LocalGroup& g = comm_.group();
  std::lock_guard<std::mutex> lk(g.mu);
  if (slot_->matched) {
    slot_->matched->source = Tensor();
    slot_->matched->done = true;
    g.cv.notify_all();
    return;
  }
  auto it = g.mailboxes.find(box_);
  if (it != g.mailboxes.end()) std::erase(it->second.recvs, slot_);
}

Tensor LocalRecv::wait() {
  LocalGroup& g = comm_.group();
  {
    std::unique_lock<std::mutex> lk(g.mu);
    g.wait(lk, comm_.timeout(), [&] { return slot_->matched != nullptr; }, [&] { return description_; });
  }
  SendSlot& msg = *slot_->matched;
  const TensorSpec got{msg.source.sizes(), msg.source.dtype(), msg.source.device()};
  Tensor data;
  if (slot_->expect.fits(got.shape, got.dtype)) {  // copied on this thread: this rank's memory
    data = empty(got.shape, {got.dtype, slot_->expect.device});
    ops::copy_(data, msg.source);  // across devices too (complete when copy_ returns)
  }
  {
    std::lock_guard<std::mutex> lk(g.mu);
    // Let go of the sender's tensor before releasing the sender: whatever it frees afterwards is
    // freed on its own thread (its memory account never moves under it from here).
    msg.source = Tensor();
    msg.done = true;  // consumed either way, as MPI consumes a message that does not fit
    g.cv.notify_all();
    finished_ = true;
  }
  MP_CHECK(data.defined(), description_, ": got ", got.str(), msg.sender_what.empty() ? "" : " sent by ",
           msg.sender_what, ", expected ", slot_->expect.str());
  return data;
}

bool LocalRecv::test() {
  std::lock_guard<std::mutex> lk(comm_.group().mu);
  return slot_->matched != nullptr;
}

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_local_world(int size) {
  MP_CHECK(size >= 1, "local world: need at least 1 rank, got ", size);
  auto world = std::make_shared<LocalWorld>();
  std::vector<int> ranks(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) ranks[static_cast<size_t>(r)] = r;
  auto group = std::make_shared<LocalGroup>(world, ranks);
  world->add_group(group);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < size; ++r) comms.push_back(std::make_unique<LocalComm>(group, r));
  return comms;
}

void abort_local_world(Communicator& comm, const std::string& reason) {
  auto* local = dynamic_cast<LocalComm*>(&comm);
  MP_CHECK(local != nullptr, "abort_local_world: not a local communicator (backend ", comm.backend(), ")");
  local->group().world->abort(reason);
}

}  // namespace minipipe::parallel
