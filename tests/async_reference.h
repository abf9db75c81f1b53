// The asynchronous pipelines' oracles, written from the papers' rules and not from
// parallel/weight_versions.cpp: which weight version each forward and backward reads (closed forms
// over 1F1B's order), and a single-process reference that trains one model with those versions —
// each stage's gradient taken at its own delayed weights (PipeDream) or one window behind (2BW) —
// for the pipelined runs to match.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "parallel/partition.h"
#include "parallel/weight_versions.h"
#include "pipeline_models.h"

namespace minipipe::test_util {

struct AsyncRule {
  std::string schedule = "pipedream";  // or "2bw"
  int stages = 2;
  int window = 1;  // 2bw
  bool stashing = true;
  bool vertical_sync = false;
  bool two_bw() const { return schedule == "2bw"; }
};

// The version F of micro-batch u reads on stage s, with k0 updates (2BW: windows) before the call.
// PipeDream: in 1F1B order stage s runs P-1-s forwards ahead, so F(u) follows max(0, u-(P-1-s)) of the
// call's backwards, each an update. Vertical sync: stage 0's count, on every stage. 2BW: window t
// reads w(t-1).
inline int64_t forward_version(const AsyncRule& a, int s, int u, int64_t k0) {
  const int P = a.stages;
  if (a.two_bw()) return std::max<int64_t>(0, k0 + u / a.window - 1);
  return k0 + std::max(0, u - (P - 1 - (a.vertical_sync ? 0 : s)));
}
// The version B of micro-batch u reads: its forward's (stashing), or the newest (no stashing: B(u)
// follows the call's u earlier backwards on its stage).
inline int64_t backward_version(const AsyncRule& a, int s, int u, int64_t k0) {
  return a.stashing ? forward_version(a, s, u, k0) : k0 + u;
}
inline bool updates_after(const AsyncRule& a, int u) { return !a.two_bw() || u % a.window == a.window - 1; }

// One device, the whole model, the rule's versions. Per stage (the pipeline's uniform cut into P
// chunks): its parameters, its own optimizer (as each rank has), and every version made so far.
struct AsyncReference {
  AsyncRule rule;
  std::shared_ptr<nn::Sequential> model;
  std::shared_ptr<RandomContext> random;
  std::vector<std::vector<Tensor>> params;
  std::vector<std::unique_ptr<optim::AdamW>> opts;
  std::vector<std::vector<std::vector<Tensor>>> versions;  // [stage][version] -> weights
  int64_t updates = 0;                                      // per stage (2BW: windows done)

  AsyncReference(AsyncRule r, ModelKind kind, DType dtype, double dropout, uint64_t seed, uint64_t dropout_seed)
      : rule(std::move(r)), model(build_model(kind, dtype, dropout, seed)),
        random(std::make_shared<RandomContext>(dropout_seed)) {
    model->set_random_context(random);
    const parallel::Partition cut = parallel::uniform(static_cast<int>(model->size()), rule.stages);
    for (int s = 0; s < rule.stages; ++s) {
      params.push_back(model->slice(cut.begin(s), cut.end(s))->parameters());
      opts.push_back(std::make_unique<optim::AdamW>(params.back(), optim::AdamWOptions{.lr = 1e-2}));
      versions.push_back({snapshot(s)});
    }
  }
  std::vector<Tensor> snapshot(int s) const {
    std::vector<Tensor> out;
    for (const Tensor& p : params[static_cast<size_t>(s)]) out.push_back(ops::clone(p.detach()));
    return out;
  }
  void load(int s, int64_t v) {
    NoGradGuard no_grad;
    const auto& w = versions[static_cast<size_t>(s)].at(static_cast<size_t>(v));
    for (size_t i = 0; i < w.size(); ++i) ops::copy_(params[static_cast<size_t>(s)][i].detach(), w[i]);
  }

  // One train_step's worth: M micro-batches of equal rows, the dropout keys of pipeline step `step`.
  // Returns the mean of the micro-batch losses, as Pipe::train_step does.
  double call(const Batch& b, int M, const parallel::LossFn& loss, uint64_t step) {
    const int P = rule.stages;
    const int64_t rows = b.x.size(0) / M;
    const double scale = rule.two_bw() ? 1.0 / rule.window : 1.0;
    const int64_t k0 = updates;
    double sum = 0;
    for (int u = 0; u < M; ++u) {
      for (int s = 0; s < P; ++s) load(s, forward_version(rule, s, u, k0));
      random->step = step;
      random->sample_offset = u * rows;
      Tensor l = loss(model->forward(ops::narrow(b.x, 0, u * rows, rows)), ops::narrow(b.y, 0, u * rows, rows));
      sum += l.item();
      // Without stashing the backward's Jacobians are those of the weights the stage holds then.
      for (int s = 0; s < P; ++s) load(s, backward_version(rule, s, u, k0));
      l.backward(scalar_tensor(scale, l.dtype()));
      if (!updates_after(rule, u)) continue;
      for (int s = 0; s < P; ++s) {  // each stage steps from its newest weights with this gradient
        load(s, static_cast<int64_t>(versions[static_cast<size_t>(s)].size()) - 1);
        opts[static_cast<size_t>(s)]->step();
        opts[static_cast<size_t>(s)]->zero_grad();
        versions[static_cast<size_t>(s)].push_back(snapshot(s));
      }
      ++updates;
    }
    for (int s = 0; s < P; ++s) load(s, updates);  // the newest weights, as the pipeline leaves them
    return sum / M;
  }
};

}  // namespace minipipe::test_util
