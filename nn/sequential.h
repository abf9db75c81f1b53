// nn::Sequential: layers applied in order. Indexable and sliceable: slice(b, e) is a new
// Sequential over the same layer objects (parameters shared, original names kept, so
// `3.weight` is still `3.weight` in a pipeline stage) — the cut the pipeline makes.
#pragma once

#include <initializer_list>

#include "nn/module.h"

namespace minipipe::nn {

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> layers);

  // Appends with the next index as its name ("0", "1", ...), or with an explicit name.
  void push_back(ModulePtr m);
  void push_back(const std::string& name, ModulePtr m);
  Tensor forward(const Tensor& x) override;

  size_t size() const { return named_children().size(); }
  ModulePtr operator[](size_t i) const;
  const std::string& name_at(size_t i) const;
  std::shared_ptr<Sequential> slice(size_t begin, size_t end) const;
};

}  // namespace minipipe::nn
