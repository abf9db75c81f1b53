// The CUDA backend's elementwise ops: shape and dtype checks as the CPU's (tensor/cpu/
// elementwise.cpp), then one launch of elementwise.cu on the device's compute stream. Float32;
// int64 for the arithmetic and comparisons that indices and accuracy counts need.
#include "tensor/cuda/ops_common.h"

namespace minipipe::cuda {

namespace {

Tensor unary(const char* op, UnaryOp k, const Tensor& a, double s = 0) {
  check_f32(op, a);
  Tensor out = empty(a.sizes(), a.options());
  const auto g = geometry<2>(out.sizes(), {out.strides(), a.strides()}, op);
  launch_unary(k, ptr<float>(out), ptr<float>(a), static_cast<float>(s), g, out.numel(), stream_of(a));
  return out;
}

void binary_into(const char* op, BinaryOp k, const Tensor& out, const Tensor& a, const Tensor& b, double alpha) {
  const auto g = geometry<3>(out.sizes(),
                             {out.strides(), cpu::broadcast_strides(a, out.sizes()), cpu::broadcast_strides(b, out.sizes())},
                             op);
  if (a.dtype() == DType::Int64)
    launch_binary_i64(k, ptr<int64_t>(out), ptr<int64_t>(a), ptr<int64_t>(b), g, out.numel(), stream_of(a));
  else
    launch_binary(k, ptr<float>(out), ptr<float>(a), ptr<float>(b), static_cast<float>(alpha), g, out.numel(),
                  stream_of(a));
}

// int_ok: the op also has an int64 kernel.
Tensor binary(const char* op, BinaryOp k, const Tensor& a, const Tensor& b, bool int_ok) {
  MP_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", dtype_name(a.dtype()), " ", shape_str(a.sizes()), " and ",
           dtype_name(b.dtype()), " ", shape_str(b.sizes()));
  if (!(int_ok && a.dtype() == DType::Int64)) check_f32(op, a);
  Tensor out = empty(ops::broadcast_shapes(a.sizes(), b.sizes(), op), a.options());
  binary_into(op, k, out, a, b, 0);
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", BinaryOp::Add, a, b, true); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", BinaryOp::Sub, a, b, true); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", BinaryOp::Mul, a, b, true); }
Tensor div(const Tensor& a, const Tensor& b) { return binary("div", BinaryOp::Div, a, b, false); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary("maximum", BinaryOp::Maximum, a, b, true); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary("eq", BinaryOp::Eq, a, b, true); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary("ne", BinaryOp::Ne, a, b, true); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary("lt", BinaryOp::Lt, a, b, true); }
Tensor le(const Tensor& a, const Tensor& b) { return binary("le", BinaryOp::Le, a, b, true); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary("gt", BinaryOp::Gt, a, b, true); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary("ge", BinaryOp::Ge, a, b, true); }
Tensor relu_backward(const Tensor& g, const Tensor& x) { return binary("relu_backward", BinaryOp::ReluBackward, g, x, false); }
Tensor gelu_backward(const Tensor& g, const Tensor& x) { return binary("gelu_backward", BinaryOp::GeluBackward, g, x, false); }
Tensor tanh_backward(const Tensor& g, const Tensor& y) { return binary("tanh_backward", BinaryOp::TanhBackward, g, y, false); }
Tensor sigmoid_backward(const Tensor& g, const Tensor& y) {
  return binary("sigmoid_backward", BinaryOp::SigmoidBackward, g, y, false);
}

Tensor add_scalar(const Tensor& a, double s) { return unary("add_scalar", UnaryOp::AddScalar, a, s); }
Tensor mul_scalar(const Tensor& a, double s) { return unary("mul_scalar", UnaryOp::MulScalar, a, s); }
Tensor pow_scalar(const Tensor& a, double e) {
  return e == 2.0 ? unary("pow", UnaryOp::Square, a) : unary("pow", UnaryOp::Pow, a, e);
}
Tensor neg(const Tensor& a) { return unary("neg", UnaryOp::Neg, a); }
Tensor exp(const Tensor& a) { return unary("exp", UnaryOp::Exp, a); }
Tensor log(const Tensor& a) { return unary("log", UnaryOp::Log, a); }
Tensor sqrt(const Tensor& a) { return unary("sqrt", UnaryOp::Sqrt, a); }
Tensor abs(const Tensor& a) { return unary("abs", UnaryOp::Abs, a); }
Tensor tanh(const Tensor& a) { return unary("tanh", UnaryOp::Tanh, a); }
Tensor sigmoid(const Tensor& a) { return unary("sigmoid", UnaryOp::Sigmoid, a); }
Tensor relu(const Tensor& a) { return unary("relu", UnaryOp::Relu, a); }
Tensor gelu(const Tensor& a) { return unary("gelu", UnaryOp::Gelu, a); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  MP_CHECK(a.dtype() == b.dtype(), "where: dtype mismatch: ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  Shape shape = ops::broadcast_shapes(ops::broadcast_shapes(cond.sizes(), a.sizes(), "where"), b.sizes(), "where");
  Tensor out = empty(shape, a.options());
  const auto g = geometry<4>(shape,
                             {out.strides(), cpu::broadcast_strides(cond, shape), cpu::broadcast_strides(a, shape),
                              cpu::broadcast_strides(b, shape)},
                             "where");
  launch_where(out.raw_data(), cond.raw_data(), scalar_type(cond.dtype()), a.raw_data(), b.raw_data(),
               scalar_type(a.dtype()), g, out.numel(), stream_of(a));
  return out;
}

void add_(const Tensor& a, const Tensor& b, double alpha) {
  cpu::check_writable("add_", a);
  MP_CHECK(a.dtype() == b.dtype(), "add_: dtype mismatch: ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  check_f32("add_", a);
  MP_CHECK(ops::broadcast_shapes(a.sizes(), b.sizes(), "add_") == a.sizes(), "add_: cannot add shape ",
           shape_str(b.sizes()), " into ", shape_str(a.sizes()), " in place");
  binary_into("add_", BinaryOp::AddScaled, a, a, b, alpha);
}

void mul_scalar_(const Tensor& a, double s) {
  cpu::check_writable("mul_scalar_", a);
  check_f32("mul_scalar_", a);
  const auto g = geometry<2>(a.sizes(), {a.strides(), a.strides()}, "mul_scalar_");
  launch_unary(UnaryOp::MulScalar, ptr<float>(a), ptr<float>(a), static_cast<float>(s), g, a.numel(), stream_of(a));
}

}  // namespace minipipe::cuda
