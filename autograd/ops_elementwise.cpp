// Differentiable elementwise ops. Broadcasting ops sum their gradient back to each input's
// shape (ops::sum_to). Backward lambdas capture detached tensors: saving an op's own output
// with its graph attached would make a reference cycle.
#include "autograd/functions.h"

namespace minipipe {

using autograd::InputGrads;
using autograd::record;

Tensor add(const Tensor& a, const Tensor& b) {
  return record("AddBackward", ops::add(a, b), {a, b}, [sa = a.sizes(), sb = b.sizes()](const Tensor& g, InputGrads& gi) {
    if (gi.needs(0)) gi[0] = ops::sum_to(g, sa);
    if (gi.needs(1)) gi[1] = ops::sum_to(g, sb);
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return record("SubBackward", ops::sub(a, b), {a, b}, [sa = a.sizes(), sb = b.sizes()](const Tensor& g, InputGrads& gi) {
    if (gi.needs(0)) gi[0] = ops::sum_to(g, sa);
    if (gi.needs(1)) gi[1] = ops::sum_to(ops::neg(g), sb);
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return record("MulBackward", ops::mul(a, b), {a, b}, [x = a.detach(), y = b.detach()](const Tensor& g, InputGrads& gi) {
    if (gi.needs(0)) gi[0] = ops::sum_to(ops::mul(g, y), x.sizes());
    if (gi.needs(1)) gi[1] = ops::sum_to(ops::mul(g, x), y.sizes());
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  return record("DivBackward", ops::div(a, b), {a, b}, [x = a.detach(), y = b.detach()](const Tensor& g, InputGrads& gi) {
    Tensor gy = ops::div(g, y);  // d(x/y)/dx = 1/y,  d(x/y)/dy = -x/y^2
    if (gi.needs(0)) gi[0] = ops::sum_to(gy, x.sizes());
    if (gi.needs(1)) gi[1] = ops::sum_to(ops::neg(ops::div(ops::mul(gy, x), y)), y.sizes());
  });
}

Tensor add(const Tensor& a, double s) {
  return record("AddScalarBackward", ops::add_scalar(a, s), {a}, [](const Tensor& g, InputGrads& gi) { gi[0] = g; });
}

Tensor mul(const Tensor& a, double s) {
  return record("MulScalarBackward", ops::mul_scalar(a, s), {a},
                [s](const Tensor& g, InputGrads& gi) { gi[0] = ops::mul_scalar(g, s); });
}

Tensor neg(const Tensor& a) {
  return record("NegBackward", ops::neg(a), {a}, [](const Tensor& g, InputGrads& gi) { gi[0] = ops::neg(g); });
}

Tensor pow(const Tensor& a, double e) {
  return record("PowBackward", ops::pow_scalar(a, e), {a}, [x = a.detach(), e](const Tensor& g, InputGrads& gi) {
    gi[0] = ops::mul(g, ops::mul_scalar(ops::pow_scalar(x, e - 1), e));  // e x^(e-1)
  });
}

Tensor exp(const Tensor& a) {
  Tensor y = ops::exp(a);
  return record("ExpBackward", y, {a}, [y = y.detach()](const Tensor& g, InputGrads& gi) { gi[0] = ops::mul(g, y); });
}

Tensor log(const Tensor& a) {
  return record("LogBackward", ops::log(a), {a}, [x = a.detach()](const Tensor& g, InputGrads& gi) { gi[0] = ops::div(g, x); });
}

Tensor sqrt(const Tensor& a) {
  Tensor y = ops::sqrt(a);
  return record("SqrtBackward", y, {a}, [y = y.detach()](const Tensor& g, InputGrads& gi) {
    gi[0] = ops::div(ops::mul_scalar(g, 0.5), y);  // 1 / (2 sqrt(x))
  });
}

Tensor tanh(const Tensor& a) {
  Tensor y = ops::tanh(a);
  return record("TanhBackward", y, {a}, [y = y.detach()](const Tensor& g, InputGrads& gi) { gi[0] = ops::tanh_backward(g, y); });
}

Tensor sigmoid(const Tensor& a) {
  Tensor y = ops::sigmoid(a);
  return record("SigmoidBackward", y, {a}, [y = y.detach()](const Tensor& g, InputGrads& gi) { gi[0] = ops::sigmoid_backward(g, y); });
}

Tensor relu(const Tensor& a) {
  return record("ReluBackward", ops::relu(a), {a}, [x = a.detach()](const Tensor& g, InputGrads& gi) { gi[0] = ops::relu_backward(g, x); });
}

Tensor gelu(const Tensor& a) {
  return record("GeluBackward", ops::gelu(a), {a}, [x = a.detach()](const Tensor& g, InputGrads& gi) { gi[0] = ops::gelu_backward(g, x); });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return record("WhereBackward", ops::where(cond, a, b), {a, b},
                [c = cond.detach(), sa = a.sizes(), sb = b.sizes()](const Tensor& g, InputGrads& gi) {
                  Tensor zero = zeros({}, g.options());
                  if (gi.needs(0)) gi[0] = ops::sum_to(ops::where(c, g, zero), sa);
                  if (gi.needs(1)) gi[1] = ops::sum_to(ops::where(c, zero, g), sb);
                });
}

Tensor masked_fill(const Tensor& t, const Tensor& mask, double value) {
  return where(mask, full({}, value, t.options()), t);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }

}  // namespace minipipe
