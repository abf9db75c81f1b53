// Asynchronous pipelines (PipeDream, PipeDream-2BW): when each stage steps its optimizer inside the
// pipeline, and which weight version each micro-batch's forward and backward read. A VersionPlan
// says it for one rank's action list; a WeightVersions store keeps the versions a stage still needs
// and puts the right one into the parameters before each F and B. See docs/schedules.md.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include "nn/optim.h"
#include "parallel/schedule.h"

namespace minipipe::parallel {

// None: the flushed schedules (the caller steps the optimizer after the step).
// PipeDream (Narayanan et al., SOSP 2019): 1F1B without a flush between micro-batches; each stage
//   steps its optimizer after every B with that micro-batch's gradient. Version k of a stage is its
//   weights after k updates; F of micro-batch u on stage s reads the newest, which in 1F1B order is
//   k0 + max(0, u - (P - 1 - s)) (k0: the updates before this call).
// TwoBW (PipeDream-2BW, Narayanan et al., ICML 2021): gradients accumulate over a window of W
//   micro-batches; window t (counted over the whole run) reads version max(0, t - 1) on every stage,
//   for F and B, so w(t+1) = w(t) - lr * grad f(w(t-1)): one step of delay, two versions per stage.
enum class AsyncMode { None, PipeDream, TwoBW };
AsyncMode async_mode_of(std::string_view schedule);  // "pipedream", "2bw", anything else: None

struct AsyncOptions {
  AsyncMode mode = AsyncMode::None;
  int window = 1;               // TwoBW: micro-batches per update
  bool weight_stashing = true;  // PipeDream: B reads the version its F read (false: the newest at B time)
  bool vertical_sync = false;   // PipeDream: every stage reads the version stage 0 read for that micro-batch
};

// One call's plan for one rank (one chunk per rank), with versions counted over the whole run.
struct VersionPlan {
  std::vector<int64_t> read;                  // per action: the version F / B reads (-1: other actions)
  std::vector<bool> update_after;             // per action: the stage steps its optimizer after it
  std::vector<std::vector<int64_t>> release;  // per action: versions no action needs after it
  int64_t updates = 0;                        // optimizer steps this call makes on the stage
  int64_t keep_from = 0;                      // the oldest version the next call reads
  int peak_held = 0;                          // the most versions a store following the plan holds at once
};

// The plan for `rank` of lowered or unlowered `program` (1F1B's order, one chunk per rank), when
// every stage has made `updates_before` updates. Throws when an F would read a version its stage has
// not made yet (2BW with a window shorter than the pipeline's warm-up), naming both.
VersionPlan plan_versions(const Program& program, int rank, const AsyncOptions& opts, int64_t updates_before);

// A stage's weight versions. The parameters are the working copy F and B compute with (autograd
// keeps references to them); use(v) copies version v in when another is there, keeping a copy of
// what it replaces while some micro-batch still needs it; update() steps the optimizer on the newest.
class WeightVersions {
 public:
  WeightVersions(std::vector<Tensor> params, optim::Optimizer& opt);

  int64_t latest() const { return latest_; }
  // The parameters hold version v afterwards (v must still be held).
  void use(int64_t v);
  // The parameters take the newest version, the optimizer steps with their .grad(), the gradients are
  // zeroed: version latest() + 1.
  void update();
  // No micro-batch needs version v any more (the newest stays: the next update starts from it).
  void release(int64_t v);

  // Versions held now: every version not released, and the newest.
  int held() const { return static_cast<int>(alive_.size()); }
  // Bytes of the held versions, the parameters' own copy included (held() x the stage's weights).
  int64_t held_bytes() const { return held() * param_bytes_; }
  int64_t copies() const { return copies_made_; }  // whole-stage copies made so far (use and update)

 private:
  void save(int64_t v);  // a copy of the parameters as version v
  void drop_released();

  std::vector<Tensor> params_;
  optim::Optimizer& opt_;
  int64_t latest_ = 0, in_params_ = 0, param_bytes_ = 0, copies_made_ = 0;
  std::map<int64_t, std::vector<Tensor>> saved_;  // copies; the parameters hold in_params_
  std::set<int64_t> alive_;     // held: not yet released, or the newest
  std::set<int64_t> released_;  // released but kept: the newest (dropped once superseded)
};

}  // namespace minipipe::parallel
