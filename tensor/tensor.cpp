// Tensor handle accessors, construction of views and fresh tensors, and PyTorch-like printing.
#include "tensor/tensor.h"

#include <cstdio>
#include <cmath>
#include <ostream>
#include <sstream>

#include "tensor/ops.h"

namespace minipipe {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) MP_CHECK(!__builtin_mul_overflow(n, d, &n), "shape ", shape_str(s), " has too many elements");
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

void wrap_dim_error(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  detail::throw_error(detail::str_cat(op, ": dim ", dim, " out of range for a ", ndim, "-D tensor (expected ", lo,
                                      "..", hi, ")"));
}

Tensor make_view(const std::shared_ptr<Storage>& storage, Shape sizes, Shape strides,
                 int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage;
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor empty(const Shape& sizes, TensorOptions opts) {
  for (auto d : sizes) MP_CHECK(d >= 0, "empty: negative size in shape ", shape_str(sizes));
  MP_CHECK(shape_numel(sizes) <= (int64_t{1} << 56), "empty: shape ", shape_str(sizes), " is too large to allocate");
  auto storage = std::make_shared<Storage>(shape_numel(sizes) * element_size(opts.dtype), opts.device);
  return make_view(storage, sizes, contiguous_strides(sizes), 0, opts.dtype);
}

#define MP_REQUIRE_DEFINED(what) MP_CHECK(defined(), what, ": called on an undefined tensor")

void Tensor::undefined_error(const char* what) {
  detail::throw_error(detail::str_cat(what, ": called on an undefined tensor"));
}
void Tensor::device_data_error() const {
  detail::throw_error(detail::str_cat("data_ptr: the tensor ", shape_str(sizes()), " is on ", device().str(),
                                      "; host code reads CPU tensors only (copy it with .to(Device::cpu()))"));
}
void Tensor::zero_dim_error(const char* what, int64_t d) {
  detail::throw_error(detail::str_cat(what, ": a 0-dim tensor has no dim ", d));
}

int64_t Tensor::numel() const { return shape_numel(sizes()); }
int64_t Tensor::storage_offset() const { MP_REQUIRE_DEFINED("storage_offset"); return impl_->offset; }
const std::shared_ptr<Storage>& Tensor::storage() const { MP_REQUIRE_DEFINED("storage"); return impl_->storage; }

// As PyTorch: size-1 dims never move the pointer, and a tensor with no elements has no layout at
// all. (contiguous_strides builds strides with max(size, 1), so a size-0 dim that is not the
// first would otherwise fail the check on a fresh tensor.)
bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (impl_->sizes[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->sizes[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  MP_REQUIRE_DEFINED("raw_data");
  MP_CHECK(impl_->storage != nullptr, "raw_data: this tensor's data was released (autograd::without_data: a pipeline "
           "stage's output after it was sent); only its shape and its autograd node remain");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * element_size(impl_->dtype);
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

bool Tensor::is_sole_owner() const {
  return defined() && impl_.use_count() == 1 && impl_->storage && impl_->storage.use_count() == 1 &&
         impl_->offset == 0 && is_contiguous() && impl_->storage->nbytes() == nbytes();
}

double Tensor::item() const {
  MP_CHECK(numel() == 1, "item: expected a one-element tensor, got shape ", shape_str(sizes()));
  if (!device().is_cpu()) return to(Device::cpu()).item();
  return MP_DISPATCH_ALL(dtype(), "item", [&] { return static_cast<double>(*data_ptr<scalar_t>()); });
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = ops::contiguous(ops::to(ops::to(*this, Device::cpu()), dtype_of<T>()));
  const T* p = c.data_ptr<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;

Tensor Tensor::to(Device device) const { return ops::to(*this, device); }

Tensor Tensor::detach() const {
  MP_REQUIRE_DEFINED("detach");
  return make_view(impl_->storage, impl_->sizes, impl_->strides, impl_->offset, impl_->dtype);
}

Tensor& Tensor::set_requires_grad(bool r) {
  MP_REQUIRE_DEFINED("set_requires_grad");
  MP_CHECK(!impl_->grad_fn, "set_requires_grad: only leaf tensors can change requires_grad ",
           "(this one is the output of an op); use detach() first");
  MP_CHECK(!r || is_floating(impl_->dtype), "set_requires_grad: only floating-point tensors can ",
           "require gradients, got ", dtype_name(impl_->dtype));
  impl_->requires_grad = r;
  return *this;
}
bool Tensor::is_leaf() const { return !defined() || !impl_->grad_fn; }
const Tensor& Tensor::grad() const { MP_REQUIRE_DEFINED("grad"); return impl_->grad; }
Tensor& Tensor::mutable_grad() { MP_REQUIRE_DEFINED("mutable_grad"); return impl_->grad; }
const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  MP_REQUIRE_DEFINED("grad_fn");
  return impl_->grad_fn;
}

// ---- printing ----
namespace {

void print_rec(std::ostream& os, const Tensor& t, const std::vector<double>& v, int64_t dim,
               int64_t base, int indent, int width, bool integral, bool summarize) {
  const auto& sz = t.sizes();
  const int64_t n = sz[dim];
  int64_t inner = 1;
  for (size_t i = dim + 1; i < sz.size(); ++i) inner *= sz[i];
  const int64_t edge = 3;
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * edge && i == edge) {
      os << (dim + 1 == t.dim() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge;
    }
    if (dim + 1 == t.dim()) {
      char buf[64];
      double x = v[base + i];
      if (integral) std::snprintf(buf, sizeof buf, "%*lld", width, static_cast<long long>(x));
      else std::snprintf(buf, sizeof buf, "%*.4f", width, x);
      os << buf;
    } else {
      print_rec(os, t, v, dim + 1, base + i * inner, indent + 1, width, integral, summarize);
    }
    if (i + 1 < n) os << (dim + 1 == t.dim() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  std::string suffix = "shape=" + shape_str(sizes()) + ", dtype=" + dtype_name(dtype()) +
                       ", device=" + device().str() + (requires_grad() ? ", requires_grad=true" : "") + ")";
  std::vector<double> v = to_vector<double>();
  bool integral = dtype() == DType::Int64;
  int width = 1;
  for (double x : v) {
    char buf[64];
    int w = integral ? std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(x))
                     : std::snprintf(buf, sizeof buf, "%.4f", x);
    width = std::max(width, w);
  }
  os << "tensor(";
  if (dim() == 0) {
    char buf[64];
    if (integral) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v[0]));
    else std::snprintf(buf, sizeof buf, "%.4f", v[0]);
    os << buf;
  } else if (numel() == 0) {
    os << "[]";
  } else {
    print_rec(os, *this, v, 0, 0, 7, width, integral, numel() > 1000);
  }
  os << ", " << suffix;
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace minipipe
