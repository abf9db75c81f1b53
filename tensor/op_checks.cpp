// The shared argument checks and GEMM operand layouts of tensor/op_checks.h.
#include "tensor/op_checks.h"

#include <algorithm>

#include "tensor/error.h"

namespace minipipe::checks {

int64_t layernorm(const char* op, const Tensor& x, const Tensor& w) {
  MP_CHECK(x.dim() >= 1 && x.size(-1) > 0, op, ": expected input [..., C] with C > 0, got ", shape_str(x.sizes()));
  const int64_t C = x.size(-1);
  MP_CHECK(w.sizes() == Shape{C}, op, ": weight ", shape_str(w.sizes()), " must be [", C, "] to match input ",
           shape_str(x.sizes()));
  MP_CHECK(w.dtype() == x.dtype(), op, ": weight is ", dtype_name(w.dtype()), ", input is ", dtype_name(x.dtype()));
  return C;
}

// att: [..., Tq, Tk] -> (Tq, Tk); query i may see keys j < i + 1 + (Tk - Tq).
std::pair<int64_t, int64_t> scores(const char* op, const Tensor& att, double scale) {
  MP_CHECK(att.dim() >= 2, op, ": expected scores [..., Tq, Tk], got ", shape_str(att.sizes()));
  const int64_t tq = att.size(-2), tk = att.size(-1);
  MP_CHECK(tq <= tk, op, ": ", tq, " queries but only ", tk, " keys in ", shape_str(att.sizes()),
           " (the queries are the last Tq positions of the keys)");
  MP_CHECK(scale > 0, op, ": scale must be positive, got ", scale);
  return {tq, tk};
}

Heads qkv(const char* op, const Tensor& qkv, int64_t n_head) {
  MP_CHECK(qkv.dim() == 3 && qkv.size(2) % 3 == 0 && qkv.size(2) > 0, op, ": expected qkv [B, T, 3C], got ",
           shape_str(qkv.sizes()));
  const int64_t C = qkv.size(2) / 3;
  MP_CHECK(n_head > 0 && C % n_head == 0, op, ": n_head=", n_head, " does not divide C=", C, " (qkv ",
           shape_str(qkv.sizes()), ")");
  return {qkv.size(0), qkv.size(1), C, n_head, C / n_head};
}

void attention_mask(const char* op, const Tensor& mask, const Heads& h, const Tensor& qkv) {
  if (!mask.defined()) return;
  MP_CHECK(mask.sizes() == Shape({h.B, h.H, h.T, h.T}) && mask.dtype() == qkv.dtype(), op, ": dropout mask ",
           shape_str(mask.sizes()), " ", dtype_name(mask.dtype()), " must be [", h.B, ", ", h.H, ", ", h.T, ", ", h.T,
           "] ", dtype_name(qkv.dtype()));
}

GemmLayout gemm_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if ((cs == 1 || cols == 1) && (rows == 1 || rs >= cols)) return {true, false, rows == 1 ? std::max<int64_t>(cols, 1) : rs};
  if ((rs == 1 || rows == 1) && (cols == 1 || cs >= rows)) return {true, true, cols == 1 ? std::max<int64_t>(rows, 1) : cs};
  return {};
}

Matmul matmul(const Tensor& a_in, const Tensor& b_in) {
  MP_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
           shape_str(a_in.sizes()), " x ", shape_str(b_in.sizes()));
  MP_CHECK(a_in.dtype() == b_in.dtype(), "matmul: dtype mismatch: ", dtype_name(a_in.dtype()), " ",
           shape_str(a_in.sizes()), " x ", dtype_name(b_in.dtype()), " ", shape_str(b_in.sizes()));
  MP_CHECK(a_in.size(-1) == b_in.size(b_in.dim() == 1 ? 0 : -2), "matmul: inner dimensions differ: ",
           shape_str(a_in.sizes()), " x ", shape_str(b_in.sizes()));
  Matmul p;
  p.a_vec = a_in.dim() == 1;
  p.b_vec = b_in.dim() == 1;
  p.a = p.a_vec ? ops::unsqueeze(a_in, 0) : a_in;
  p.b = p.b_vec ? ops::unsqueeze(b_in, 1) : b_in;
  p.n = p.a.size(-2), p.k = p.a.size(-1), p.m = p.b.size(-1);
  const Shape a_batch(p.a.sizes().begin(), p.a.sizes().end() - 2), b_batch(p.b.sizes().begin(), p.b.sizes().end() - 2);
  for (size_t i = 1; i <= std::min(a_batch.size(), b_batch.size()); ++i) {
    const int64_t da = a_batch[a_batch.size() - i], db = b_batch[b_batch.size() - i];
    MP_CHECK(da == db || da == 1 || db == 1, "matmul: batch dimensions cannot be broadcast: ",
             shape_str(a_in.sizes()), " x ", shape_str(b_in.sizes()));
  }
  p.batch = ops::broadcast_shapes(a_batch, b_batch, "matmul");
  Shape a_full = p.batch, b_full = p.batch;
  p.out_shape = p.batch;
  a_full.insert(a_full.end(), {p.n, p.k});
  b_full.insert(b_full.end(), {p.k, p.m});
  p.out_shape.insert(p.out_shape.end(), {p.n, p.m});
  p.a = ops::expand(p.a, a_full);
  p.b = ops::expand(p.b, b_full);
  return p;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> batch_offsets(const Shape& batch, const Tensor& a,
                                                                    const Tensor& b) {
  const int64_t batches = shape_numel(batch);
  std::vector<int64_t> off_a(static_cast<size_t>(batches), 0), off_b(static_cast<size_t>(batches), 0);
  for (int64_t i = 0; i < batches; ++i) {
    int64_t rem = i;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      const int64_t idx = rem % batch[static_cast<size_t>(d)];
      rem /= batch[static_cast<size_t>(d)];
      off_a[static_cast<size_t>(i)] += idx * a.stride(d);
      off_b[static_cast<size_t>(i)] += idx * b.stride(d);
    }
  }
  return {off_a, off_b};
}

void adamw(const Tensor& p, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s) {
  MP_CHECK(grad.sizes() == p.sizes() && m.sizes() == p.sizes() && v.sizes() == p.sizes(),
           "adamw_step_: parameter ", shape_str(p.sizes()), ", gradient ", shape_str(grad.sizes()), ", m ",
           shape_str(m.sizes()), " and v ", shape_str(v.sizes()), " must have one shape");
  MP_CHECK(grad.dtype() == p.dtype() && m.dtype() == p.dtype() && v.dtype() == p.dtype(),
           "adamw_step_: parameter, gradient and state must have one dtype, got ", dtype_name(p.dtype()), ", ",
           dtype_name(grad.dtype()), ", ", dtype_name(m.dtype()), ", ", dtype_name(v.dtype()));
  MP_CHECK(p.is_contiguous() && grad.is_contiguous() && m.is_contiguous() && v.is_contiguous(),
           "adamw_step_: parameter, gradient and state must be contiguous");
  MP_CHECK(s.step >= 1, "adamw_step_: step counts from 1, got ", s.step);
}

void sgd(const Tensor& p, const Tensor& grad, const Tensor& buf, const ops::SGDStep& s) {
  MP_CHECK(buf.defined() == (s.momentum != 0), "sgd_step_: a momentum buffer goes with momentum != 0, got ",
           buf.defined() ? "a buffer" : "no buffer", " and momentum ", s.momentum);
  const Tensor& b = buf.defined() ? buf : p;  // without momentum only p and grad are checked
  MP_CHECK(grad.sizes() == p.sizes() && b.sizes() == p.sizes(), "sgd_step_: parameter ", shape_str(p.sizes()),
           ", gradient ", shape_str(grad.sizes()), buf.defined() ? " and buffer " + shape_str(buf.sizes()) : "",
           " must have one shape");
  MP_CHECK(grad.dtype() == p.dtype() && b.dtype() == p.dtype(),
           "sgd_step_: parameter, gradient and buffer must have one dtype, got ", dtype_name(p.dtype()), ", ",
           dtype_name(grad.dtype()), buf.defined() ? std::string(", ") + dtype_name(buf.dtype()) : "");
  MP_CHECK(p.is_contiguous() && grad.is_contiguous() && b.is_contiguous(),
           "sgd_step_: parameter, gradient and buffer must be contiguous");
}

}  // namespace minipipe::checks
