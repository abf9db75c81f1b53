// Module bookkeeping: registration with name checks, recursive walks, train/eval, random-context
// binding, printing.
#include "nn/module.h"

#include <algorithm>
#include <sstream>

namespace minipipe::nn {

Tensor Module::forward(const Tensor&) {
  MP_CHECK(false, type_name_, " has no single-tensor forward(); call its own forward method");
  return {};
}

void Module::check_name(const std::string& name, const char* what) const {
  MP_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": invalid ", what,
           " name '", name, "' (must be non-empty and contain no '.')");
  auto taken = [&](const auto& v) {
    for (const auto& [n, _] : v)
      if (n == name) return true;
    return false;
  };
  MP_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), type_name_, ": name '", name,
           "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_name(name, "parameter");
  MP_CHECK(t.defined(), type_name_, ": parameter '", name, "' is undefined");
  t.set_requires_grad(requires_grad);
  params_.emplace_back(name, t);
  return t;
}

namespace {
// Swap t's storage for a contiguous copy on `device`; every handle on t's TensorImpl sees it.
void move_in_place(const Tensor& t, Device device) {
  if (t.device() == device) return;
  Tensor moved = t.to(device);
  TensorImpl* impl = t.impl();
  impl->storage = moved.storage();
  impl->strides = moved.strides();
  impl->offset = 0;
  impl->grad = Tensor();
}
}  // namespace

void Module::to(Device device) {
  for (auto& [name, p] : params_) move_in_place(p, device);
  for (auto& [name, b] : buffers_) move_in_place(b, device);
  for (auto& [name, child] : children_) child->to(device);
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name(name, "buffer");
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_name(name, "module");
  MP_CHECK(m != nullptr, type_name_, ": submodule '", name, "' is null");
  children_.emplace_back(name, std::move(m));
}

namespace {
template <typename Get>
void walk(const Module& m, const std::string& prefix, bool recurse, Get get,
          std::vector<std::pair<std::string, Tensor>>& out) {
  for (const auto& [n, t] : get(m)) out.emplace_back(prefix + n, t);
  if (!recurse) return;
  for (const auto& [n, c] : m.named_children()) walk(*c, prefix + n + ".", true, get, out);
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  walk(*this, "", recurse, [](const Module& m) -> const auto& { return m.params_; }, out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  walk(*this, "", recurse, [](const Module& m) -> const auto& { return m.buffers_; }, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, c] : children_) c->train(on);
}

void Module::set_random_context(std::shared_ptr<RandomContext> ctx) { bind_random(ctx, ""); }

void Module::bind_random(const std::shared_ptr<RandomContext>& ctx, const std::string& path) {
  random_ = ctx;
  random_path_ = path;
  for (auto& [n, c] : children_) c->bind_random(ctx, path.empty() ? n : path + "." + n);
}

RandomSource Module::random_source(std::string_view site) const {
  if (!random_) return {};
  return random_->key(random_path_ + "#" + std::string(site));
}

std::vector<std::shared_ptr<RandomContext>> random_contexts(const Module& m) {
  std::vector<std::shared_ptr<RandomContext>> out;
  if (m.random_context() && std::find(out.begin(), out.end(), m.random_context()) == out.end())
    out.push_back(m.random_context());
  for (const auto& [n, c] : m.named_children())
    for (auto& ctx : random_contexts(*c))
      if (std::find(out.begin(), out.end(), ctx) == out.end()) out.push_back(ctx);
  return out;
}

void Module::zero_grad() {
  for (Tensor t : parameters()) t.mutable_grad() = Tensor();
}

std::string Module::repr(int indent) const {
  std::ostringstream os;
  os << type_name_ << "(" << extra_repr();
  if (!children_.empty()) {
    os << "\n";
    for (const auto& [n, c] : children_)
      os << std::string(indent + 2, ' ') << "(" << n << "): " << c->repr(indent + 2) << "\n";
    os << std::string(indent, ' ');
  }
  os << ")";
  return os.str();
}

}  // namespace minipipe::nn
