// The CUDA backend's reductions and softmax family: checks as the CPU's (tensor/cpu/reduce.cpp,
// softmax.cpp), then the reduced dims are brought last and contiguous (a permuted copy when they
// are not already) so every kernel of reduce.cu / softmax.cu sees plain [rows, n] rows.
#include <algorithm>
#include <vector>

#include "tensor/cuda/ops_common.h"
#include "tensor/cuda/rows.h"

namespace minipipe::cuda {

namespace {

void check_sum_dtype(const char* op, const Tensor& t) {
  MP_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Int64, op,
           ": the CUDA backend reduces float32 or int64, got ", dtype_name(t.dtype()));
}

// out [rows] = row sums of contiguous x [rows, n]. Few long rows are split into parts first, so the
// whole GPU works on them (one block per row would use a few SMs of an H100's 132).
void sum_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t n, cudaStream_t stream) {
  constexpr int64_t kLongRow = int64_t{1} << 16, kChunk = 8192;
  if (rows < 256 && n >= kLongRow) {
    const int64_t parts = std::min<int64_t>(1024, n / kChunk);
    Tensor partial = empty({rows, parts}, out.options());
    launch_sum_row_parts(x.raw_data(), partial.raw_data(), scalar_type(x.dtype()), rows, n, parts, stream);
    launch_sum_rows(partial.raw_data(), out.raw_data(), scalar_type(x.dtype()), rows, parts, stream);
    return;
  }
  launch_sum_rows(x.raw_data(), out.raw_data(), scalar_type(x.dtype()), rows, n, stream);
}

// out [cols] = column sums of contiguous x [n, cols]. Many rows are cut into chunks first (a
// partial sum per chunk and column), so more threads than columns work; the order stays fixed.
void sum_cols(const Tensor& x, const Tensor& out, int64_t n, int64_t cols, cudaStream_t stream) {
  constexpr int64_t kChunkRows = 256;
  if (n >= 4 * kChunkRows) {
    const int64_t parts = std::min<int64_t>(1024, n / kChunkRows);
    Tensor partial = empty({parts, cols}, out.options());
    launch_sum_col_parts(x.raw_data(), partial.raw_data(), scalar_type(x.dtype()), n, cols, parts, stream);
    launch_sum_cols(partial.raw_data(), out.raw_data(), scalar_type(x.dtype()), parts, cols, stream);
    return;
  }
  launch_sum_cols(x.raw_data(), out.raw_data(), scalar_type(x.dtype()), n, cols, stream);
}

}  // namespace

Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  check_sum_dtype("sum", t);
  const int64_t nd = t.dim();
  std::vector<bool> mask(static_cast<size_t>(nd), dims.empty());  // no dims given: reduce all
  for (auto d : dims) {
    d = wrap_dim(d, nd, "sum");
    if (nd == 0) continue;
    MP_CHECK(!mask[d], "sum: dim ", d, " appears twice in ", shape_str(dims));
    mask[d] = true;
  }
  Shape kept, out_shape;
  std::vector<int64_t> order;  // kept dims first, then reduced: the [rows, n] layout
  int64_t rows = 1, n = 1, leading = 0;
  bool prefix = true;  // the reduced dims are exactly dims 0 .. leading-1
  for (int64_t i = 0; i < nd; ++i) {
    if (!mask[i]) {
      order.push_back(i);
      rows *= t.size(i);
      out_shape.push_back(t.size(i));
    } else if (keepdim) {
      out_shape.push_back(1);
    }
    if (mask[i]) {
      n *= t.size(i);
      if (prefix) ++leading;
    } else {
      prefix = false;
    }
  }
  for (int64_t i = 0; i < nd; ++i)
    if (mask[i]) order.push_back(i);
  bool reduced_leading = leading > 0;
  for (int64_t i = leading; i < nd; ++i) reduced_leading = reduced_leading && !mask[i];
  Tensor out = empty({rows}, t.options());
  cudaStream_t stream = stream_of(t);
  if (reduced_leading && leading < nd && t.is_contiguous()) {
    // [n, rows] with the reduced dims in front (a bias gradient): sum down the columns, no copy.
    sum_cols(t, out, n, rows, stream);
  } else {
    Tensor x = ops::contiguous(nd == 0 ? t : ops::permute(t, order));
    sum_rows(x, out, rows, n, stream);
  }
  return ops::reshape(out, out_shape);
}

std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim) {
  check_sum_dtype("max", t);
  MP_CHECK(t.dim() > 0, "max: expected at least a 1-D tensor for a dim reduction");
  dim = wrap_dim(dim, t.dim(), "max");
  MP_CHECK(t.size(dim) > 0, "max: dim ", dim, " of shape ", shape_str(t.sizes()), " is empty");
  Shape out_shape = t.sizes();
  out_shape.erase(out_shape.begin() + dim);
  Tensor x = rows_last(t, dim);
  const int64_t n = t.size(dim), rows = x.numel() / n;
  Tensor values = empty(out_shape, t.options());
  Tensor indices = empty(out_shape, {DType::Int64, t.device()});
  launch_max_rows(x.raw_data(), values.raw_data(), ptr<int64_t>(indices), scalar_type(t.dtype()), rows, n, stream_of(t));
  if (keepdim) return {ops::unsqueeze(values, dim), ops::unsqueeze(indices, dim)};
  return {values, indices};
}

namespace {

Tensor softmax_impl(const Tensor& t, int64_t dim, bool log, const char* op) {
  check_f32(op, t);
  MP_CHECK(t.dim() > 0, op, ": expected at least a 1-D tensor");
  dim = wrap_dim(dim, t.dim(), op);
  Tensor x = rows_last(t, dim);
  Tensor y = empty(x.sizes(), x.options());
  const int64_t n = t.size(dim), rows = n == 0 ? 0 : x.numel() / n;
  launch_softmax_rows(ptr<float>(x), ptr<float>(y), rows, n, log, stream_of(t));
  return rows_back(y, dim, t.dim());
}

Tensor softmax_backward_impl(const Tensor& g, const Tensor& y, int64_t dim, bool log, const char* op) {
  check_f32(op, y);
  MP_CHECK(g.sizes() == y.sizes() && g.dtype() == y.dtype(), op, ": grad ", shape_str(g.sizes()),
           " does not match output ", shape_str(y.sizes()));
  dim = wrap_dim(dim, y.dim(), op);
  Tensor gc = rows_last(g, dim), yc = rows_last(y, dim);
  Tensor dx = empty(yc.sizes(), yc.options());
  const int64_t n = y.size(dim), rows = n == 0 ? 0 : yc.numel() / n;
  launch_softmax_backward_rows(ptr<float>(gc), ptr<float>(yc), ptr<float>(dx), rows, n, log, stream_of(y));
  return rows_back(dx, dim, y.dim());
}

void check_targets(const Tensor& logits, const Tensor& targets, const char* op) {
  MP_CHECK(logits.dim() == 2, op, ": expected logits [N, C], got ", shape_str(logits.sizes()));
  MP_CHECK(targets.dtype() == DType::Int64, op, ": targets must be int64, got ", dtype_name(targets.dtype()));
  MP_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), op, ": targets ", shape_str(targets.sizes()),
           " do not match logits ", shape_str(logits.sizes()));
  MP_CHECK(logits.size(0) > 0, op, ": empty batch");
  check_f32(op, logits);
}

}  // namespace

Tensor softmax(const Tensor& t, int64_t dim) { return softmax_impl(t, dim, false, "softmax"); }
Tensor log_softmax(const Tensor& t, int64_t dim) { return softmax_impl(t, dim, true, "log_softmax"); }
Tensor softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  return softmax_backward_impl(g, y, dim, false, "softmax_backward");
}
Tensor log_softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  return softmax_backward_impl(g, y, dim, true, "log_softmax_backward");
}

// loss = mean_i (logsumexp(x_i) - x_i[t_i]); probs = softmax(x) for the backward. Reading the
// bad-target flag back synchronises the stream once per call.
std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& targets) {
  check_targets(logits, targets, "cross_entropy");
  const int64_t n = logits.size(0), c = logits.size(1);
  Tensor x = ops::contiguous(logits), tg = ops::contiguous(targets);
  Tensor probs = empty({n, c}, logits.options()), row_loss = empty({n}, logits.options());
  Tensor total = empty({}, logits.options());
  DeviceFlag bad(logits.device());
  cudaStream_t stream = stream_of(logits);
  launch_cross_entropy(ptr<float>(x), ptr<int64_t>(tg), ptr<float>(probs), ptr<float>(row_loss), bad.get(), n, c,
                       stream);
  launch_sum_rows(row_loss.raw_data(), total.raw_data(), ScalarType::Float32, 1, n, stream);
  bad.check("cross_entropy: a target is out of range for ", c, " classes (targets ", shape_str(targets.sizes()),
            " on ", targets.device().str(), ")");
  return {mul_scalar(total, 1.0 / static_cast<double>(n)), probs};
}

Tensor cross_entropy_backward(const Tensor& grad, const Tensor& probs, const Tensor& targets) {
  check_targets(probs, targets, "cross_entropy_backward");
  MP_CHECK(grad.numel() == 1, "cross_entropy_backward: grad must be a scalar, got ", shape_str(grad.sizes()));
  const int64_t n = probs.size(0), c = probs.size(1);
  Tensor g = ops::to(grad, DType::Float32), p = ops::contiguous(probs), tg = ops::contiguous(targets);
  Tensor dx = empty({n, c}, probs.options());
  launch_cross_entropy_backward(ptr<float>(g), ptr<float>(p), ptr<int64_t>(tg), ptr<float>(dx), n, c, stream_of(probs));
  return dx;
}

}  // namespace minipipe::cuda
