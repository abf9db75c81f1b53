// The backward engine: find every node reachable from the roots, count the edges that feed
// each, then run nodes in topological order (Kahn's algorithm), summing the gradients that
// reach a node before it runs. As small as micrograd's, plus saved-tensor release.
#include <algorithm>
#include <deque>
#include <unordered_map>

#include "autograd/node.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::autograd {

namespace {

thread_local bool grad_mode_enabled = true;

Edge edge_of(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return {impl->grad_fn, impl->output_nr};
  // A leaf: every use shares one accumulator, so all of them sum into the same .grad().
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    impl->grad_accumulator = acc;
  }
  return {acc, 0};
}

void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) slot = g;
  else slot = ops::add(slot, g);
}

}  // namespace

Node::~Node() {
  // Like libtorch's deleteNode: take the edges of every node we hold the last reference to
  // before it dies, so each destructor runs with no children left to free.
  std::vector<std::shared_ptr<Node>> stack;
  for (Edge& e : next_edges_)
    if (e.fn) stack.push_back(std::move(e.fn));
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    if (n.use_count() == 1)
      for (Edge& e : n->next_edges_)
        if (e.fn) stack.push_back(std::move(e.fn));
  }
}

thread_local WeightGradQueue* weight_grad_queue = nullptr;

void WeightGradQueue::run() {
  NoGradGuard no_grad;
  std::vector<std::function<void()>> work = std::move(work_);
  work_.clear();
  bytes_ = 0;
  for (auto& w : work) w();
}

DeferWeightGrads::DeferWeightGrads(WeightGradQueue* queue) : prev_(weight_grad_queue) { weight_grad_queue = queue; }
DeferWeightGrads::~DeferWeightGrads() { weight_grad_queue = prev_; }
WeightGradQueue* current_weight_grad_queue() { return weight_grad_queue; }

void InputGrads::defer(size_t i, std::function<Tensor(const Tensor& into)> compute, int64_t bytes) {
  MP_INTERNAL_ASSERT(can_defer(i), "input ", i, " cannot be deferred");
  // The leaf's accumulator runs in W with the gradient, or with none when compute added it into
  // .grad() itself (its hooks fire then either way); in B the engine delivers nothing to it, so
  // it does not run.
  current_weight_grad_queue()->push([leaf = leaves_[i], compute = std::move(compute)] {
    leaf->apply(compute(leaf->accumulation_target()));
  }, bytes);
}

bool GradMode::is_enabled() { return grad_mode_enabled; }
void GradMode::set_enabled(bool enabled) { grad_mode_enabled = enabled; }

InputGrads AccumulateGrad::apply(const Tensor& g) {
  Tensor& grad = leaf_.mutable_grad();
  if (g.defined()) {
    MP_INTERNAL_ASSERT(g.sizes() == leaf_.sizes(), "gradient ", shape_str(g.sizes()), " for leaf ",
                       shape_str(leaf_.sizes()));
    if (!grad.defined()) {
      // The first gradient: keep it when nobody else can see its memory (the engine holds the only
      // handle on a freshly computed tensor, as it almost always does), else copy it, as PyTorch does.
      if (g.dtype() == leaf_.dtype() && !g.requires_grad() && g.is_sole_owner()) grad = g;
      else grad = ops::clone(ops::to(g, leaf_.dtype()));
    } else {
      ops::add_(grad, ops::to(g, grad.dtype()));
    }
  }
  // The engine ran this node once, with the sum of every contribution: the gradient is complete.
  for (const auto& [id, hook] : leaf_.impl()->post_accumulate_hooks) hook(leaf_);
  return InputGrads({});
}

Tensor AccumulateGrad::accumulation_target() const {
  const Tensor& grad = leaf_.grad();
  if (!grad.defined() || !grad.is_contiguous() || grad.dtype() != leaf_.dtype() || grad.sizes() != leaf_.sizes())
    return {};
  return grad;
}

int register_post_accumulate_grad_hook(const Tensor& leaf, std::function<void(const Tensor&)> hook) {
  MP_CHECK(leaf.defined() && leaf.is_leaf() && leaf.requires_grad(),
           "register_post_accumulate_grad_hook: needs a leaf tensor that requires grad");
  MP_CHECK(hook != nullptr, "register_post_accumulate_grad_hook: the hook is empty");
  auto& hooks = leaf.impl()->post_accumulate_hooks;
  const int id = hooks.empty() ? 0 : hooks.back().first + 1;
  hooks.emplace_back(id, std::move(hook));
  return id;
}

void remove_post_accumulate_grad_hook(const Tensor& leaf, int id) {
  MP_CHECK(leaf.defined(), "remove_post_accumulate_grad_hook: undefined tensor");
  auto& hooks = leaf.impl()->post_accumulate_hooks;
  std::erase_if(hooks, [id](const auto& h) { return h.first == id; });
}

FunctionNode::FunctionNode(std::string name, BackwardFn fn, std::vector<Edge> edges)
    : name_(std::move(name)), fn_(std::move(fn)) {
  next_edges_ = std::move(edges);
}

InputGrads FunctionNode::apply(const Tensor& grad_output) {
  MP_CHECK(fn_ != nullptr, "backward: the saved tensors of ", name_,
           " were released by an earlier backward through this graph; pass retain_graph=true to "
           "the first backward to go through a graph twice");
  std::vector<bool> needs;
  std::vector<Tensor> into;
  std::vector<std::shared_ptr<AccumulateGrad>> leaves;
  for (const Edge& e : next_edges_) {
    needs.push_back(e.valid());
    auto acc = std::dynamic_pointer_cast<AccumulateGrad>(e.fn);
    into.push_back(acc ? acc->accumulation_target() : Tensor());
    leaves.push_back(std::move(acc));
  }
  InputGrads grads(std::move(needs), std::move(into), std::move(leaves));
  fn_(grad_output, grads);
  return grads;
}

Tensor attach_node(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn) {
  std::vector<Edge> edges;
  for (const Tensor& t : inputs) {
    edges.push_back(edge_of(t));
    // A raw op may hand back an input's own handle (contiguous() of a contiguous tensor):
    // the output needs its own, or we would overwrite the input's grad_fn.
    if (t.defined() && out.is_same(t)) out = out.detach();
  }
  if (out.impl()->grad_fn || out.impl()->requires_grad) out = out.detach();
  out.impl()->grad_fn = std::make_shared<FunctionNode>(name, std::move(fn), std::move(edges));
  out.impl()->requires_grad = true;
  out.impl()->output_nr = 0;
  return out;
}

Tensor without_data(const Tensor& t) {
  MP_CHECK(t.defined(), "without_data: got an undefined tensor");
  auto impl = std::make_shared<TensorImpl>(*t.impl());
  impl->storage = nullptr;
  impl->grad = Tensor();
  return Tensor(std::move(impl));
}

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph) {
  MP_CHECK(roots.size() == grads.size(), "backward: ", roots.size(), " outputs but ", grads.size(),
           " gradients");
  NoGradGuard no_grad;  // the backward computation itself is not recorded
  std::unordered_map<Node*, Tensor> pending;  // summed gradient waiting at each node
  std::unordered_map<Node*, int> deps;        // edges still to deliver into each node
  std::vector<std::shared_ptr<Node>> root_nodes;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    MP_CHECK(r.defined() && r.requires_grad(), "backward: output ", i,
             " does not require grad (nothing to differentiate: no input requires grad, or it was "
             "computed under NoGradGuard)");
    MP_CHECK(grads[i].defined() && grads[i].sizes() == r.sizes(), "backward: gradient shape ",
             grads[i].defined() ? shape_str(grads[i].sizes()) : "undefined",
             " does not match output shape ", shape_str(r.sizes()));
    Edge e = edge_of(r);
    accumulate(pending[e.fn.get()], ops::to(grads[i], r.dtype()));
    root_nodes.push_back(e.fn);
  }
  // Count incoming edges over the reachable graph (iterative DFS: graphs can be deep).
  std::vector<Node*> stack;
  std::unordered_map<Node*, bool> seen;
  for (auto& n : root_nodes)
    if (!seen[n.get()]) {
      seen[n.get()] = true;
      stack.push_back(n.get());
    }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges()) {
      if (!e.valid()) continue;
      ++deps[e.fn.get()];
      if (!seen[e.fn.get()]) {
        seen[e.fn.get()] = true;
        stack.push_back(e.fn.get());
      }
    }
  }
  std::unordered_map<Node*, bool> in_place;  // leaves whose .grad() a node added into itself
  std::deque<std::shared_ptr<Node>> ready;
  for (auto& n : root_nodes)
    if (deps[n.get()] == 0 && std::find(ready.begin(), ready.end(), n) == ready.end()) ready.push_back(n);
  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.front();
    ready.pop_front();
    // A node reached by no gradient (every path into it carried none) still runs its
    // bookkeeping, so the nodes below it see their edge counts fall to zero.
    InputGrads input_grads({});
    auto it = pending.find(node.get());
    if (it != pending.end()) {
      Tensor g = std::move(it->second);
      pending.erase(it);
      input_grads = node->apply(g);
    } else if (in_place.count(node.get())) {
      input_grads = node->apply(Tensor());  // a leaf's every contribution is in its .grad(): hooks only
    }
    if (!retain_graph) node->release_variables();
    const auto& edges = node->next_edges();
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      if (i < input_grads.size()) {
        if (input_grads[i].defined()) accumulate(pending[e.fn.get()], input_grads[i]);
        if (input_grads.was_accumulated(i)) in_place[e.fn.get()] = true;
      }
      if (--deps[e.fn.get()] == 0) ready.push_back(e.fn);
    }
  }
}

}  // namespace minipipe::autograd

namespace minipipe {

void Tensor::backward(bool retain_graph) const {
  MP_CHECK(defined() && numel() == 1, "backward: without a gradient the output must be a scalar, got shape ",
           defined() ? shape_str(sizes()) : "undefined");
  autograd::backward({*this}, {ones_like(*this)}, retain_graph);
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  autograd::backward({*this}, {grad_output}, retain_graph);
}

}  // namespace minipipe
