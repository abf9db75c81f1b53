// Factories. Random fills run on one thread, element by element, in row-major order, so the
// numbers do not depend on the thread count. zeros / ones / full fill on the tensor's device; the
// others are made on the CPU and copied to the device explicitly, so a seed gives the same numbers
// on every device.
#include "tensor/factory.h"

#include <cmath>

#include "tensor/ops.h"

namespace minipipe {

Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), t.options()); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), t.options()); }

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  Tensor t = empty(shape, opts);
  ops::fill_(t, value);
  return t;
}

Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  MP_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), "arange: start=", start,
           " end=", end, " step=", step, " must be finite");
  MP_CHECK(step != 0, "arange: step must be non-zero");
  MP_CHECK((end - start) / step >= 0, "arange: empty or infinite range start=", start,
           " end=", end, " step=", step);
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  if (!opts.device.is_cpu()) return arange(start, end, step, opts.dtype).to(opts.device);
  Tensor t = empty({n}, opts);
  MP_DISPATCH_ALL(opts.dtype, "arange", [&] {
    scalar_t* p = t.data_ptr<scalar_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(start + i * step);
  });
  return t;
}

Tensor arange(int64_t end, TensorOptions opts) { return arange(0.0, static_cast<double>(end), 1.0, opts); }

namespace {
template <typename Fn>
Tensor random_fill(const Shape& shape, TensorOptions opts, Generator* gen, const char* op, Fn draw) {
  if (!opts.device.is_cpu()) return random_fill(shape, opts.dtype, gen, op, draw).to(opts.device);
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, opts);
  MP_DISPATCH_FLOAT(opts.dtype, op, [&] {
    scalar_t* p = t.data_ptr<scalar_t>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = static_cast<scalar_t>(draw(g));
  });
  return t;
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions opts, Generator* gen) {
  return random_fill(shape, opts, gen, "rand", [](Generator& g) { return g.uniform(); });
}

Tensor randn(const Shape& shape, TensorOptions opts, Generator* gen) {
  return random_fill(shape, opts, gen, "randn", [](Generator& g) { return g.normal(); });
}

Tensor uniform(const Shape& shape, double lo, double hi, TensorOptions opts, Generator* gen) {
  MP_CHECK(lo <= hi, "uniform: lo=", lo, " > hi=", hi);
  return random_fill(shape, opts, gen, "uniform",
                     [=](Generator& g) { return lo + (hi - lo) * g.uniform(); });
}

namespace {
template <typename T>
Tensor from_values(const std::vector<T>& values, Shape shape) {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  MP_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "from_vector: ",
           values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data_ptr<T>());
  return t;
}
}  // namespace

Tensor from_vector(const std::vector<float>& v, Shape s) { return from_values(v, std::move(s)); }
Tensor from_vector(const std::vector<double>& v, Shape s) { return from_values(v, std::move(s)); }
Tensor from_vector(const std::vector<int64_t>& v, Shape s) { return from_values(v, std::move(s)); }

}  // namespace minipipe
