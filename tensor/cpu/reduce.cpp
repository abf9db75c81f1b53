// CPU reductions: sum / mean over any set of dims (keepdim or not), max / argmax over one dim,
// and sum_to (the reverse of broadcasting, used by every broadcasting op's backward).
// Sums accumulate in double (float32 too) in a fixed order, so results are deterministic and the
// same on any number of threads (threads split the outputs, never one output's elements).
#include <omp.h>

#include <algorithm>

#include "tensor/cpu/loops.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {

std::vector<bool> reduced_mask(const Tensor& t, std::vector<int64_t> dims, const char* op) {
  std::vector<bool> mask(t.dim(), false);
  if (dims.empty()) mask.assign(t.dim(), true);  // no dims given: reduce all
  for (auto d : dims) {
    d = wrap_dim(d, t.dim(), op);
    if (t.dim() == 0) continue;
    MP_CHECK(!mask[d], op, ": dim ", d, " appears twice in ", shape_str(dims));
    mask[d] = true;
  }
  return mask;
}

Shape reduced_shape(const Tensor& t, const std::vector<bool>& mask, bool keepdim) {
  Shape s;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (!mask[i]) s.push_back(t.size(i));
    else if (keepdim) s.push_back(1);
  }
  return s;
}

}  // namespace

namespace {

// Adds every element of the input (sizes, in_strides at x) into its output's running sum in acc
// (acc_strides: 0 along reduced dims). Each output adds its elements in logical order — a running
// sum continued across runs, not partial sums added at the end — so the bits do not depend on the
// input's layout, nor on how the outputs are split across threads.
template <typename Acc, typename T>
void sum_into(Acc* acc, const T* x, const Shape& sizes, const Shape& acc_strides, const Shape& in_strides) {
  const int64_t numel = shape_numel(sizes);
  if (numel == 0) return;
  auto inner = [=](std::array<int64_t, 2> off, int64_t n, std::array<int64_t, 2> st) {
    if (st[0] == 0) {
      Acc s = acc[off[0]];
      for (int64_t i = 0; i < n; ++i) s += static_cast<Acc>(x[off[1] + i * st[1]]);
      acc[off[0]] = s;
    } else {
      for (int64_t i = 0; i < n; ++i) acc[off[0] + i * st[0]] += static_cast<Acc>(x[off[1] + i * st[1]]);
    }
  };
  auto g = cpu::coalesce<2>(sizes, {acc_strides, in_strides});
  cpu::loop_range<2>(g, 0, numel, inner);
}

// sum_into over `threads` bands of dim `split` (a kept dim), one per thread. Each thread sums its
// band into a buffer of its own, then copies it into acc: threads writing neighbouring outputs of
// one acc would share the cache line between their bands and pass it back and forth every row.
template <typename Acc, typename T>
void sum_into_bands(Acc* acc, const T* x, const Shape& sizes, const Shape& acc_strides, const Shape& in_strides,
                    int64_t split, int threads) {
  const int64_t n = sizes[split];
#pragma omp parallel num_threads(static_cast<int>(std::min<int64_t>(threads, n)))
  {
    const int64_t k = omp_get_thread_num(), parts = omp_get_num_threads();
    const int64_t begin = n * k / parts, end = n * (k + 1) / parts;
    Shape band = sizes, outputs = sizes;  // outputs: the band's kept shape (1 along reduced dims)
    band[split] = end - begin;
    for (size_t d = 0; d < sizes.size(); ++d)
      if (acc_strides[d] == 0) outputs[d] = 1;
    outputs[static_cast<size_t>(split)] = end - begin;
    Shape local_strides = contiguous_strides(outputs);
    for (size_t d = 0; d < sizes.size(); ++d)
      if (acc_strides[d] == 0) local_strides[d] = 0;
    std::vector<Acc> local(static_cast<size_t>(shape_numel(outputs)), Acc(0));
    sum_into(local.data(), x + begin * in_strides[split], band, local_strides, in_strides);
    Acc* out = acc + begin * acc_strides[split];
    const Acc* from = local.data();
    auto copy = [=](std::array<int64_t, 2> off, int64_t cnt, std::array<int64_t, 2> st) {
      for (int64_t i = 0; i < cnt; ++i) out[off[0] + i * st[0]] = from[off[1] + i * st[1]];
    };
    auto g = cpu::coalesce<2>(outputs, {acc_strides, contiguous_strides(outputs)});
    cpu::loop_range<2>(g, 0, shape_numel(outputs), copy);
  }
}

}  // namespace

Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  auto mask = reduced_mask(t, std::move(dims), "sum");
  Shape kept = reduced_shape(t, mask, true);
  // Accumulator strides: 0 along reduced dims, so every input element adds into its output.
  Shape acc_strides = contiguous_strides(kept);
  for (int64_t i = 0; i < t.dim(); ++i)
    if (mask[i]) acc_strides[i] = 0;
  // Threads split the outputs, never an output's elements: along the largest kept dim, each
  // thread sums a band of outputs, every one in the same order as on one thread. Only where that
  // dim lies outside every reduced dim in memory, so each thread streams a block of its own: a
  // column sum split by columns would have each thread read every row's half, slower on two
  // threads than on one (measured: 0.58x at 16 Mi elements). A reduction to one value, or along
  // the outer dims only, runs on one thread.
  int64_t split = -1;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (mask[i] || t.size(i) < 2) continue;
    bool outer = true;
    for (int64_t d = 0; d < t.dim(); ++d)
      if (mask[d] && t.size(d) > 1) outer = outer && t.stride(i) >= t.stride(d) * t.size(d);
    if (outer && (split < 0 || t.size(i) > t.size(split))) split = i;
  }
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool parallel = threads > 1 && split >= 0 && t.numel() >= cpu::kParallelGrain;
  Tensor out = MP_DISPATCH_ALL(t.dtype(), "sum", [&] {
    using Acc = std::conditional_t<std::is_same_v<scalar_t, int64_t>, int64_t, double>;
    std::vector<Acc> acc(shape_numel(kept), Acc(0));
    const scalar_t* x = t.data_ptr<scalar_t>();
    if (parallel)
      sum_into_bands(acc.data(), x, t.sizes(), acc_strides, t.strides(), split, threads);
    else
      sum_into(acc.data(), x, t.sizes(), acc_strides, t.strides());
    Tensor r = empty(kept, t.options());
    std::copy(acc.begin(), acc.end(), r.data_ptr<scalar_t>());
    return r;
  });
  return keepdim ? out : reshape(out, reduced_shape(t, mask, false));
}

namespace {

// Walks every output position of a single-dim reduction and hands the reduced row to `row`.
template <typename T, typename Row>
void for_each_row(const Tensor& t, int64_t dim, const Tensor& out, Row row) {
  Shape sizes = t.sizes(), in_strides = t.strides(), out_strides = out.strides();
  const int64_t n = sizes[dim], step = in_strides[dim];
  sizes.erase(sizes.begin() + dim);
  in_strides.erase(in_strides.begin() + dim);
  const T* x = t.data_ptr<T>();
  cpu::strided_loop<2>(sizes, {out_strides, in_strides},
                       [=](std::array<int64_t, 2> off, int64_t cnt, std::array<int64_t, 2> st) {
                         for (int64_t i = 0; i < cnt; ++i) row(off[0] + i * st[0], x + off[1] + i * st[1], n, step);
                       });
}

}  // namespace

std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim) {
  MP_CHECK(t.dim() > 0, "max: expected at least a 1-D tensor for a dim reduction");
  dim = wrap_dim(dim, t.dim(), "max");
  MP_CHECK(t.size(dim) > 0, "max: dim ", dim, " of shape ", shape_str(t.sizes()), " is empty");
  Shape out_shape = t.sizes();
  out_shape.erase(out_shape.begin() + dim);
  Tensor values = empty(out_shape, t.options());
  Tensor indices = empty(out_shape, DType::Int64);
  MP_DISPATCH_ALL(t.dtype(), "max", [&] {
    scalar_t* pv = values.data_ptr<scalar_t>();
    int64_t* pi = indices.data_ptr<int64_t>();
    // values and indices are contiguous with the same shape, so one output offset serves both.
    for_each_row<scalar_t>(t, dim, values, [=](int64_t o, const scalar_t* row, int64_t n, int64_t step) {
      int64_t best = 0;
      for (int64_t k = 1; k < n; ++k)
        if (row[k * step] > row[best * step]) best = k;  // first maximum wins ties
      pv[o] = row[best * step];
      pi[o] = best;
    });
  });
  if (keepdim) return {unsqueeze(values, dim), unsqueeze(indices, dim)};
  return {values, indices};
}

}  // namespace minipipe::cpu
