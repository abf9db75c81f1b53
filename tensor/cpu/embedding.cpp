// CPU embedding lookup and its backward (as llm.c's encoder_forward / encoder_backward, without
// the position term, which nn::GPTEmbedding adds). The backward is a scatter-add: rows with the
// same token add into one table row, always in index order, so the result is bit-for-bit the
// same whatever the thread count (threads split the C columns, never the rows).
#include <cstring>

#include "tensor/cpu/loops.h"
#include "tensor/factory.h"
#include "tensor/cpu/kernels.h"
#include "tensor/ops.h"

namespace minipipe::cpu {

namespace {

// Checks every index against the table size and returns them contiguous.
Tensor checked_index(const Tensor& index, int64_t V, const char* op) {
  MP_CHECK(index.dtype() == DType::Int64, op, ": token indices must be int64, got ", dtype_name(index.dtype()),
           " ", shape_str(index.sizes()));
  Tensor idx = contiguous(index);
  const int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = 0, n = idx.numel(); i < n; ++i)
    MP_CHECK(p[i] >= 0 && p[i] < V, op, ": index ", p[i], " at flat position ", i, " of ", shape_str(index.sizes()),
             " is out of range for a table of ", V, " rows");
  return idx;
}

// dw[index[i], :] += g[i, :] for i = 0 .. n-1 in order; threads own disjoint column ranges.
template <typename T>
void embedding_backward_kernel(const T* pg, const int64_t* pi, T* pd, int64_t n, int64_t C) {
#pragma omp parallel if (n * C >= cpu::kParallelGrain && !omp_in_parallel())
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t c0 = C * t / nt, c1 = C * (t + 1) / nt;
    for (int64_t i = 0; i < n; ++i) {
      T* d = pd + pi[i] * C;
      const T* gr = pg + i * C;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) d[c] += gr[c];
    }
  }
}

}  // namespace

// weight: [V, C], index: [...] -> out [..., C];  out[n, :] = weight[index[n], :]
Tensor embedding(const Tensor& weight, const Tensor& index) {
  MP_CHECK(weight.dim() == 2, "embedding: weight must be [V, C], got ", shape_str(weight.sizes()));
  const int64_t V = weight.size(0), C = weight.size(1);
  Tensor idx = checked_index(index, V, "embedding");
  Tensor w = contiguous(weight);
  Shape shape = index.sizes();
  shape.push_back(C);
  Tensor out = empty(shape, weight.options());
  const int64_t n = idx.numel();
  const int64_t* pi = idx.data_ptr<int64_t>();
  const size_t row_bytes = static_cast<size_t>(C) * element_size(weight.dtype());
  const char* pw = static_cast<const char*>(w.raw_data());
  char* po = static_cast<char*>(out.raw_data());
#pragma omp parallel for schedule(static) if (n * C >= cpu::kParallelGrain && !omp_in_parallel())
  for (int64_t i = 0; i < n; ++i) std::memcpy(po + i * row_bytes, pw + pi[i] * row_bytes, row_bytes);
  return out;
}

// grad: [..., C], index: [...] -> dweight [V, C];  dweight[index[n], :] += grad[n, :], n in order
Tensor embedding_backward(const Tensor& grad, const Tensor& index, int64_t num_embeddings) {
  MP_CHECK(num_embeddings > 0, "embedding_backward: num_embeddings must be positive, got ", num_embeddings);
  Tensor idx = checked_index(index, num_embeddings, "embedding_backward");
  MP_CHECK(grad.dim() == index.dim() + 1 && Shape(grad.sizes().begin(), grad.sizes().end() - 1) == index.sizes(),
           "embedding_backward: grad ", shape_str(grad.sizes()), " does not match index ", shape_str(index.sizes()),
           " (expected the index shape plus a last dim C)");
  const int64_t C = grad.size(-1), n = idx.numel();
  Tensor g = contiguous(grad);
  Tensor dw = zeros({num_embeddings, C}, grad.options());
  MP_DISPATCH_FLOAT(grad.dtype(), "embedding_backward", [&] {
    embedding_backward_kernel<scalar_t>(g.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), dw.data_ptr<scalar_t>(), n, C);
  });
  return dw;
}

}  // namespace minipipe::cpu
