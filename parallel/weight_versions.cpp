// The version plan of an asynchronous pipeline (which version each F and B reads, when a stage
// steps its optimizer, when a version is no longer needed) and the store that keeps the versions.
#include "parallel/weight_versions.h"

#include <algorithm>

#include "autograd/functions.h"
#include "tensor/error.h"

namespace minipipe::parallel {

AsyncMode async_mode_of(std::string_view schedule) {
  if (schedule == "pipedream") return AsyncMode::PipeDream;
  if (schedule == "2bw") return AsyncMode::TwoBW;
  return AsyncMode::None;
}

VersionPlan plan_versions(const Program& program, int rank, const AsyncOptions& opts, int64_t updates_before) {
  MP_CHECK(opts.mode != AsyncMode::None, "plan_versions: not an asynchronous schedule");
  MP_CHECK(!program.has_w() && !program.forward_only, "plan_versions: asynchronous schedules run F and B only");
  MP_CHECK(updates_before >= 0, "plan_versions: updates_before must be >= 0, got ", updates_before);
  const int M = program.num_microbatches, W = opts.window;
  const bool dream = opts.mode == AsyncMode::PipeDream;
  MP_CHECK(dream || (W >= 1 && M % W == 0), "2bw: a window of ", W, " micro-batches does not divide M = ", M);
  const std::vector<Action>& list = program.on(rank);
  const size_t n = list.size();
  VersionPlan plan;
  plan.read.assign(n, -1);
  plan.update_after.assign(n, false);
  plan.release.assign(n, {});

  // Vertical sync: the updates stage 0 has made before its forward of each micro-batch.
  std::vector<int64_t> first_stage(static_cast<size_t>(M), 0);
  if (dream && opts.vertical_sync) {
    int64_t b = 0;
    for (const Action& a : program.on(program.rank_of(0))) {
      if (a.chunk != 0) continue;
      if (a.op == Op::B) ++b;
      if (a.op == Op::F) first_stage[static_cast<size_t>(a.microbatch)] = b;
    }
  }
  int64_t latest = updates_before;
  std::vector<int64_t> f_read(static_cast<size_t>(M), -1);
  std::vector<int> done(static_cast<size_t>(dream ? 0 : M / W), 0);  // 2BW: backwards done per window
  for (size_t i = 0; i < n; ++i) {
    const Action& a = list[i];
    const size_t m = static_cast<size_t>(a.microbatch);
    if (a.op == Op::F) {
      const int64_t v = dream ? (opts.vertical_sync ? updates_before + first_stage[m] : latest)
                              : std::max<int64_t>(0, updates_before + a.microbatch / W - 1);
      MP_CHECK(v <= latest, "2bw: window ", updates_before + a.microbatch / W, " reads version ", v,
               " on rank ", rank, ", which has made only ", latest, " updates when its forward of micro-batch ",
               a.microbatch, " runs: the window of ", W, " micro-batches is shorter than the forwards rank ", rank,
               " runs ahead (a window of at least P - 1 = ", program.num_ranks - 1, " is needed, or one of all M)");
      plan.read[i] = f_read[m] = v;
    } else if (a.op == Op::B) {
      MP_INTERNAL_ASSERT(f_read[m] >= 0, "plan_versions: B of micro-batch ", m, " before its F on rank ", rank);
      plan.read[i] = dream && !opts.weight_stashing ? latest : f_read[m];
      if (dream || ++done[m / static_cast<size_t>(W)] == W) {
        plan.update_after[i] = true;
        ++latest;
      }
    }
  }
  plan.updates = latest - updates_before;
  // The next call's first forward reads the newest version (PipeDream) or, one step behind, the one
  // before it (2BW): those stay; every older version goes after its last use here.
  plan.keep_from = dream ? latest : std::max<int64_t>(0, latest - 1);
  const int64_t oldest = dream ? updates_before : std::max<int64_t>(0, updates_before - 1);
  std::map<int64_t, size_t> last_use;  // version -> the action after which nobody needs it
  for (int64_t v = oldest; v < plan.keep_from; ++v) last_use[v] = 0;
  int64_t made = updates_before;
  for (size_t i = 0; i < n; ++i) {
    if (plan.read[i] >= 0 && plan.read[i] < plan.keep_from) last_use[plan.read[i]] = i;
    if (plan.update_after[i] && ++made < plan.keep_from) last_use[made] = std::max(last_use[made], i);
  }
  for (const auto& [v, i] : last_use) plan.release[i].push_back(v);

  // What a store following the plan holds: the versions kept from the last call, plus each update's,
  // minus the released ones (the newest always stays).
  std::set<int64_t> held{updates_before}, released;
  if (!dream && updates_before > 0) held.insert(updates_before - 1);
  plan.peak_held = static_cast<int>(held.size());
  int64_t newest = updates_before;
  for (size_t i = 0; i < n; ++i) {
    if (plan.update_after[i]) held.insert(++newest);
    for (int64_t v : plan.release[i]) released.insert(v);
    for (int64_t v : released)
      if (v != newest) held.erase(v);
    plan.peak_held = std::max(plan.peak_held, static_cast<int>(held.size()));
  }
  return plan;
}

WeightVersions::WeightVersions(std::vector<Tensor> params, optim::Optimizer& opt)
    : params_(std::move(params)), opt_(opt) {
  for (const Tensor& p : params_) param_bytes_ += static_cast<int64_t>(p.nbytes());
  alive_.insert(0);
}

void WeightVersions::save(int64_t v) {
  NoGradGuard no_grad;
  std::vector<Tensor> copy;
  copy.reserve(params_.size());
  for (const Tensor& p : params_) copy.push_back(ops::clone(p.detach()));
  saved_[v] = std::move(copy);
  ++copies_made_;
}

void WeightVersions::use(int64_t v) {
  if (v == in_params_) return;
  auto it = saved_.find(v);
  MP_CHECK(alive_.count(v) && it != saved_.end(), "weight versions: version ", v,
           " is not held (newest ", latest_, ", ", held(), " held)");
  // What the parameters hold now may still be needed (or is the newest): keep it before overwriting.
  if (alive_.count(in_params_) && !saved_.count(in_params_)) save(in_params_);
  it = saved_.find(v);
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) ops::copy_(params_[i].detach(), it->second[i]);
  ++copies_made_;
  in_params_ = v;
}

void WeightVersions::update() {
  use(latest_);
  // Copy on write: a micro-batch still in flight reads the version this step overwrites.
  if (alive_.count(latest_) && !released_.count(latest_) && !saved_.count(latest_)) save(latest_);
  opt_.step();
  opt_.zero_grad();
  ++latest_;
  in_params_ = latest_;
  alive_.insert(latest_);
  drop_released();
}

void WeightVersions::release(int64_t v) {
  released_.insert(v);
  drop_released();
}

void WeightVersions::drop_released() {
  for (auto it = released_.begin(); it != released_.end();) {
    const int64_t v = *it;
    if (v == latest_) {
      ++it;
      continue;
    }
    alive_.erase(v);
    saved_.erase(v);
    it = released_.erase(it);
  }
}

}  // namespace minipipe::parallel
