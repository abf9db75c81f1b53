// Layer profiling for the by_time partition, and splitting a Sequential by a Partition.
#include "parallel/profile.h"

#include <algorithm>
#include <chrono>
#include <functional>

namespace minipipe::parallel {

LayerCosts profile_layers(nn::Sequential& model, const Tensor& sample, const ProfileOptions& opts) {
  MP_CHECK(opts.repeats >= 1 && opts.warmup >= 0, "profile_layers: need repeats >= 1 and warmup >= 0, got repeats=",
           opts.repeats, " warmup=", opts.warmup);
  MP_CHECK(model.size() > 0, "profile_layers: the model has no layers");
  // Nothing the profile does may leak into training: the grads it computes (backward would add
  // into existing ones, so they are set aside first) and every random state it can touch. Its
  // dropout draws from a private context bound for the run — not the model's contexts, not the
  // default generator, which several ranks profiling at once (threads) would share — and the
  // model's bindings, its contexts' states and the default generator (for layers that use it
  // directly) are put back afterwards.
  struct Restore {
    std::vector<Tensor> params, grads;
    Generator gen = default_generator();
    std::vector<std::shared_ptr<RandomContext>> contexts;
    std::vector<RandomContext> saved;
    std::vector<std::pair<nn::Module*, nn::Module::RandomBinding>> bindings;
    ~Restore() {
      for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i];
      default_generator() = gen;
      for (size_t i = 0; i < contexts.size(); ++i) *contexts[i] = saved[i];
      for (auto& [m, b] : bindings) m->set_random_binding(b);
    }
  } restore;
  restore.contexts = nn::random_contexts(model);
  for (const auto& c : restore.contexts) restore.saved.push_back(*c);
  std::function<void(nn::Module&)> save_bindings = [&](nn::Module& m) {
    restore.bindings.emplace_back(&m, m.random_binding());
    for (const auto& [n, c] : m.named_children()) save_bindings(*c);
  };
  save_bindings(model);
  model.set_random_context(std::make_shared<RandomContext>(0));
  restore.params = model.parameters();
  for (Tensor& p : restore.params) {
    restore.grads.push_back(p.grad());
    p.mutable_grad() = Tensor();
  }

  LayerCosts costs;
  Tensor h = sample;
  for (size_t i = 0; i < model.size(); ++i) {
    nn::Module& layer = *model[i];
    std::vector<double> times;
    Tensor out;
    for (int r = 0; r < opts.warmup + opts.repeats; ++r) {
      Tensor x = h.detach();
      if (is_floating(x.dtype())) x.set_requires_grad(true);
      const auto t0 = std::chrono::steady_clock::now();
      out = layer.forward(x);
      if (out.requires_grad()) out.backward(ones_like(out));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r >= opts.warmup) times.push_back(s);
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    costs.cost.push_back(times[times.size() / 2]);
    costs.params.push_back(layer.num_parameters());
    costs.output_bytes.push_back(static_cast<int64_t>(out.nbytes()));
    h = out.detach();
  }
  return costs;
}

Partition by_time(nn::Sequential& model, const Tensor& sample, int num_stages, const ProfileOptions& opts) {
  MP_CHECK(num_stages >= 1 && static_cast<size_t>(num_stages) <= model.size(), "by_time: cannot cut ",
           model.size(), " layers into ", num_stages, " stages (need 1 <= stages <= layers)");
  return by_cost(profile_layers(model, sample, opts).cost, num_stages);
}

std::vector<std::shared_ptr<nn::Sequential>> split(const nn::Sequential& model, const Partition& p) {
  MP_CHECK(static_cast<size_t>(p.num_layers()) == model.size(), "split: the partition covers ", p.num_layers(),
           " layers, the model has ", model.size());
  std::vector<std::shared_ptr<nn::Sequential>> stages;
  for (int s = 0; s < p.num_stages(); ++s) stages.push_back(model.slice(p.begin(s), p.end(s)));
  return stages;
}

}  // namespace minipipe::parallel
