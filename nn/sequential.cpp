// nn::Sequential: ordered layers, indexing, and slicing into sub-Sequentials.
#include "nn/sequential.h"

namespace minipipe::nn {

Sequential::Sequential(std::initializer_list<ModulePtr> layers) : Module("Sequential") {
  for (auto& m : layers) push_back(m);
}

void Sequential::push_back(ModulePtr m) { push_back(std::to_string(size()), std::move(m)); }

void Sequential::push_back(const std::string& name, ModulePtr m) { add_child(name, std::move(m)); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& [_, m] : named_children()) h = m->forward(h);
  return h;
}

ModulePtr Sequential::operator[](size_t i) const {
  MP_CHECK(i < size(), "Sequential: index ", i, " out of range for ", size(), " layers");
  return named_children()[i].second;
}

const std::string& Sequential::name_at(size_t i) const {
  MP_CHECK(i < size(), "Sequential: index ", i, " out of range for ", size(), " layers");
  return named_children()[i].first;
}

std::shared_ptr<Sequential> Sequential::slice(size_t begin, size_t end) const {
  MP_CHECK(begin <= end && end <= size(), "Sequential::slice: range [", begin, ", ", end,
           ") is invalid for ", size(), " layers");
  auto s = std::make_shared<Sequential>();
  for (size_t i = begin; i < end; ++i) s->push_back(name_at(i), (*this)[i]);
  return s;
}

}  // namespace minipipe::nn
