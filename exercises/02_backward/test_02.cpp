// Exercise 2's grader: the student's add/sub/mul/div backward functions, wrapped into
// differentiable ops with autograd::record, checked by the float64 gradcheck (autograd/gradcheck.h)
// over a table of broadcasting shapes, and compared with the project's own autograd ops.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "exercise.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace {

using namespace minipipe;
using BackwardFn = std::pair<Tensor, Tensor> (*)(const Tensor&, const Tensor&, const Tensor&);

struct Family {
  std::string name;                                         // "mul"
  Tensor (*raw)(const Tensor&, const Tensor&);              // the forward: ops::mul
  Tensor (*project)(const Tensor&, const Tensor&);          // the project's differentiable op
  BackwardFn student;                                       // exercises::mul_backward
};

Family family(const std::string& name) {
  if (name == "add") return {name, ops::add, [](const Tensor& a, const Tensor& b) { return a + b; }, exercises::add_backward};
  if (name == "sub") return {name, ops::sub, [](const Tensor& a, const Tensor& b) { return a - b; }, exercises::sub_backward};
  if (name == "mul") return {name, ops::mul, [](const Tensor& a, const Tensor& b) { return a * b; }, exercises::mul_backward};
  return {name, ops::div, [](const Tensor& a, const Tensor& b) { return a / b; }, exercises::div_backward};
}

// Checks one returned gradient's shape and dtype, in words a student can act on.
void check_grad(const std::string& fn, const char* which, const Tensor& g, const Tensor& input) {
  MP_CHECK(g.defined(), fn, "_backward returned an undefined dL/d", which, "; return a tensor of ", which,
           "'s shape ", shape_str(input.sizes()));
  MP_CHECK(g.sizes() == input.sizes(), fn, "_backward: dL/d", which, " has shape ", shape_str(g.sizes()), " but ",
           which, " has shape ", shape_str(input.sizes()),
           ": sum the gradient over the dims it was broadcast along (ops::sum_to)");
  MP_CHECK(g.dtype() == input.dtype(), fn, "_backward: dL/d", which, " is ", dtype_name(g.dtype()), " but ", which,
           " is ", dtype_name(input.dtype()));
}

// The student's backward as a differentiable op: the project's forward, the student's gradients.
Tensor student_op(const Family& f, const Tensor& a, const Tensor& b) {
  return autograd::record("StudentBackward", f.raw(a, b), {a, b},
                          [f, x = a.detach(), y = b.detach()](const Tensor& g, autograd::InputGrads& gi) {
                            auto [ga, gb] = f.student(g, x, y);
                            check_grad(f.name, "a", ga, x);
                            check_grad(f.name, "b", gb, y);
                            if (gi.needs(0)) gi[0] = ga;
                            if (gi.needs(1)) gi[1] = gb;
                          });
}

struct ShapeCase {
  std::string name;
  Shape a, b;
};

const std::vector<ShapeCase> kShapes = {
    {"same shapes [2, 3] and [2, 3]", {2, 3}, {2, 3}},
    {"a row broadcast: [2, 3] and [3]", {2, 3}, {3}},
    {"a column broadcast: [2, 3] and [2, 1]", {2, 3}, {2, 1}},
    {"both broadcast: [2, 1] and [1, 3]", {2, 1}, {1, 3}},
    {"a 0-dim scalar b: [2, 3] and []", {2, 3}, {}},
    {"a broadcast: [3] and [2, 3]", {3}, {2, 3}},
    {"3-D: [2, 3, 4] and [3, 1]", {2, 3, 4}, {3, 1}},
};

// Float64 leaves; b kept away from 0 (div), values with both signs.
std::pair<Tensor, Tensor> inputs(const ShapeCase& c, uint64_t seed) {
  Generator gen(seed);
  Tensor a = randn(c.a, DType::Float64, &gen);
  Tensor s = ops::sub(ops::mul_scalar(ops::gt(rand(c.b, DType::Float64, &gen), scalar_tensor(0.3, DType::Float64)), 2.0),
                      scalar_tensor(1.0, DType::Float64));  // +-1
  Tensor b = ops::mul(ops::add_scalar(rand(c.b, DType::Float64, &gen), 0.5), s);  // |b| in [0.5, 1.5)
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  return {a, b};
}

void gradcheck_family(const std::string& name) {
  const Family f = family(name);
  uint64_t seed = 1;
  for (const ShapeCase& c : kShapes) {
    SCOPED_TRACE("gradcheck of " + name + " with " + c.name);
    auto [a, b] = inputs(c, seed++);
    const auto result = autograd::gradcheck(
        [&](const std::vector<Tensor>& in) { return student_op(f, in[0], in[1]); }, {a, b});
    EXPECT_TRUE(result.ok) << name << "_backward disagrees with central differences: " << result.report;
  }
}

TEST(Gradcheck, AddBackward) { gradcheck_family("add"); }
TEST(Gradcheck, SubBackward) { gradcheck_family("sub"); }
TEST(Gradcheck, MulBackward) { gradcheck_family("mul"); }
TEST(Gradcheck, DivBackward) { gradcheck_family("div"); }

// One input held constant (requires_grad false on b): the gradient of a alone must still be right.
TEST(Gradcheck, OnlyOneInputNeedsAGradient) {
  for (const std::string name : {"add", "sub", "mul", "div"}) {
    SCOPED_TRACE("gradcheck of " + name + " with b constant, shapes [2, 3] and [3]");
    const Family f = family(name);
    auto [a, b] = inputs({"", {2, 3}, {3}}, 42);
    const Tensor b_const = b.detach();
    const auto result = autograd::gradcheck(
        [&](const std::vector<Tensor>& in) { return student_op(f, in[0], b_const); }, {a});
    EXPECT_TRUE(result.ok) << result.report;
  }
}

// The same gradients as the project's own ops (autograd/ops_elementwise.cpp), to rounding.
TEST(AgreesWithTheProject, EveryShapeEveryOp) {
  for (const std::string name : {"add", "sub", "mul", "div"}) {
    const Family f = family(name);
    uint64_t seed = 100;
    for (const ShapeCase& c : kShapes) {
      SCOPED_TRACE(name + " with " + c.name);
      auto [a, b] = inputs(c, seed++);
      Generator gen(seed);
      const Tensor g = randn(f.raw(a, b).sizes(), DType::Float64, &gen);
      const auto [ga, gb] = f.student(g, a.detach(), b.detach());
      f.project(a, b).backward(g);
      for (auto [which, got, want] : {std::tuple{"a", ga, a.grad()}, std::tuple{"b", gb, b.grad()}}) {
        ASSERT_TRUE(got.defined()) << "dL/d" << which << " is undefined";
        ASSERT_EQ(shape_str(got.sizes()), shape_str(want.sizes()))
            << "dL/d" << which << " should have " << which << "'s shape (sum over the broadcast dims)";
        const auto vg = ops::to(got, DType::Float64).to_vector<double>(), vw = want.to_vector<double>();
        for (size_t i = 0; i < vw.size(); ++i)
          ASSERT_NEAR(vg[i], vw[i], 1e-12 * std::max(1.0, std::abs(vw[i])))
              << "dL/d" << which << " element " << i << ": yours " << vg[i] << ", the project's " << vw[i];
      }
    }
  }
}

}  // namespace
