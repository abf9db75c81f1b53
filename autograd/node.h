// The autograd graph: a Node per differentiable op, Edges to the nodes that made its inputs.
// Nodes keep the tensors their backward needs and drop them (release_variables) once used, so
// a second backward through the same graph is an error unless the first retained it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace minipipe::autograd {

class Node;

// Zero-bubble schedules split a backward in two: B, the gradients that flow on to other nodes (a
// pipeline stage's input gradient, what the previous stage waits for), and W, the weight
// gradients, run later to fill the pipeline's idle time. While a WeightGradQueue is installed on
// this thread (DeferWeightGrads), a backward function may put the work whose only result is a
// leaf's gradient on the queue instead of doing it (InputGrads::defer); run() does it, in order,
// adding into the leaves' .grad() and firing their post-accumulate hooks. Linear splits this way
// (its dW and db GEMMs are most of a backward's weight work); every other op computes all its
// gradients in B.
class WeightGradQueue {
 public:
  // `bytes`: what the piece keeps alive until it runs (its saved tensors), for memory accounts.
  void push(std::function<void()> work, int64_t bytes = 0) {
    work_.push_back(std::move(work));
    bytes_ += bytes;
  }
  void run();  // every queued piece in order; the queue is empty after
  bool empty() const { return work_.empty(); }
  size_t size() const { return work_.size(); }
  int64_t bytes() const { return bytes_; }

 private:
  std::vector<std::function<void()>> work_;
  int64_t bytes_ = 0;
};

// Installs `queue` for backwards run on this thread in its scope (each `local` rank is a thread).
class DeferWeightGrads {
 public:
  explicit DeferWeightGrads(WeightGradQueue* queue);
  ~DeferWeightGrads();
  DeferWeightGrads(const DeferWeightGrads&) = delete;
  DeferWeightGrads& operator=(const DeferWeightGrads&) = delete;

 private:
  WeightGradQueue* prev_;
};
WeightGradQueue* current_weight_grad_queue();

class AccumulateGrad;

// The gradients a backward function fills: grads[i] for input i, when needs(i). Where input i is
// a leaf that already holds a gradient (the second micro-batch on), accumulate_into(i) is that
// .grad(): a backward may add its contribution there itself (one GEMM with beta = 1 instead of a
// new tensor and an add) and call accumulated(i); the engine then still runs the leaf's
// AccumulateGrad, so its hooks fire once every contribution is in.
class InputGrads {
 public:
  explicit InputGrads(std::vector<bool> needs, std::vector<Tensor> accumulate_into = {},
                      std::vector<std::shared_ptr<AccumulateGrad>> leaves = {})
      : needs_(std::move(needs)), grads_(needs_.size()), into_(std::move(accumulate_into)),
        leaves_(std::move(leaves)), accumulated_(needs_.size(), false) {
    into_.resize(needs_.size());
    leaves_.resize(needs_.size());
  }
  // Whether input i's gradient may be deferred: a weight-gradient queue is installed and input i
  // is a leaf (its gradient feeds nothing but the leaf's .grad()).
  bool can_defer(size_t i) const { return leaves_[i] != nullptr && current_weight_grad_queue() != nullptr; }
  // Queues `compute` for the W pass instead of filling grads[i]. At W it gets the leaf's .grad()
  // when there is one to add into (defined: add into it and return an undefined tensor, as with
  // accumulate_into) and returns input i's gradient otherwise.
  // `bytes`: what compute's captures keep alive until W (count a tensor shared by two pieces once).
  void defer(size_t i, std::function<Tensor(const Tensor& into)> compute, int64_t bytes = 0);
  bool needs(size_t i) const { return needs_[i]; }
  Tensor& operator[](size_t i) { return grads_[i]; }
  const Tensor& operator[](size_t i) const { return grads_[i]; }
  size_t size() const { return grads_.size(); }
  const Tensor& accumulate_into(size_t i) const { return into_[i]; }
  void accumulated(size_t i) {
    MP_INTERNAL_ASSERT(into_[i].defined() && !grads_[i].defined(), "input ", i, " has no .grad() to accumulate into");
    accumulated_[i] = true;
  }
  bool was_accumulated(size_t i) const { return accumulated_[i]; }

 private:
  std::vector<bool> needs_;
  std::vector<Tensor> grads_;
  std::vector<Tensor> into_;
  std::vector<std::shared_ptr<AccumulateGrad>> leaves_;
  std::vector<bool> accumulated_;
};


// Where a gradient flows next: input `input_nr` of node `fn` (null fn: input needs no grad).
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

class Node {
 public:
  // Frees the nodes below iteratively (engine.cpp): a long chain freed recursively, one
  // destructor inside the next, would overflow the stack.
  virtual ~Node();
  virtual std::string name() const = 0;
  // Gradient w.r.t. this node's output -> gradients w.r.t. its inputs (aligned with next_edges;
  // an undefined Tensor where an input needs none, or where the node added it into a leaf's
  // .grad() itself: InputGrads::accumulated).
  virtual InputGrads apply(const Tensor& grad_output) = 0;
  virtual void release_variables() {}
  const std::vector<Edge>& next_edges() const { return next_edges_; }

 protected:
  std::vector<Edge> next_edges_;
};

// The sink at a leaf: adds the incoming gradient into the leaf's .grad().
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(Tensor leaf) : leaf_(std::move(leaf)) {}
  std::string name() const override { return "AccumulateGrad"; }
  // An undefined grad_output: every contribution was added in place; only the hooks run.
  InputGrads apply(const Tensor& grad_output) override;
  // The leaf's .grad() when a node may add into it in place (defined, contiguous, the leaf's
  // shape and dtype); undefined otherwise.
  Tensor accumulation_target() const;

 private:
  Tensor leaf_;  // a handle on the leaf itself (same TensorImpl), not a copy of its data
};

// A backward function: (grad of the output, grads to fill). Captures what it saved (detached).
using BackwardFn = std::function<void(const Tensor& grad, InputGrads& grads)>;

// The node almost every op uses: its backward is a lambda written next to the forward.
class FunctionNode : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn, std::vector<Edge> edges);
  std::string name() const override { return name_; }
  InputGrads apply(const Tensor& grad_output) override;
  void release_variables() override { fn_ = nullptr; }

 private:
  std::string name_;
  BackwardFn fn_;  // null once released
};

// Thread-local switch for recording graphs (each `local` rank is a thread).
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// Turns graph recording off for its scope, like torch::NoGradGuard.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Makes `out` the output of a differentiable op named `name` over `inputs` when grad mode is on
// and some input requires grad: attaches a FunctionNode running `fn`. Returns `out` (or a fresh
// handle on it, never one of the inputs' handles). Templates, so that an op that records nothing
// (no grad, or NoGradGuard) never wraps its lambda in a std::function: that was a heap
// allocation per op call.
template <typename Inputs>
bool needs_graph(const Inputs& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
Tensor attach_node(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn);
template <typename F>
Tensor record(const char* name, Tensor out, std::initializer_list<Tensor> inputs, F&& fn) {
  if (!needs_graph(inputs)) return out;
  return attach_node(name, std::move(out), std::vector<Tensor>(inputs), BackwardFn(std::forward<F>(fn)));
}
template <typename F>
Tensor record_list(const char* name, Tensor out, const std::vector<Tensor>& inputs, F&& fn) {
  if (!needs_graph(inputs)) return out;
  return attach_node(name, std::move(out), inputs, BackwardFn(std::forward<F>(fn)));
}

// Calls `hook(leaf)` at the end of every backward that reaches `leaf`, once, after its .grad()
// has received every contribution of that backward (the engine sums them before the leaf's
// accumulator runs) — PyTorch's register_post_accumulate_grad_hook. What bucketed data-parallel
// all-reduce starts from. Returns an id for remove_post_accumulate_grad_hook.
int register_post_accumulate_grad_hook(const Tensor& leaf, std::function<void(const Tensor&)> hook);
void remove_post_accumulate_grad_hook(const Tensor& leaf, int id);

// A handle with t's shape, dtype and autograd node but no data: all that backward(grad) needs of
// an output. A pipeline stage keeps this of an output it has sent, so the output's memory is freed
// as soon as the send is done (Megatron-LM's deallocate_output_tensor) unless the graph saved it.
Tensor without_data(const Tensor& t);

// Run backward from `roots` with gradients `grads` (one per root). Leaves' .grad() accumulate.
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
              bool retain_graph = false);

}  // namespace minipipe::autograd
