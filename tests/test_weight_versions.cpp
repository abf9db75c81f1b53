// The asynchronous schedules' version plans against closed forms (tests/async_reference.h): which
// version every F and B reads, when each stage updates, and how many versions a stage must hold —
// counted here from first principles (a version is held while some action still to run reads it,
// or the next step will, or it is the newest) — for P 1..5, M 1..10, before and after earlier steps,
// lowered or not. Then the WeightVersions store on one parameter with plain SGD, exact values.
#include <gtest/gtest.h>

#include <set>

#include "async_reference.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"

namespace minipipe::parallel {
namespace {

using test_util::AsyncRule;

AsyncOptions options_of(const AsyncRule& a) {
  AsyncOptions o;
  o.mode = a.two_bw() ? AsyncMode::TwoBW : AsyncMode::PipeDream;
  o.window = a.window;
  o.weight_stashing = a.stashing;
  o.vertical_sync = a.vertical_sync;
  return o;
}

// Every rule the plan supports at P ranks and M micro-batches.
std::vector<AsyncRule> rules(int P, int M) {
  std::vector<AsyncRule> out;
  out.push_back({"pipedream", P, 1, true, false});
  out.push_back({"pipedream", P, 1, false, false});
  out.push_back({"pipedream", P, 1, true, true});
  for (int W = 1; W <= M; ++W)  // a window covers the warm-up, or is the whole step (which drains)
    if (M % W == 0 && (W >= P - 1 || W == M)) out.push_back({"2bw", P, W, true, false});
  return out;
}

std::string name_of(const AsyncRule& a, int M, int r, int64_t k0) {
  return a.schedule + (a.two_bw() ? " W=" + std::to_string(a.window) : "") + (a.stashing ? "" : " no-stash") +
         (a.vertical_sync ? " vsync" : "") + " P=" + std::to_string(a.stages) + " M=" + std::to_string(M) +
         " rank " + std::to_string(r) + " k0=" + std::to_string(k0);
}

// The most versions rank r must hold at once, from first principles over 1F1B's order: after each
// action, the versions that an action still to run reads, or the next step's first window reads
// (2BW: one behind the newest), plus the newest — only versions that exist by then.
int held_from_first_principles(const AsyncRule& a, int M, int r, int64_t k0) {
  const Program prog = one_f_one_b(a.stages, M);
  const std::vector<Action>& list = prog.on(r);
  std::vector<int64_t> reads;
  for (const Action& x : list)
    reads.push_back(x.op == Op::F ? test_util::forward_version(a, r, x.microbatch, k0)
                                  : test_util::backward_version(a, r, x.microbatch, k0));
  const int64_t updates = a.two_bw() ? M / a.window : M;
  const int64_t next_first = a.two_bw() ? std::max<int64_t>(0, k0 + updates - 1) : k0 + updates;
  int64_t latest = k0;
  int peak = 0;
  for (size_t i = 0; i <= list.size(); ++i) {  // i: actions done
    if (i > 0 && list[i - 1].op == Op::B && test_util::updates_after(a, list[i - 1].microbatch)) ++latest;
    std::set<int64_t> need{latest};
    for (size_t j = i; j < list.size(); ++j)
      if (reads[j] <= latest) need.insert(reads[j]);
    for (int64_t v = next_first; v <= latest; ++v) need.insert(v);
    peak = std::max(peak, static_cast<int>(need.size()));
  }
  return peak;
}

TEST(VersionPlan, ReadsUpdatesAndHeldVersionsFollowTheClosedForms) {
  int checked = 0;
  for (int P = 1; P <= 5; ++P)
    for (int M = 1; M <= 10; ++M)
      for (const AsyncRule& a : rules(P, M))
        for (int64_t k0 : {0, 5})
          for (bool lowered : {false, true}) {
            const Program prog = lowered ? lower(one_f_one_b(P, M)) : one_f_one_b(P, M);
            for (int r = 0; r < P; ++r) {
              SCOPED_TRACE(name_of(a, M, r, k0) + (lowered ? " lowered" : ""));
              const VersionPlan plan = plan_versions(prog, r, options_of(a), k0);
              const auto& list = prog.on(r);
              ASSERT_EQ(plan.read.size(), list.size());
              int64_t updates = 0;
              for (size_t i = 0; i < list.size(); ++i) {
                const Action& x = list[i];
                if (x.op == Op::F) EXPECT_EQ(plan.read[i], test_util::forward_version(a, r, x.microbatch, k0)) << to_string(x);
                else if (x.op == Op::B) EXPECT_EQ(plan.read[i], test_util::backward_version(a, r, x.microbatch, k0)) << to_string(x);
                else EXPECT_EQ(plan.read[i], -1) << to_string(x);
                const bool upd = x.op == Op::B && test_util::updates_after(a, x.microbatch);
                EXPECT_EQ(plan.update_after[i], upd) << to_string(x);
                updates += upd;
              }
              EXPECT_EQ(plan.updates, updates);
              EXPECT_EQ(plan.updates, a.two_bw() ? M / a.window : M);
              EXPECT_EQ(plan.peak_held, held_from_first_principles(a, M, r, k0));
              ++checked;
            }
          }
  EXPECT_GT(checked, 1000);
}

TEST(VersionPlan, SteadyStateHoldsWhatThePapersSay) {
  // PipeDream with stashing: rank r keeps one version per micro-batch in flight, P - r, once a step
  // is long enough to reach the steady state (M >= 2(P - 1 - r) + 1); vertical sync keeps P on every
  // rank; 2BW two (from its first update on).
  for (int P = 1; P <= 6; ++P)
    for (int r = 0; r < P; ++r) {
      const int M = 2 * P + 1;
      const Program prog = one_f_one_b(P, M);
      SCOPED_TRACE("P=" + std::to_string(P) + " rank " + std::to_string(r));
      EXPECT_EQ(plan_versions(prog, r, {.mode = AsyncMode::PipeDream}, 3).peak_held, P - r);
      EXPECT_EQ(plan_versions(prog, r, {.mode = AsyncMode::PipeDream, .vertical_sync = true}, 3).peak_held, P);
      EXPECT_EQ(plan_versions(prog, r, {.mode = AsyncMode::PipeDream, .weight_stashing = false}, 3).peak_held, 1);
      EXPECT_EQ(plan_versions(prog, r, {.mode = AsyncMode::TwoBW, .window = M}, 0).peak_held, std::min(2, M));
      EXPECT_EQ(plan_versions(prog, r, {.mode = AsyncMode::TwoBW, .window = M}, 4).peak_held, 2);
    }
}

TEST(VersionPlan, ReleasesEveryVersionTheNextStepDoesNotRead) {
  for (const AsyncRule& a : rules(4, 8)) {
    SCOPED_TRACE(name_of(a, 8, 0, 2));
    const VersionPlan plan = plan_versions(one_f_one_b(4, 8), 0, options_of(a), 2);
    std::set<int64_t> released;
    for (const auto& list : plan.release)
      for (int64_t v : list) EXPECT_TRUE(released.insert(v).second) << "version " << v << " released twice";
    const int64_t oldest = a.two_bw() ? 1 : 2;  // what the step starts with: the newest (and one before, 2BW)
    for (int64_t v = oldest; v < plan.keep_from; ++v) EXPECT_TRUE(released.count(v)) << "version " << v << " kept";
    for (int64_t v : released) EXPECT_LT(v, plan.keep_from);
    EXPECT_EQ(plan.keep_from, a.two_bw() ? 2 + plan.updates - 1 : 2 + plan.updates);
  }
}

TEST(VersionPlan, RefusesWhatItCannotRun) {
  try {
    plan_versions(one_f_one_b(4, 8), 0, {.mode = AsyncMode::TwoBW, .window = 2}, 0);
    FAIL() << "a 2BW window shorter than P - 1 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a window of at least P - 1 = 3 is needed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan_versions(one_f_one_b(2, 5), 0, {.mode = AsyncMode::TwoBW, .window = 2}, 0), Error);  // 2 does not divide 5
  EXPECT_THROW(plan_versions(zb_h1(2, 4), 0, {.mode = AsyncMode::PipeDream}, 0), Error);  // W actions
  EXPECT_THROW(plan_versions(one_f_one_b(2, 4), 0, {}, 0), Error);                       // not async
  EXPECT_EQ(async_mode_of("pipedream"), AsyncMode::PipeDream);
  EXPECT_EQ(async_mode_of("2bw"), AsyncMode::TwoBW);
  EXPECT_EQ(async_mode_of("1f1b"), AsyncMode::None);
}

// One weight w with gradient 1 and SGD(lr 0.5): every update subtracts 0.5.
struct OneWeight {
  Tensor w = [] {
    Tensor t = full({1}, 4.0, DType::Float64);
    t.set_requires_grad(true);
    return t;
  }();
  optim::SGD sgd{std::vector<Tensor>{w}, optim::SGDOptions{.lr = 0.5}};
  double value() const { return w.item(); }
  void grad_one() { w.mutable_grad() = full({1}, 1.0, DType::Float64); }
};

TEST(WeightVersions, KeepsEveryVersionUntilReleasedAndTheNewestAlways) {
  OneWeight o;
  WeightVersions store({o.w}, o.sgd);
  EXPECT_EQ(store.held(), 1);
  o.grad_one();
  store.update();  // version 1 = 3.5; version 0 (4.0) is still needed: copied on write
  EXPECT_EQ(store.latest(), 1);
  EXPECT_EQ(o.value(), 3.5);
  EXPECT_FALSE(o.w.grad().defined()) << "update zeroes the gradients";
  o.grad_one();
  store.update();  // version 2 = 3.0
  EXPECT_EQ(store.held(), 3);
  EXPECT_EQ(store.held_bytes(), 3 * 8);
  store.use(0);
  EXPECT_EQ(o.value(), 4.0);
  store.use(1);
  EXPECT_EQ(o.value(), 3.5);
  o.grad_one();
  store.update();  // from the newest (3.0), not from what the parameter held (3.5)
  EXPECT_EQ(o.value(), 2.5);
  store.release(1);
  EXPECT_EQ(store.held(), 3);  // 0, 2, 3
  EXPECT_THROW(store.use(1), Error);
  store.use(2);
  EXPECT_EQ(o.value(), 3.0);
  store.release(3);  // the newest stays until an update supersedes it
  store.use(3);
  EXPECT_EQ(o.value(), 2.5);
  store.release(0);
  store.release(2);
  EXPECT_EQ(store.held(), 1);
  o.grad_one();
  store.update();  // version 3 was released: no copy kept
  EXPECT_EQ(store.held(), 1);
  EXPECT_EQ(o.value(), 2.0);
  EXPECT_THROW(store.use(3), Error);
}

}  // namespace
}  // namespace minipipe::parallel
