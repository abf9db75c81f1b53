// DataParallel: the bucket layout, the checksum that every replica starts equal, the hook that
// launches a bucket's all_reduce when its last gradient is complete, and ZeRO-1's shares.
#include "parallel/data_parallel.h"

#include <algorithm>
#include <sstream>

#include "autograd/functions.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::parallel {

namespace {
using Clock = std::chrono::steady_clock;

// Parameter i's slice of a bucket's flat buffer, shaped like the parameter.
Tensor slice_of(const Tensor& flat, int64_t offset, const Tensor& p) {
  return ops::view(ops::narrow(flat, 0, offset, p.numel()), p.sizes());
}

uint64_t checksum(const Tensor& p) {
  const auto* bytes = static_cast<const unsigned char*>(p.raw_data());
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over the raw bytes
  const size_t n = p.nbytes();
  for (size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  return h;
}
}  // namespace

DataParallel::DataParallel(std::vector<Tensor> params, Communicator& replicas, DataParallelOptions opts)
    : params_(std::move(params)), comm_(replicas), opts_(opts) {
  MP_CHECK(opts_.bucket_mb > 0, "DataParallel: --bucket-mb must be positive, got ", opts_.bucket_mb);
  MP_CHECK(opts_.backwards_per_step >= 1, "DataParallel: backwards_per_step must be >= 1, got ",
           opts_.backwards_per_step);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    MP_CHECK(p.defined() && p.is_leaf() && p.requires_grad() && p.is_contiguous(), "DataParallel: parameter ", i,
             " must be a contiguous leaf that requires grad, got ",
             p.defined() ? shape_str(p.sizes()) + (p.is_leaf() ? "" : " (not a leaf)") +
                               (p.requires_grad() ? "" : " (no grad)") + (p.is_contiguous() ? "" : " (not contiguous)")
                         : "an undefined tensor");
  }

  // Every replica must use the same options and start from the same weights: compared once, on
  // every rank (different bucket sizes would pair all-reduces of different lengths).
  std::vector<std::string> mine = {"bucket_mb=" + std::to_string(opts_.bucket_mb) +
                                   " overlap=" + std::to_string(opts_.overlap) +
                                   " backwards_per_step=" + std::to_string(opts_.backwards_per_step) +
                                   " zero1=" + std::to_string(opts_.zero1) +
                                   " parameters=" + std::to_string(params_.size())};
  for (size_t i = 0; i < params_.size(); ++i)
    mine.push_back(shape_str(params_[i].sizes()) + ":" + std::to_string(checksum(params_[i])));
  std::string joined;
  for (const std::string& m : mine) joined += m + "\n";
  const std::vector<std::string> all = all_gather_strings(comm_, joined);
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    std::istringstream a(all[0]), b(all[r]);
    std::string la, lb;
    for (int line = -1; std::getline(a, la) && std::getline(b, lb); ++line)
      if (la != lb) {
        MP_CHECK(line >= 0, "DataParallel: replica ", r, " has options '", lb, "', replica 0 '", la, "'");
        MP_CHECK(false, "DataParallel: replica ", r, " starts from another parameter ", line, " than replica 0 (",
                 lb.substr(0, lb.find(':')), " against ", la.substr(0, la.find(':')),
                 ", or other values: build every replica from the same seed)");
      }
    MP_CHECK(false, "DataParallel: replica ", r, " has other parameters than replica 0");
  }

  // Buckets in reverse registration order: backward produces the last layers' gradients first.
  const double cap = opts_.bucket_mb * 1024 * 1024;
  bucket_of_.assign(params_.size(), 0);
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    const bool fresh = buckets_.empty() || buckets_.back().dtype != p.dtype() ||
                       params_[buckets_.back().params.front()].device() != p.device() ||
                       static_cast<double>((buckets_.back().numel + p.numel()) * element_size(p.dtype())) > cap;
    if (fresh) buckets_.push_back({{}, 0, p.dtype()});
    buckets_.back().params.push_back(k);
    buckets_.back().numel += p.numel();
    bucket_of_[k] = buckets_.size() - 1;
  }
  // One replica: the gradients already are the mean, so no buffers, hooks or reductions (the
  // trainers always build a DataParallel; at --dp 1 it must cost nothing).
  if (!solo())
    for (const Bucket& b : buckets_) flat_.push_back(zeros({b.numel}, params_[b.params.front()].options()));
  ready_.assign(buckets_.size(), 0);
  reached_.assign(params_.size(), 0);

  // ZeRO-1 shares: each parameter to the replica holding the fewest elements so far.
  owner_.assign(params_.size(), 0);
  if (opts_.zero1) {
    std::vector<int64_t> load(static_cast<size_t>(comm_.size()), 0);
    for (size_t i = 0; i < params_.size(); ++i) {
      const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
      owner_[i] = r;
      load[static_cast<size_t>(r)] += params_[i].numel();
    }
  }

  if (opts_.overlap)  // (one replica: the hooks only count backward passes, to catch a missing finish_gradients)
    for (size_t i = 0; i < params_.size(); ++i)
      hook_ids_.push_back(
          autograd::register_post_accumulate_grad_hook(params_[i], [this, i](const Tensor&) { on_ready(i); }));
}

DataParallel::~DataParallel() {
  for (size_t i = 0; i < hook_ids_.size(); ++i) autograd::remove_post_accumulate_grad_hook(params_[i], hook_ids_[i]);
}

void DataParallel::on_ready(size_t i) {
  for (auto& r : pending_) r->test();  // lets MPI progress the reductions already started
  MP_CHECK(reached_[i] < opts_.backwards_per_step, "DataParallel: parameter ", i, " got backward pass ",
           reached_[i] + 1, " in one step, more than backwards_per_step=", opts_.backwards_per_step,
           " (call finish_gradients after each step; a parameter several chunks use, a tied weight, is "
           "reached more than once per micro-batch, which DataParallel does not support)");
  if (++reached_[i] < opts_.backwards_per_step || solo()) return;  // more micro-batches to come
  const size_t b = bucket_of_[i];
  if (++ready_[b] == buckets_[b].params.size()) launch_ready();
}

void DataParallel::launch_ready() {
  while (launched_ < buckets_.size() && ready_[launched_] == buckets_[launched_].params.size()) launch(launched_++);
}

void DataParallel::launch(size_t b) {
  int64_t at = 0;
  for (size_t i : buckets_[b].params) {
    const Tensor& p = params_[i];
    Tensor dst = slice_of(flat_[b], at, p);
    if (p.grad().defined()) ops::copy_(dst, p.grad());
    else ops::fill_(dst, 0.0);
    at += p.numel();
  }
  if (opts_.overlap) pending_.push_back(comm_.iall_reduce(flat_[b], ReduceOp::Avg));
  else comm_.all_reduce(flat_[b], ReduceOp::Avg);
}

void DataParallel::finish_gradients() {
  if (solo()) {
    exposed_ = 0;
    ++steps_;
    NoGradGuard no_grad;
    for (Tensor& p : params_)
      if (!p.grad().defined()) p.mutable_grad() = zeros(p.sizes(), p.options());
    std::fill(reached_.begin(), reached_.end(), 0);
    return;
  }
  const auto t0 = Clock::now();
  launched_early_ = static_cast<int>(launched_);
  while (launched_ < buckets_.size()) launch(launched_++);  // buckets no complete gradient reached
  for (auto& r : pending_) r->wait();
  exposed_ = std::chrono::duration<double>(Clock::now() - t0).count();
  total_exposed_ += exposed_;
  ++steps_;
  NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    int64_t at = 0;
    for (size_t i : buckets_[b].params) {
      Tensor& p = params_[i];
      if (!p.grad().defined()) p.mutable_grad() = zeros(p.sizes(), p.options());
      ops::copy_(p.grad(), slice_of(flat_[b], at, p));
      at += p.numel();
    }
  }
  pending_.clear();
  std::fill(reached_.begin(), reached_.end(), 0);
  std::fill(ready_.begin(), ready_.end(), 0);
  launched_ = 0;
}

void DataParallel::zero_grad() {
  for (Tensor& p : params_) p.mutable_grad() = Tensor();
}

double DataParallel::average(double value) {
  if (solo()) return value;
  Tensor t = full({1}, value, DType::Float64);
  comm_.all_reduce(t, ReduceOp::Avg);
  return t.item();
}

std::vector<Tensor> DataParallel::optimizer_params() const {
  std::vector<Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (!opts_.zero1 || owner_[i] == comm_.rank()) out.push_back(params_[i]);
  return out;
}

std::vector<optim::ParamGroup> DataParallel::optimizer_groups(std::vector<optim::ParamGroup> groups) const {
  if (!opts_.zero1) return groups;
  for (auto& g : groups)
    std::erase_if(g.params, [&](const Tensor& t) {
      for (size_t i = 0; i < params_.size(); ++i)
        if (params_[i].is_same(t)) return owner_[i] != comm_.rank();
      MP_CHECK(false, "DataParallel: an optimizer group holds a parameter this DataParallel was not given");
      return true;
    });
  return groups;
}

void DataParallel::after_step() {
  if (!opts_.zero1 || solo()) return;
  NoGradGuard no_grad;
  for (int r = 0; r < comm_.size(); ++r) {
    // Owner r's updated parameters, packed in order, to every replica.
    std::vector<size_t> share;
    int64_t numel = 0;
    for (size_t i = 0; i < params_.size(); ++i)
      if (owner_[i] == r) {
        share.push_back(i);
        numel += params_[i].numel();
      }
    if (share.empty()) continue;
    MP_CHECK(std::all_of(share.begin(), share.end(), [&](size_t i) { return params_[i].dtype() == params_[share[0]].dtype(); }),
             "DataParallel: zero1 needs one dtype among replica ", r, "'s share of the parameters (parameter ",
             share[0], " is ", dtype_name(params_[share[0]].dtype()), ")");
    Tensor flat = empty({numel}, params_[share[0]].options());
    int64_t at = 0;
    if (comm_.rank() == r)
      for (size_t i : share) {
        ops::copy_(slice_of(flat, at, params_[i]), params_[i]);
        at += params_[i].numel();
      }
    comm_.broadcast(flat, r);
    at = 0;
    if (comm_.rank() != r)
      for (size_t i : share) {
        ops::copy_(params_[i], slice_of(flat, at, params_[i]));
        at += params_[i].numel();
      }
  }
}

}  // namespace minipipe::parallel
