// The float32 transcendental kernels of tensor/cpu/fast_math.h (exp, log, tanh, sigmoid, GELU)
// against float64 libm rounded to float: a sweep over every 97th float bit pattern through the
// tensor ops (the vectorised loops), with the stated ulps bounds and the special values; and the
// bit-for-bit checks: scalar function == vector loop, whatever the offset, alignment or threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/cpu/fast_math.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/threads.h"

namespace minipipe {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Distance in representable floats (0 when both are NaN; huge when only one is).
int64_t ulps(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : int64_t{1} << 40;
  auto ordered = [](float f) {
    const int32_t i = std::bit_cast<int32_t>(f);
    return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : static_cast<int64_t>(i);
  };
  return std::llabs(ordered(a) - ordered(b));
}

double gelu_ref(double x) {  // = 0.5 x (1 + tanh(u)), written without the cancellation at -large x
  return x / (1.0 + std::exp(-2 * 0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

struct Fn {
  std::string name;
  std::function<Tensor(const Tensor&)> op;
  float (*scalar)(float);
  std::function<double(double)> ref;
  float lo, hi;     // the swept range
  int64_t bound;    // max ulps stated in fast_math.h
};

// The bounds below are the measured maxima over every float (MINIPIPE_FAST_MATH_STRIDE=1, run once
// by hand): exp 1, log 1, tanh 1, sigmoid 2, GELU 13 on |x| <= 3 and 211 on |x| <= 10. This
// sweep alone finds exp 1, log 1, tanh 1, sigmoid 2, GELU 12 and 198.
std::vector<Fn> functions() {
  return {
      {"exp", [](const Tensor& x) { return ops::exp(x); }, cpu::exp_poly, [](double x) { return std::exp(x); },
       -kInf, kInf, 1},
      {"log", [](const Tensor& x) { return ops::log(x); }, cpu::log_poly, [](double x) { return std::log(x); },
       0, kInf, 1},
      {"tanh", [](const Tensor& x) { return ops::tanh(x); }, cpu::tanh_poly, [](double x) { return std::tanh(x); },
       -kInf, kInf, 1},
      {"sigmoid", [](const Tensor& x) { return ops::sigmoid(x); }, cpu::sigmoid_poly,
       [](double x) { return 1 / (1 + std::exp(-x)); }, -kInf, kInf, 2},
      {"gelu_3", [](const Tensor& x) { return ops::gelu(x); }, cpu::gelu_poly, gelu_ref, -3, 3, 13},
      {"gelu_10", [](const Tensor& x) { return ops::gelu(x); }, cpu::gelu_poly, gelu_ref, -10, 10, 211},
  };
}

// A call the compiler cannot vectorise: the scalar path a loop's tail runs.
[[gnu::noinline]] float call_scalar(float (*f)(float), float x) { return f(x); }

// MINIPIPE_FAST_MATH_STRIDE=7 sweeps every 7th pattern instead (14 times longer: run by hand).
uint64_t sweep_stride() {
  const char* s = std::getenv("MINIPIPE_FAST_MATH_STRIDE");
  return s ? std::max<uint64_t>(1, std::strtoull(s, nullptr, 10)) : 97;
}

TEST(FastMath, UlpsAgainstFloat64OverEvery97thFloat) {
  const uint64_t stride = sweep_stride();
  for (const Fn& fn : functions()) {
    int64_t worst = 0, mismatched = 0, count = 0;
    float worst_x = 0;
    std::vector<float> xs;
    // Runs the chunk through the tensor op (the vectorised loop) and checks every element.
    auto check = [&] {
      Tensor y = fn.op(from_vector(xs));
      const float* py = y.data_ptr<float>();
      for (size_t i = 0; i < xs.size(); ++i) {
        const int64_t d = ulps(py[i], static_cast<float>(fn.ref(xs[i])));
        if (d > worst) worst = d, worst_x = xs[i];
        // The vector body and the scalar function agree bit for bit (NaN payloads aside).
        const float sc = call_scalar(fn.scalar, xs[i]);
        if (std::bit_cast<uint32_t>(sc) != std::bit_cast<uint32_t>(py[i]) && !(std::isnan(sc) && std::isnan(py[i])))
          ++mismatched;
      }
      count += static_cast<int64_t>(xs.size());
      xs.clear();
    };
    // Every 97th bit pattern whose float lies in [lo, hi] (both signs, subnormals, inf, NaN).
    for (uint64_t b = 0; b < (uint64_t{1} << 32); b += stride) {
      const float x = std::bit_cast<float>(static_cast<uint32_t>(b));
      if ((x >= fn.lo && x <= fn.hi) || std::isnan(x)) xs.push_back(x);
      if (xs.size() == (size_t{1} << 20)) check();
    }
    check();
    EXPECT_LE(worst, fn.bound) << fn.name << ": worst at x = " << worst_x;
    EXPECT_EQ(mismatched, 0) << fn.name << ": tensor op and scalar function differ";
    std::printf("%-8s %lld inputs in [%g, %g]: max %lld ulps (at x = %a), bound %lld\n", fn.name.c_str(),
                static_cast<long long>(count), fn.lo, fn.hi, static_cast<long long>(worst), worst_x,
                static_cast<long long>(fn.bound));
  }
}

TEST(FastMath, SpecialValues) {
  const float denorm_min = std::numeric_limits<float>::denorm_min();
  // exp: limits, gradual underflow to subnormals and 0, overflow to inf.
  EXPECT_EQ(cpu::exp_poly(-kInf), 0.0f);
  EXPECT_EQ(cpu::exp_poly(kInf), kInf);
  EXPECT_TRUE(std::isnan(cpu::exp_poly(kNaN)));
  EXPECT_EQ(cpu::exp_poly(0.0f), 1.0f);
  EXPECT_EQ(cpu::exp_poly(-0.0f), 1.0f);
  EXPECT_EQ(cpu::exp_poly(-104.0f), 0.0f);
  EXPECT_EQ(cpu::exp_poly(-1000.0f), 0.0f);
  EXPECT_EQ(cpu::exp_poly(-103.0f), static_cast<float>(std::exp(-103.0)));  // a subnormal
  EXPECT_GT(cpu::exp_poly(-103.0f), 0.0f);
  EXPECT_LT(cpu::exp_poly(-90.0f), std::numeric_limits<float>::min());
  EXPECT_LE(ulps(cpu::exp_poly(88.72f), static_cast<float>(std::exp(double{88.72f}))), 1);
  EXPECT_EQ(cpu::exp_poly(88.73f), kInf);
  EXPECT_EQ(cpu::exp_poly(1000.0f), kInf);
  // log
  EXPECT_EQ(cpu::log_poly(0.0f), -kInf);
  EXPECT_EQ(cpu::log_poly(-0.0f), -kInf);
  EXPECT_EQ(cpu::log_poly(1.0f), 0.0f);
  EXPECT_EQ(cpu::log_poly(kInf), kInf);
  EXPECT_TRUE(std::isnan(cpu::log_poly(-1.0f)));
  EXPECT_TRUE(std::isnan(cpu::log_poly(-kInf)));
  EXPECT_TRUE(std::isnan(cpu::log_poly(-denorm_min)));
  EXPECT_TRUE(std::isnan(cpu::log_poly(kNaN)));
  EXPECT_LE(ulps(cpu::log_poly(denorm_min), static_cast<float>(std::log(double{denorm_min}))), 1);
  EXPECT_LE(ulps(cpu::log_poly(std::numeric_limits<float>::max()),
                 static_cast<float>(std::log(double{std::numeric_limits<float>::max()}))), 1);
  // tanh: odd, exact +-1 for large |x|
  EXPECT_EQ(std::bit_cast<uint32_t>(cpu::tanh_poly(-0.0f)), std::bit_cast<uint32_t>(-0.0f));
  EXPECT_EQ(cpu::tanh_poly(0.0f), 0.0f);
  for (float x : {9.1f, 20.0f, 1e4f, 3e38f, kInf}) {
    EXPECT_EQ(cpu::tanh_poly(x), 1.0f) << x;
    EXPECT_EQ(cpu::tanh_poly(-x), -1.0f) << x;
  }
  EXPECT_EQ(cpu::tanh_poly(denorm_min), denorm_min);
  EXPECT_TRUE(std::isnan(cpu::tanh_poly(kNaN)));
  // sigmoid: limits 0 and 1, no overflow
  EXPECT_EQ(cpu::sigmoid_poly(0.0f), 0.5f);
  EXPECT_EQ(cpu::sigmoid_poly(-kInf), 0.0f);
  EXPECT_EQ(cpu::sigmoid_poly(kInf), 1.0f);
  EXPECT_EQ(cpu::sigmoid_poly(-1000.0f), 0.0f);
  EXPECT_EQ(cpu::sigmoid_poly(1000.0f), 1.0f);
  EXPECT_EQ(cpu::sigmoid_poly(20.0f), 1.0f);
  EXPECT_TRUE(std::isnan(cpu::sigmoid_poly(kNaN)));
  // GELU: x for large x, -0 for very negative x
  EXPECT_EQ(cpu::gelu_poly(0.0f), 0.0f);
  EXPECT_EQ(cpu::gelu_poly(20.0f), 20.0f);
  EXPECT_EQ(cpu::gelu_poly(1e20f), 1e20f);
  EXPECT_EQ(cpu::gelu_poly(-1e20f), 0.0f);
  EXPECT_TRUE(std::isnan(cpu::gelu_poly(kNaN)));
}

// exp_poly_upto89 (softmax rows, sigmoid) and exp_poly_from_m104 (tanh) leave out one of exp_poly's
// fix-ups: on their domains they give exp_poly's bits, in a vectorised loop as in a scalar call.
TEST(FastMath, ExpWithoutOneFixUpHasExpPolysBits) {
  std::vector<float> xs, upto, from, full;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 97) xs.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
  upto.resize(xs.size()), from.resize(xs.size()), full.resize(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    upto[i] = cpu::exp_poly_upto89(xs[i]);
    from[i] = cpu::exp_poly_from_m104(xs[i]);
    full[i] = cpu::exp_poly(xs[i]);
  }
  int64_t checked = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float x = xs[i];
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(upto[i]) && std::isnan(from[i]) && std::isnan(full[i])) << x;
      continue;
    }
    if (x <= 89.0f) {
      ASSERT_EQ(std::bit_cast<uint32_t>(upto[i]), std::bit_cast<uint32_t>(full[i])) << std::hexfloat << x;
      ASSERT_EQ(std::bit_cast<uint32_t>(call_scalar(cpu::exp_poly_upto89, x)), std::bit_cast<uint32_t>(full[i])) << x;
      ++checked;
    }
    if (x >= -104.0f) {
      ASSERT_EQ(std::bit_cast<uint32_t>(from[i]), std::bit_cast<uint32_t>(full[i])) << std::hexfloat << x;
      ASSERT_EQ(std::bit_cast<uint32_t>(call_scalar(cpu::exp_poly_from_m104, x)), std::bit_cast<uint32_t>(full[i])) << x;
      ++checked;
    }
  }
  EXPECT_GT(checked, 40000000);
}

// Each element's bits depend only on its value: not on its offset in the tensor (the split between
// vector body, epilogue and scalar tail), its alignment, or the thread count.
TEST(FastMath, BitsIndependentOfPositionAndThreads) {
  Generator g(3);
  Tensor base = ops::mul_scalar(randn({70000}, DType::Float32, &g), 4.0);  // above the parallel grain
  const int before = get_num_threads();
  for (const Fn& fn : functions()) {
    set_num_threads(1);
    Tensor full = fn.op(base);
    for (int64_t off : {1, 3, 7, 13, 17}) {
      Tensor part = fn.op(ops::contiguous(ops::slice(base, 0, off, 70000 - off % 5)));
      EXPECT_EQ(std::memcmp(part.data_ptr<float>(), full.data_ptr<float>() + off, part.nbytes()), 0)
          << fn.name << " offset " << off;
    }
    set_num_threads(2);
    Tensor two = fn.op(base);
    EXPECT_EQ(std::memcmp(two.raw_data(), full.raw_data(), full.nbytes()), 0) << fn.name << " 2 threads";
  }
  set_num_threads(before);
}

// Softmax and log-softmax rows: close to float64, masked (-inf) entries exactly 0, and the same
// bits for a row wherever it sits and whatever the thread count.
TEST(FastMath, SoftmaxRowsAgainstFloat64) {
  Generator g(5);
  for (int64_t n : {1, 5, 16, 17, 100, 1024, 1031}) {
    Tensor x = ops::mul_scalar(randn({64, n}, DType::Float32, &g), 5.0);
    Tensor x64 = ops::to(x, DType::Float64);
    const std::vector<double> sm = ops::softmax(x, -1).to_vector<double>(),
                              sm64 = ops::softmax(x64, -1).to_vector<double>(),
                              ls = ops::log_softmax(x, -1).to_vector<double>(),
                              ls64 = ops::log_softmax(x64, -1).to_vector<double>();
    const std::vector<double> xv = x64.to_vector<double>(), mx = ops::max(x64, 1).first.to_vector<double>();
    for (size_t i = 0; i < sm.size(); ++i) {
      // x - max rounds in float: a relative error of up to |x - max| 2^-24 in exp's argument, on
      // top of a few ulps from exp, the sum and the division.
      const double cond = 4 + std::fabs(xv[i] - mx[i / n]) / 2;
      EXPECT_NEAR(sm[i], sm64[i], cond * 0x1p-23 * sm64[i] + 1e-37) << "softmax n " << n << " element " << i;
      EXPECT_NEAR(ls[i], ls64[i], 1e-6 * std::max(1.0, std::fabs(ls64[i]))) << "log_softmax n " << n << " element " << i;
    }
  }
  Tensor masked = from_vector(std::vector<float>{1, -kInf, 2, -kInf, -kInf, 3}, {1, 6});
  const std::vector<float> y = ops::softmax(masked, -1).to_vector<float>();
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(ops::log_softmax(masked, -1).to_vector<float>()[1], -kInf);
  EXPECT_EQ(ops::softmax(from_vector(std::vector<float>{-1e30f, 0.0f}), 0).to_vector<float>()[0], 0.0f);

  // Row bits: the 1000-row result equals each row computed alone, at 1 and 2 threads.
  const int before = get_num_threads();
  Tensor big = randn({1000, 77}, DType::Float32, &g);
  for (bool log : {false, true}) {
    auto op = [&](const Tensor& t) { return log ? ops::log_softmax(t, -1) : ops::softmax(t, -1); };
    set_num_threads(1);
    Tensor one = op(big);
    set_num_threads(2);
    Tensor two = op(big);
    EXPECT_EQ(std::memcmp(one.raw_data(), two.raw_data(), one.nbytes()), 0) << "log " << log;
    for (int64_t r : {0, 1, 499, 999}) {
      Tensor alone = op(ops::contiguous(ops::slice(big, 0, r, r + 1)));
      EXPECT_EQ(std::memcmp(alone.raw_data(), one.data_ptr<float>() + r * 77, alone.nbytes()), 0)
          << "log " << log << " row " << r;
    }
  }
  set_num_threads(before);
}

}  // namespace
}  // namespace minipipe
