// nn::Module, as in libtorch's C++ frontend: a module owns named parameters, buffers and child
// modules; named_parameters() walks them with dotted names (`blocks.0.attn.qkv.weight`).
// Modules live in std::shared_ptr so a pipeline stage can hold a slice of a model's layers.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/functions.h"

namespace minipipe::nn {

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // One tensor in, one out: what Sequential (and so the pipeline) chains.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  int64_t num_parameters() const;

  // Registering returns the handle: the module and the caller share the same tensor.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Drops every parameter's gradient (set to none, as PyTorch's default).
  void zero_grad();
  // Moves every parameter and buffer (recursively) to `device`, in place: each tensor keeps its
  // identity (layers and optimizers holding it see the move), its data is copied across and its
  // gradient dropped. Make the optimizer after the move (its state lives where the parameters do).
  void to(Device device);

  // Dropout randomness. Binds this module and every descendant to `ctx` (null: unbind). A bound
  // layer's dropout masks are counter-based, keyed by (ctx's seed, the layer's dotted path and site,
  // ctx.step, ctx.sample_offset + row): the same layer draws the same mask in the whole model and in
  // a pipeline stage sliced from it, for any micro-batch cut. Call it on the model or on a slice of
  // it (paths start there). Unbound layers draw from the default generator, as PyTorch's do.
  void set_random_context(std::shared_ptr<RandomContext> ctx);
  const std::shared_ptr<RandomContext>& random_context() const { return random_; }
  // This module's own binding (context and path), to save and put back (profiling binds a model
  // to a private context for a while). Not recursive.
  struct RandomBinding {
    std::shared_ptr<RandomContext> context;
    std::string path;
  };
  RandomBinding random_binding() const { return {random_, random_path_}; }
  void set_random_binding(RandomBinding b) {
    random_ = std::move(b.context);
    random_path_ = std::move(b.path);
  }

  const std::string& type_name() const { return type_name_; }
  virtual std::string extra_repr() const { return ""; }
  std::string repr(int indent = 0) const;  // the tree, like print(model) in PyTorch

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  // What dropout site `site` of this module draws from: a counter key when bound, else the default
  // generator. E.g. `dropout(y, p, is_training(), random_source("resid"))`.
  RandomSource random_source(std::string_view site) const;

 private:
  void check_name(const std::string& name, const char* what) const;
  void bind_random(const std::shared_ptr<RandomContext>& ctx, const std::string& path);
  std::string type_name_;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::shared_ptr<RandomContext> random_;
  std::string random_path_;  // this module's dotted path below the set_random_context call
};

using ModulePtr = std::shared_ptr<Module>;

// Every distinct RandomContext bound to `m` or a module below it (what a caller that runs the
// model for another purpose — profiling — saves and restores).
std::vector<std::shared_ptr<RandomContext>> random_contexts(const Module& m);

}  // namespace minipipe::nn
