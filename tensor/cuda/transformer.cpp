// The CUDA backend's transformer ops: LayerNorm, embedding, causal softmax, attention (cuBLAS
// strided-batched GEMMs around the causal-softmax kernel, the CPU's algorithm in
// tensor/cpu/attention.cpp), the dropout mask and the fused AdamW and SGD steps. Shapes are checked as on
// the CPU; kernels live in layernorm.cu, embedding.cu, softmax.cu, random.cu, optim.cu.
#include <cmath>

#include "tensor/cuda/ops_common.h"
#include "tensor/op_checks.h"

namespace minipipe::cuda {

namespace {

// The shared checks (tensor/op_checks.h), then this backend's own: float32 only.
int64_t check_layernorm(const char* op, const Tensor& x, const Tensor& w) {
  const int64_t C = checks::layernorm(op, x, w);
  check_f32(op, x);
  return C;
}

std::pair<int64_t, int64_t> check_scores(const char* op, const Tensor& att, double scale) {
  const auto tq_tk = checks::scores(op, att, scale);
  check_f32(op, att);
  return tq_tk;
}

using checks::Heads;

Heads check_qkv(const char* op, const Tensor& qkv, int64_t n_head) {
  const Heads h = checks::qkv(op, qkv, n_head);
  check_f32(op, qkv);
  return h;
}

Tensor checked_int64(const char* op, const Tensor& index) {
  MP_CHECK(index.dtype() == DType::Int64, op, ": indices must be int64, got ", dtype_name(index.dtype()), " ",
           shape_str(index.sizes()));
  return ops::contiguous(index);
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t C = check_layernorm("layernorm", x, weight);
  MP_CHECK(bias.sizes() == Shape{C} && bias.dtype() == x.dtype(), "layernorm: bias ", shape_str(bias.sizes()), " ",
           dtype_name(bias.dtype()), " must be [", C, "] ", dtype_name(x.dtype()));
  MP_CHECK(eps > 0, "layernorm: eps must be positive, got ", eps);
  Tensor xc = ops::contiguous(x), wc = ops::contiguous(weight), bc = ops::contiguous(bias);
  const int64_t rows = xc.numel() / C;
  Tensor out = empty(x.sizes(), x.options());
  Tensor mean = empty({rows}, x.options()), rstd = empty({rows}, x.options());
  launch_layernorm(ptr<float>(xc), ptr<float>(wc), ptr<float>(bc), ptr<float>(out), ptr<float>(mean), ptr<float>(rstd),
                   rows, C, static_cast<float>(eps), stream_of(x));
  return {out, mean, rstd};
}

std::tuple<Tensor, Tensor, Tensor> layernorm_backward(const Tensor& dout, const Tensor& x, const Tensor& weight,
                                                      const Tensor& mean, const Tensor& rstd) {
  const int64_t C = check_layernorm("layernorm_backward", x, weight);
  MP_CHECK(dout.sizes() == x.sizes() && dout.dtype() == x.dtype(), "layernorm_backward: grad ",
           shape_str(dout.sizes()), " does not match input ", shape_str(x.sizes()));
  const int64_t rows = x.numel() / C;
  MP_CHECK(mean.numel() == rows && rstd.numel() == rows, "layernorm_backward: mean ", shape_str(mean.sizes()),
           " and rstd ", shape_str(rstd.sizes()), " must have ", rows, " rows");
  Tensor gc = ops::contiguous(dout), xc = ops::contiguous(x), wc = ops::contiguous(weight);
  Tensor mc = ops::contiguous(mean), sc = ops::contiguous(rstd);
  Tensor dx = empty(x.sizes(), x.options()), dw = empty({C}, x.options()), db = empty({C}, x.options());
  const int64_t parts = layernorm_parts(rows);
  Tensor partial = parts > 1 ? empty({2, parts, C}, x.options()) : Tensor();
  launch_layernorm_backward(ptr<float>(gc), ptr<float>(xc), ptr<float>(wc), ptr<float>(mc), ptr<float>(sc),
                            ptr<float>(dx), ptr<float>(dw), ptr<float>(db), rows, C,
                            parts > 1 ? ptr<float>(partial) : nullptr, parts, stream_of(x));
  return {dx, dw, db};
}

// Reading the bad-index flag back synchronises the stream once per call.
Tensor embedding(const Tensor& weight, const Tensor& index) {
  MP_CHECK(weight.dim() == 2, "embedding: weight must be [V, C], got ", shape_str(weight.sizes()));
  check_f32("embedding", weight);
  const int64_t V = weight.size(0), C = weight.size(1);
  Tensor idx = checked_int64("embedding", index), w = ops::contiguous(weight);
  Shape shape = index.sizes();
  shape.push_back(C);
  Tensor out = empty(shape, weight.options());
  DeviceFlag bad(weight.device());
  launch_embedding(ptr<float>(w), ptr<int64_t>(idx), ptr<float>(out), bad.get(), idx.numel(), V, C, stream_of(weight));
  bad.check("embedding: an index of ", shape_str(index.sizes()), " is out of range for a table of ", V, " rows");
  return out;
}

Tensor embedding_backward(const Tensor& grad, const Tensor& index, int64_t num_embeddings) {
  MP_CHECK(num_embeddings > 0, "embedding_backward: num_embeddings must be positive, got ", num_embeddings);
  MP_CHECK(grad.dim() == index.dim() + 1 && Shape(grad.sizes().begin(), grad.sizes().end() - 1) == index.sizes(),
           "embedding_backward: grad ", shape_str(grad.sizes()), " does not match index ", shape_str(index.sizes()),
           " (expected the index shape plus a last dim C)");
  check_f32("embedding_backward", grad);
  Tensor idx = checked_int64("embedding_backward", index), g = ops::contiguous(grad);
  const int64_t C = grad.size(-1);
  Tensor dw = zeros({num_embeddings, C}, grad.options());
  DeviceFlag bad(grad.device());
  launch_embedding_backward(ptr<float>(g), ptr<int64_t>(idx), ptr<float>(dw), bad.get(), idx.numel(), num_embeddings,
                            C, stream_of(grad));
  bad.check("embedding_backward: an index of ", shape_str(index.sizes()), " is out of range for a table of ",
            num_embeddings, " rows");
  return dw;
}

Tensor causal_softmax(const Tensor& att, double scale) {
  const auto [tq, tk] = check_scores("causal_softmax", att, scale);
  Tensor x = ops::contiguous(att), y = empty(att.sizes(), att.options());
  const int64_t rows = tk == 0 ? 0 : x.numel() / tk;
  launch_causal_softmax(ptr<float>(x), ptr<float>(y), rows, tq, tk, static_cast<float>(scale), stream_of(att));
  return y;
}

Tensor causal_softmax_backward(const Tensor& grad, const Tensor& y, double scale) {
  const auto [tq, tk] = check_scores("causal_softmax_backward", y, scale);
  MP_CHECK(grad.sizes() == y.sizes() && grad.dtype() == y.dtype(), "causal_softmax_backward: grad ",
           shape_str(grad.sizes()), " does not match output ", shape_str(y.sizes()));
  Tensor gc = ops::contiguous(grad), yc = ops::contiguous(y), dx = empty(y.sizes(), y.options());
  const int64_t rows = tk == 0 ? 0 : yc.numel() / tk;
  launch_causal_softmax_backward(ptr<float>(gc), ptr<float>(yc), ptr<float>(dx), rows, tq, tk,
                                 static_cast<float>(scale), stream_of(y));
  return dx;
}

// Per batch b, for all H heads at once (head h of q, k, v: the [T, hd] block at column h hd,
// C + h hd, 2C + h hd of qkv, leading dim 3C; consecutive heads hd apart — a strided batch):
//   scores [H, T, T] = q k^T;  att = causal_softmax(scores, 1/sqrt(hd));  out = (att * mask) v.
std::pair<Tensor, Tensor> attention_forward(const Tensor& qkv, int64_t n_head, const Tensor& mask) {
  const Heads h = check_qkv("attention_forward", qkv, n_head);
  checks::attention_mask("attention_forward", mask, h, qkv);
  Tensor x = ops::contiguous(qkv);
  Tensor out = empty({h.B, h.T, h.C}, qkv.options());
  Tensor att = empty({h.B, h.H, h.T, h.T}, qkv.options());  // cached for the backward pass
  const int dev = qkv.device().index;
  const int64_t C3 = 3 * h.C, tt = h.T * h.T;
  const float* px = ptr<float>(x);
  float* pa = ptr<float>(att);
  for (int64_t b = 0; b < h.B; ++b) {
    const float* q = px + b * h.T * C3;
    gemm(dev, false, true, h.T, h.T, h.hd, q, C3, h.hd, q + h.C, C3, h.hd, pa + b * h.H * tt, h.T, tt, h.H, 1.f, 0.f);
  }
  launch_causal_softmax(pa, pa, h.B * h.H * h.T, h.T, h.T, static_cast<float>(1.0 / std::sqrt(double(h.hd))),
                        stream_of(qkv));
  const Tensor w = mask.defined() ? mul(att, ops::contiguous(mask)) : att;
  const float* pw = ptr<float>(w);
  float* po = ptr<float>(out);
  for (int64_t b = 0; b < h.B; ++b)
    gemm(dev, false, false, h.T, h.hd, h.T, pw + b * h.H * tt, h.T, tt, px + b * h.T * C3 + 2 * h.C, C3, h.hd,
         po + b * h.T * h.C, h.C, h.hd, h.H, 1.f, 0.f);
  return {out, att};
}

// With a = att * mask and dy the head's [T, hd] block of dout (per batch b, all heads at once):
//   dv = a^T dy,  da = dy v^T,  ds = causal_softmax_backward(da * mask, att) (carries 1/sqrt(hd)),
//   dq = ds k,  dk = ds^T q — each written into its [T, hd] block of dqkv.
Tensor attention_backward(const Tensor& dout, const Tensor& qkv, const Tensor& att, int64_t n_head, const Tensor& mask) {
  const Heads h = check_qkv("attention_backward", qkv, n_head);
  MP_CHECK(dout.sizes() == Shape({h.B, h.T, h.C}) && dout.dtype() == qkv.dtype(), "attention_backward: grad ",
           shape_str(dout.sizes()), " does not match qkv ", shape_str(qkv.sizes()));
  MP_CHECK(att.sizes() == Shape({h.B, h.H, h.T, h.T}) && att.dtype() == qkv.dtype(), "attention_backward: att ",
           shape_str(att.sizes()), " does not match qkv ", shape_str(qkv.sizes()), " with ", n_head, " heads");
  checks::attention_mask("attention_backward", mask, h, qkv);
  Tensor g = ops::contiguous(dout), x = ops::contiguous(qkv), a = ops::contiguous(att);
  Tensor mk = mask.defined() ? ops::contiguous(mask) : Tensor();
  const Tensor w = mk.defined() ? mul(a, mk) : a;
  Tensor ds = empty({h.B, h.H, h.T, h.T}, qkv.options());
  Tensor dqkv = empty(qkv.sizes(), qkv.options());  // every element is written
  const int dev = qkv.device().index;
  const int64_t C3 = 3 * h.C, tt = h.T * h.T;
  const float *px = ptr<float>(x), *pg = ptr<float>(g), *pw = ptr<float>(w);
  float *pd = ptr<float>(dqkv), *ps = ptr<float>(ds);
  for (int64_t b = 0; b < h.B; ++b) {
    const float* v = px + b * h.T * C3 + 2 * h.C;
    const float* dy = pg + b * h.T * h.C;
    float* dv = pd + b * h.T * C3 + 2 * h.C;
    gemm(dev, true, false, h.T, h.hd, h.T, pw + b * h.H * tt, h.T, tt, dy, h.C, h.hd, dv, C3, h.hd, h.H, 1.f, 0.f);
    gemm(dev, false, true, h.T, h.T, h.hd, dy, h.C, h.hd, v, C3, h.hd, ps + b * h.H * tt, h.T, tt, h.H, 1.f, 0.f);
  }
  cudaStream_t stream = stream_of(qkv);
  if (mk.defined()) {
    const auto geo = geometry<3>(ds.sizes(), {ds.strides(), ds.strides(), mk.strides()}, "attention_backward");
    launch_binary(BinaryOp::Mul, ps, ps, ptr<float>(mk), 0.f, geo, ds.numel(), stream);
  }
  launch_causal_softmax_backward(ps, ptr<float>(a), ps, h.B * h.H * h.T, h.T, h.T,
                                 static_cast<float>(1.0 / std::sqrt(double(h.hd))), stream);
  for (int64_t b = 0; b < h.B; ++b) {
    const float* q = px + b * h.T * C3;
    float* dq = pd + b * h.T * C3;
    gemm(dev, false, false, h.T, h.hd, h.T, ps + b * h.H * tt, h.T, tt, q + h.C, C3, h.hd, dq, C3, h.hd, h.H, 1.f, 0.f);
    gemm(dev, true, false, h.T, h.hd, h.T, ps + b * h.H * tt, h.T, tt, q, C3, h.hd, dq + h.C, C3, h.hd, h.H, 1.f, 0.f);
  }
  return dqkv;
}

// Counter-based masks are made on the device (the CPU's bits); masks from a sequential Generator
// are drawn on the CPU, in its order, and copied over.
Tensor dropout_mask(const Shape& shape, TensorOptions opts, double p, const RandomSource& src) {
  MP_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  MP_CHECK(opts.dtype == DType::Float32, "dropout_mask: the CUDA backend makes float32 masks, got ",
           dtype_name(opts.dtype));
  if (!src.is_counter()) return ops::dropout_mask(shape, {opts.dtype, Device::cpu()}, p, src).to(opts.device);
  Tensor mask = empty(shape, opts);
  const int64_t n = mask.numel(), rows = shape.empty() ? 1 : shape[0];
  if (n == 0) return mask;
  const CounterKey& key = src.key();
  const int64_t per_row = n / rows;
  MP_CHECK(key.sample_offset >= 0 && key.sample_offset + rows <= (int64_t{1} << 32) && per_row <= (int64_t{1} << 34),
           "dropout: counter-based masks index samples and elements with 32-bit counters; got rows [",
           key.sample_offset, ", ", key.sample_offset + rows, ") of ", per_row, " elements");
  launch_dropout_mask(ptr<float>(mask), rows, per_row, key.key, key.step, key.sample_offset, p,
                      static_cast<float>(1.0 / (1.0 - p)), compute_stream(opts.device.index));
  return mask;
}

void adamw_step_(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s) {
  checks::adamw(p, grad, m, v, s);
  check_f32("adamw_step_", p);
  // The same coefficients as the CPU kernel: computed in double, rounded to float once.
  const double t = static_cast<double>(s.step);
  const double bc1 = 1 - std::pow(s.beta1, t), bc2 = 1 - std::pow(s.beta2, t);
  launch_adamw(ptr<float>(p), ptr<float>(grad), ptr<float>(m), ptr<float>(v), p.numel(), static_cast<float>(s.beta1),
               static_cast<float>(s.beta2), static_cast<float>(1 - s.lr * s.weight_decay),
               static_cast<float>(s.lr / bc1), static_cast<float>(1 / std::sqrt(bc2)), static_cast<float>(s.eps),
               stream_of(p));
}

void sgd_step_(const Tensor& p, const Tensor& grad, const Tensor& buf, const ops::SGDStep& s) {
  checks::sgd(p, grad, buf, s);
  check_f32("sgd_step_", p);
  launch_sgd(ptr<float>(p), ptr<float>(grad), buf.defined() ? ptr<float>(buf) : nullptr, p.numel(),
             static_cast<float>(s.lr), static_cast<float>(s.momentum), static_cast<float>(1 - s.dampening),
             static_cast<float>(s.weight_decay), s.nesterov, s.first, stream_of(p));
}

}  // namespace minipipe::cuda
