// The one dispatch point of every raw op in tensor/ops.h: check that each tensor is defined and
// that all of them sit on one device (an error naming both devices if not), then call that device's
// kernel from its Backend table (tensor/backend.h). Ops that are compositions of other ops (clone,
// mean, stack, sum_to, ...) live here once, for every device. Copies across devices go through the
// non-CPU side's copy_across.
#include <algorithm>

#include "tensor/backend.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::ops {

namespace {

[[noreturn]] void undefined_input(const char* op) {
  detail::throw_error(detail::str_cat(op, ": got an undefined tensor"));
}
[[noreturn]] void device_mismatch(const char* op, Device a, Device b) {
  detail::throw_error(detail::str_cat(op, ": expected all tensors on one device, got tensors on ", a.str(), " and ",
                                      b.str(), " (move one with .to(device) first)"));
}
[[noreturn]] void no_kernel(const char* op, Device d) {
  detail::throw_error(detail::str_cat(op, ": the ", backend_for(d).name, " backend has no kernel for it yet (tensor on ",
                                      d.str(), ")"));
}

inline Device device_of(const char* op, const Tensor& t) {
  if (!t.defined()) [[unlikely]]
    undefined_input(op);
  return t.device();
}

template <typename... Ts>
inline Device common_device(const char* op, const Tensor& first, const Ts&... rest) {
  const Device d = device_of(op, first);
  (
      [&] {
        const Device e = device_of(op, rest);
        if (!(e == d)) [[unlikely]]
          device_mismatch(op, d, e);
      }(),
      ...);
  return d;
}

template <typename Fn>
inline Fn kernel(Fn Backend::*entry, const char* op, Device d) {
  Fn fn = backend_for(d).*entry;
  if (!fn) [[unlikely]]
    no_kernel(op, d);
  return fn;
}

}  // namespace

// The kernel of op `name` on the one device all the given tensors share.
#define MP_KERNEL(name, ...) kernel(&Backend::name, #name, common_device(#name, __VA_ARGS__))

// ---- copies ----
void copy_(const Tensor& dst, const Tensor& src) {
  const Device dd = device_of("copy_", dst), ds = device_of("copy_", src);
  if (dd == ds) [[likely]]
    return kernel(&Backend::copy_, "copy_", dd)(dst, src);
  // Across devices: broadcast and convert on the source's side, then move the bytes.
  MP_CHECK(broadcast_shapes(dst.sizes(), src.sizes(), "copy_") == dst.sizes(), "copy_: cannot copy shape ",
           shape_str(src.sizes()), " on ", ds.str(), " into ", shape_str(dst.sizes()), " on ", dd.str());
  Tensor s = src.sizes() == dst.sizes() ? src : expand(src, dst.sizes());
  if (s.dtype() != dst.dtype() || !s.is_contiguous()) {
    Tensor converted = empty(dst.sizes(), {dst.dtype(), ds});
    copy_(converted, s);
    s = converted;
  }
  kernel(&Backend::copy_across, "copy_", dd.is_cpu() ? ds : dd)(dst, s);
}
void fill_(const Tensor& t, double value) { MP_KERNEL(fill_, t)(t, value); }

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.sizes(), t.options());
  copy_(out, t);
  return out;
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.sizes(), t.options());
  copy_(out, t);
  return out;
}

Tensor to(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.sizes(), {dtype, t.device()});
  copy_(out, t);
  return out;
}

Tensor to(const Tensor& t, Device device) {
  if (device_of("to", t) == device) return t;
  Tensor out = empty(t.sizes(), {t.dtype(), device});
  copy_(out, t);
  return out;
}

// ---- elementwise ----
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MP_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
             shape_str(b), " cannot be broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

#define MP_BINARY(name) \
  Tensor name(const Tensor& a, const Tensor& b) { return MP_KERNEL(name, a, b)(a, b); }
#define MP_UNARY(name) \
  Tensor name(const Tensor& a) { return MP_KERNEL(name, a)(a); }
MP_BINARY(add)
MP_BINARY(sub)
MP_BINARY(mul)
MP_BINARY(div)
MP_BINARY(maximum)
MP_BINARY(eq)
MP_BINARY(ne)
MP_BINARY(lt)
MP_BINARY(le)
MP_BINARY(gt)
MP_BINARY(ge)
MP_BINARY(relu_backward)
MP_BINARY(gelu_backward)
MP_BINARY(tanh_backward)
MP_BINARY(sigmoid_backward)
MP_UNARY(neg)
MP_UNARY(exp)
MP_UNARY(log)
MP_UNARY(sqrt)
MP_UNARY(abs)
MP_UNARY(tanh)
MP_UNARY(sigmoid)
MP_UNARY(relu)
MP_UNARY(gelu)
#undef MP_BINARY
#undef MP_UNARY

Tensor add_scalar(const Tensor& a, double s) { return MP_KERNEL(add_scalar, a)(a, s); }
Tensor mul_scalar(const Tensor& a, double s) { return MP_KERNEL(mul_scalar, a)(a, s); }
Tensor pow_scalar(const Tensor& a, double e) { return MP_KERNEL(pow_scalar, a)(a, e); }
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) { return MP_KERNEL(where, cond, a, b)(cond, a, b); }
Tensor masked_fill(const Tensor& t, const Tensor& mask, double value) {
  return where(mask, full({}, value, t.options()), t);
}
void add_(const Tensor& a, const Tensor& b, double alpha) { MP_KERNEL(add_, a, b)(a, b, alpha); }
void mul_scalar_(const Tensor& a, double s) { MP_KERNEL(mul_scalar_, a)(a, s); }

// ---- reductions ----
Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  return MP_KERNEL(sum, t)(t, std::move(dims), keepdim);
}
Tensor sum(const Tensor& t) { return sum(t, {}, false); }

Tensor mean(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  MP_CHECK(is_floating(t.dtype()), "mean: expected a floating-point tensor, got ", dtype_name(t.dtype()));
  std::vector<bool> mask(t.dim(), dims.empty());  // no dims given: reduce all
  for (auto d : dims) {
    d = wrap_dim(d, t.dim(), "mean");
    if (t.dim() == 0) continue;
    MP_CHECK(!mask[d], "mean: dim ", d, " appears twice in ", shape_str(dims));
    mask[d] = true;
  }
  int64_t count = 1;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (mask[i]) count *= t.size(i);
  MP_CHECK(count > 0, "mean: reducing over an empty dimension of shape ", shape_str(t.sizes()));
  return mul_scalar(sum(t, std::move(dims), keepdim), 1.0 / static_cast<double>(count));
}
Tensor mean(const Tensor& t) { return mean(t, {}, false); }

std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim) { return MP_KERNEL(max, t)(t, dim, keepdim); }
Tensor max(const Tensor& t) {
  MP_CHECK(t.numel() > 0, "max: empty tensor of shape ", shape_str(t.sizes()));
  return max(reshape(t, {-1}), 0, false).first;
}
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim) { return max(t, dim, keepdim).second; }

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.sizes() == shape) return t;
  MP_CHECK(broadcast_shapes(shape, t.sizes(), "sum_to") == t.sizes(), "sum_to: shape ",
           shape_str(t.sizes()), " is not a broadcast of ", shape_str(shape));
  std::vector<int64_t> dims;
  const int64_t lead = t.dim() - static_cast<int64_t>(shape.size());
  for (int64_t i = 0; i < t.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && t.size(i) != 1)) dims.push_back(i);
  if (dims.empty()) return reshape(t, shape);
  return reshape(sum(t, dims, true), shape);
}

// ---- softmax family ----
Tensor softmax(const Tensor& t, int64_t dim) { return MP_KERNEL(softmax, t)(t, dim); }
Tensor log_softmax(const Tensor& t, int64_t dim) { return MP_KERNEL(log_softmax, t)(t, dim); }
Tensor softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  return MP_KERNEL(softmax_backward, g, y)(g, y, dim);
}
Tensor log_softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  return MP_KERNEL(log_softmax_backward, g, y)(g, y, dim);
}
std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& targets) {
  return MP_KERNEL(cross_entropy, logits, targets)(logits, targets);
}
// grad is a 0-dim scalar; it may sit on the CPU whatever the device of probs (a loss's seed).
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& targets) {
  const Device d = common_device("cross_entropy_backward", probs, targets);
  const Tensor g = to(grad, d);
  return kernel(&Backend::cross_entropy_backward, "cross_entropy_backward", d)(g, probs, targets);
}

// ---- matrix products ----
Tensor matmul(const Tensor& a, const Tensor& b) { return MP_KERNEL(matmul, a, b)(a, b); }
void addmm_(const Tensor& c, const Tensor& a, const Tensor& b) { MP_KERNEL(addmm_, c, a, b)(c, a, b); }

// ---- joining and indexing ----
// Copies into slices of one output: the same on every device (copy_ dispatches).
Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  MP_CHECK(!ts.empty(), "cat: expected a non-empty list of tensors");
  for (const Tensor& t : ts) common_device("cat", ts[0], t);
  const Tensor& first = ts[0];
  MP_CHECK(first.dim() > 0, "cat: zero-dimensional tensors cannot be concatenated");
  dim = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.sizes();
  shape[dim] = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    MP_CHECK(t.dtype() == first.dtype(), "cat: tensor ", i, " has dtype ", dtype_name(t.dtype()),
             ", tensor 0 has ", dtype_name(first.dtype()));
    MP_CHECK(t.dim() == first.dim(), "cat: tensor ", i, " has shape ", shape_str(t.sizes()),
             ", tensor 0 has ", shape_str(first.sizes()));
    for (int64_t d = 0; d < t.dim(); ++d)
      MP_CHECK(d == dim || t.size(d) == first.size(d), "cat: sizes must match except in dim ", dim,
               ": tensor ", i, " has shape ", shape_str(t.sizes()), ", tensor 0 has ", shape_str(first.sizes()));
    shape[dim] += t.size(dim);
  }
  Tensor out = empty(shape, first.options());
  int64_t at = 0;
  for (const Tensor& t : ts) {
    copy_(narrow(out, dim, at, t.size(dim)), t);
    at += t.size(dim);
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  MP_CHECK(!ts.empty(), "stack: expected a non-empty list of tensors");
  dim = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (size_t i = 0; i < ts.size(); ++i) {
    MP_CHECK(ts[i].sizes() == ts[0].sizes(), "stack: tensor ", i, " has shape ", shape_str(ts[i].sizes()),
             ", tensor 0 has ", shape_str(ts[0].sizes()));
    us.push_back(unsqueeze(ts[i], dim));
  }
  return cat(us, dim);
}

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  return MP_KERNEL(index_select, t, index)(t, dim, index);
}
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  return MP_KERNEL(index_add, index, src)(shape, dim, index, src);
}
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype) {
  return MP_KERNEL(one_hot, index)(index, num_classes, dtype);
}

// ---- random ----
Tensor dropout_mask(const Shape& shape, TensorOptions opts, double p, const RandomSource& src) {
  return kernel(&Backend::dropout_mask, "dropout_mask", opts.device)(shape, opts, p, src);
}

// ---- transformer kernels ----
std::tuple<Tensor, Tensor, Tensor> layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  return MP_KERNEL(layernorm, x, weight, bias)(x, weight, bias, eps);
}
std::tuple<Tensor, Tensor, Tensor> layernorm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight,
                                                      const Tensor& mean, const Tensor& rstd) {
  return MP_KERNEL(layernorm_backward, dout, x, weight, mean, rstd)(dout, x, weight, mean, rstd);
}
Tensor embedding(const Tensor& weight, const Tensor& index) { return MP_KERNEL(embedding, weight, index)(weight, index); }
Tensor embedding_backward(const Tensor& grad, const Tensor& index, int64_t num_embeddings) {
  return MP_KERNEL(embedding_backward, grad, index)(grad, index, num_embeddings);
}
Tensor causal_softmax(const Tensor& att, double scale) { return MP_KERNEL(causal_softmax, att)(att, scale); }
Tensor causal_softmax_backward(const Tensor& grad, const Tensor& y, double scale) {
  return MP_KERNEL(causal_softmax_backward, grad, y)(grad, y, scale);
}
std::pair<Tensor, Tensor> attention_forward(const Tensor& qkv, int64_t n_head, const Tensor& mask) {
  const Device d = mask.defined() ? common_device("attention_forward", qkv, mask) : device_of("attention_forward", qkv);
  return kernel(&Backend::attention_forward, "attention_forward", d)(qkv, n_head, mask);
}
Tensor attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head, const Tensor& mask) {
  const Device d = mask.defined() ? common_device("attention_backward", dout, qkv, att, mask)
                                  : common_device("attention_backward", dout, qkv, att);
  return kernel(&Backend::attention_backward, "attention_backward", d)(dout, qkv, att, n_head, mask);
}

// ---- optimizer ----
void adamw_step_(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s) {
  MP_KERNEL(adamw_step_, p, grad, m, v)(p, grad, m, v, s);
}
void sgd_step_(const Tensor& p, const Tensor& grad, const Tensor& buf, const SGDStep& s) {
  if (buf.defined()) return MP_KERNEL(sgd_step_, p, grad, buf)(p, grad, buf, s);
  MP_KERNEL(sgd_step_, p, grad)(p, grad, buf, s);  // no momentum: no buffer
}

#undef MP_KERNEL

}  // namespace minipipe::ops
