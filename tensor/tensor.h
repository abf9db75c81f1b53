// Tensor: a handle to shared Storage plus sizes, strides, offset, dtype and device. Copying a
// Tensor copies the handle, not the data (like torch::Tensor). The tensor layer knows nothing
// about gradients: it only keeps the slots (requires_grad, grad, grad_fn) that autograd/ fills.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/small_vector.h"
#include "tensor/storage.h"

namespace minipipe {

namespace autograd {
class Node;
}

// Sizes and strides: up to 6 dims held inline, no heap allocation (small_vector.h).
using Shape = SmallVector<int64_t, 6>;
std::string shape_str(const Shape& s);  // "[64, 784]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// What a factory makes: `zeros({2, 3}, DType::Float64)` or `zeros({2, 3}, opts)`.
struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  TensorOptions() = default;
  TensorOptions(DType d) : dtype(d) {}  // NOLINT: implicit on purpose
  TensorOptions(Device d) : device(d) {}  // NOLINT
  TensorOptions(DType t, Device d) : dtype(t), device(d) {}
};

class Tensor;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // undefined: no storage
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  [[noreturn]] static void undefined_error(const char* what);
  [[noreturn]] static void zero_dim_error(const char* what, int64_t d);
  [[noreturn]] void device_data_error() const;

  bool defined() const { return impl_ != nullptr; }
  const Shape& sizes() const;
  const Shape& strides() const;
  int64_t size(int64_t dim) const;    // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t dim() const;
  int64_t numel() const;
  int64_t storage_offset() const;
  DType dtype() const;
  Device device() const;
  bool is_cuda() const { return device().is_cuda(); }
  TensorOptions options() const { return {dtype(), device()}; }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(dtype()); }

  // Pointer to element [0, 0, ...] (storage offset applied) for host code: checks the dtype, and
  // that the tensor is on the CPU (kernels of other devices take raw_data()).
  template <typename T> T* data_ptr() const;
  void* raw_data() const;
  const std::shared_ptr<Storage>& storage() const;
  bool shares_storage(const Tensor& other) const;
  // Nobody else can see this tensor's memory: this handle is the only one on its TensorImpl, that
  // impl the only one on its storage, and it spans the whole storage contiguously. (Autograd keeps
  // such a gradient as the leaf's .grad() instead of copying it.)
  bool is_sole_owner() const;
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  TensorImpl* impl() const { return impl_.get(); }

  // These three copy from the device first when the tensor is not on the CPU.
  double item() const;  // the value of a one-element tensor, as double
  template <typename T> std::vector<T> to_vector() const;  // row-major copy of the values
  std::string str() const;  // PyTorch-like printing: values, shape, dtype, device
  // This tensor on `device`: itself when already there, else a contiguous copy (ops::to).
  Tensor to(Device device) const;

  // A new handle on the same storage and view, cut from the autograd graph.
  Tensor detach() const;

  // ---- autograd slots (semantics live in autograd/) ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r);  // only on leaves
  bool is_leaf() const;
  const Tensor& grad() const;  // undefined until a backward reaches this leaf
  Tensor& mutable_grad();
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  // Defined in autograd/engine.cpp. Without an argument the tensor must be a scalar.
  void backward(bool retain_graph = false) const;
  void backward(const Tensor& grad_output, bool retain_graph = false) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// The data behind a Tensor handle. Views share `storage`; each has its own sizes/strides/offset.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  // autograd slots
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;  // set on outputs of differentiable ops
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves: the node that fills `grad`
  uint32_t output_nr = 0;
  // leaves: called once per backward, after `grad` holds every contribution of that backward
  // (autograd::register_post_accumulate_grad_hook), by id
  std::vector<std::pair<int, std::function<void(const Tensor&)>>> post_accumulate_hooks;
};

// A tensor viewing `storage` with the given geometry (no copy).
Tensor make_view(const std::shared_ptr<Storage>& storage, Shape sizes, Shape strides,
                 int64_t offset, DType dtype);
// A fresh, uninitialised, contiguous tensor.
Tensor empty(const Shape& sizes, TensorOptions opts = {});

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Normalise a possibly negative dim against `ndim`; `op` names the caller in the error. Inline:
// every size(d) and stride(d) goes through it.
[[noreturn]] void wrap_dim_error(int64_t dim, int64_t ndim, const char* op);
inline int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t n = ndim > 0 ? ndim : 1;  // a 0-dim tensor takes dim 0 / -1 (reductions)
  if (dim < -n || dim >= n) [[unlikely]]
    wrap_dim_error(dim, ndim, op);
  return dim < 0 ? dim + n : dim;
}

// The accessors every op calls, inline (the error paths are not).
inline const Shape& Tensor::sizes() const {
  if (!impl_) [[unlikely]]
    undefined_error("sizes");
  return impl_->sizes;
}
inline const Shape& Tensor::strides() const {
  if (!impl_) [[unlikely]]
    undefined_error("strides");
  return impl_->strides;
}
inline int64_t Tensor::dim() const { return static_cast<int64_t>(sizes().size()); }
// wrap_dim lets a 0-dim tensor take dim 0 / -1 (for reductions), but it has no size to return.
inline int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  if (n == 0) [[unlikely]]
    zero_dim_error("size", d);
  return impl_->sizes[static_cast<size_t>(wrap_dim(d, n, "size"))];
}
inline int64_t Tensor::stride(int64_t d) const {
  const int64_t n = dim();
  if (n == 0) [[unlikely]]
    zero_dim_error("stride", d);
  return impl_->strides[static_cast<size_t>(wrap_dim(d, n, "stride"))];
}
// Every op's dispatch asks each operand's device: inline.
inline Device Tensor::device() const {
  if (!impl_) [[unlikely]]
    undefined_error("device");
  return impl_->storage ? impl_->storage->device() : Device::cpu();
}
inline bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }
inline DType Tensor::dtype() const {
  if (!impl_) [[unlikely]]
    undefined_error("dtype");
  return impl_->dtype;
}

template <typename T>
T* Tensor::data_ptr() const {
  MP_CHECK(defined(), "data_ptr: undefined tensor");
  if (!device().is_cpu()) [[unlikely]]
    device_data_error();
  MP_CHECK(dtype() == dtype_of<T>(), "data_ptr: tensor has dtype ", dtype_name(dtype()),
           ", asked for ", dtype_name(dtype_of<T>()));
  return static_cast<T*>(raw_data());
}

}  // namespace minipipe
