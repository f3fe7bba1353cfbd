// Forward values against hand computations, numeric stability at extreme inputs, tie handling,
// and the factories.

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using F = Tensor<float>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool all_finite(const Array<double>& a) {
  return std::all_of(a.begin(), a.end(), [](double v) { return std::isfinite(v); });
}

TEST(Factories, ShapesAndValues) {
  EXPECT_EQ(D::zeros({2, 3}).value(), (Array<double>{{0, 0, 0}, {0, 0, 0}}));
  EXPECT_EQ(D::ones({2}).value(), (Array<double>{1, 1}));
  EXPECT_EQ(D::full({1, 2}, 7.5).value(), (Array<double>{{7.5, 7.5}}));
  EXPECT_EQ(D::arange(5.0).value(), (Array<double>{0, 1, 2, 3, 4}));
  EXPECT_EQ(D::arange(1.0, 2.0, 0.25).value(), (Array<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(D::arange(3.0, 0.0, -1.0).value(), (Array<double>{3, 2, 1}));
  EXPECT_EQ(D::arange(3.0, 3.0).numel(), 0u);
  EXPECT_EQ(D::eye(2).value(), (Array<double>{{1, 0}, {0, 1}}));
  EXPECT_EQ(D::scalar(3.0).dim(), 0u);
  EXPECT_EQ(D::scalar(3.0).item(), 3.0);
  EXPECT_EQ(D::from({{{1.0}, {2.0}}}).shape(), (Shape{1, 2, 1}));
  EXPECT_EQ(F::from({1.0f, 2.0f}).value()(1), 2.0f);
}

TEST(Factories, SeededRandomIsReproducible) {
  EXPECT_EQ(D::randn({3, 4}, 42).value(), D::randn({3, 4}, 42).value());
  EXPECT_NE(D::randn({3, 4}, 42).value(), D::randn({3, 4}, 43).value());
  manual_seed(9);
  auto a = F::rand({5});
  manual_seed(9);
  EXPECT_EQ(a.value(), F::rand({5}).value());
  auto u = D::rand({1000}, 1).value();
  EXPECT_GE(xt::amin(u)(), 0.0);
  EXPECT_LT(xt::amax(u)(), 1.0);
  auto n = D::randn({20000}, 3).value();
  EXPECT_NEAR(xt::mean(n)(), 0.0, 0.03);
  EXPECT_NEAR(xt::stddev(n)(), 1.0, 0.03);
}

TEST(Tensor, ZeroCopyConstructionAndHandles) {
  Array<double> a{1.0, 2.0, 3.0};
  const double* p = a.data();
  D t(std::move(a));
  EXPECT_EQ(t.value().data(), p);
  D u = t;  // a handle copy shares everything
  u.mutable_value()(0) = 9.0;
  EXPECT_EQ(t.value()(0), 9.0);
  EXPECT_EQ(t.version(), 1u);
  EXPECT_EQ(t.numel(), 3u);
  EXPECT_EQ(t.size(-1), 3u);
  auto c = t.clone_detached();
  c.mutable_value()(0) = 1.0;
  EXPECT_EQ(t.value()(0), 9.0);
}

TEST(Elementwise, ArithmeticValues) {
  auto a = D::from({{1.0, 2.0}, {3.0, 4.0}});
  auto b = D::from({10.0, 20.0});
  EXPECT_EQ((a + b).value(), (Array<double>{{11, 22}, {13, 24}}));
  EXPECT_EQ((a - b).value(), (Array<double>{{-9, -18}, {-7, -16}}));
  EXPECT_EQ((a * b).value(), (Array<double>{{10, 40}, {30, 80}}));
  EXPECT_EQ((b / a).value(), (Array<double>{{10, 10}, {10.0 / 3, 5}}));
  EXPECT_EQ((1.0 - a).value(), (Array<double>{{0, -1}, {-2, -3}}));
  EXPECT_EQ((2.0 / b).value(), (Array<double>{0.2, 0.1}));
  EXPECT_EQ(pow(a, 2.0).value(), (Array<double>{{1, 4}, {9, 16}}));
  EXPECT_EQ(clamp(a, 1.5, 3.5).value(), (Array<double>{{1.5, 2}, {3, 3.5}}));
  EXPECT_EQ((a > D::scalar(2.0)).value(), (Array<double>{{0, 0}, {1, 1}}));
  EXPECT_EQ(eq(a, D::from({1.0, 4.0})).value(), (Array<double>{{1, 0}, {0, 1}}));
}

TEST(Elementwise, WhereKeepsTheUntakenBranchOut) {
  auto x = D::from({-1.0, 0.0, 2.0}).requires_grad_();
  auto safe = where(x > D::scalar(0.0), log(x), D::scalar(0.0));
  EXPECT_TRUE(all_finite(safe.value()));
  safe.sum().backward();
  EXPECT_TRUE(all_finite(x.grad().value())) << x.grad().value();
  EXPECT_EQ(x.grad().value(), (Array<double>{0.0, 0.0, 0.5}));

  auto a = D::from({1.0, 2.0}).requires_grad_();
  auto b = D::from({kNaN, kInf}).requires_grad_();
  auto out = where(D::from({1.0, 1.0}), a, b);
  EXPECT_EQ(out.value(), a.value());
  (out * 3.0).sum().backward();
  EXPECT_EQ(a.grad().value(), (Array<double>{3.0, 3.0}));
  EXPECT_EQ(b.grad().value(), (Array<double>{0.0, 0.0}));
}

TEST(Elementwise, KinksAndTies) {
  auto x = D::from({-1.0, 0.0, 1.0}).requires_grad_();
  relu(x).sum().backward();
  EXPECT_EQ(x.grad().value(), (Array<double>{0, 0, 1}));  // 0 at the kink, as PyTorch
  x.clear_grad();
  abs(x).sum().backward();
  EXPECT_EQ(x.grad().value(), (Array<double>{-1, 0, 1}));
  x.clear_grad();
  leaky_relu(x, 0.2).sum().backward();
  EXPECT_EQ(x.grad().value(), (Array<double>{0.2, 0.2, 1}));

  auto a = D::from({1.0, 2.0}).requires_grad_();
  auto b = D::from({1.0, 3.0}).requires_grad_();
  maximum(a, b).sum().backward();
  EXPECT_EQ(a.grad().value(), (Array<double>{0.5, 0}));
  EXPECT_EQ(b.grad().value(), (Array<double>{0.5, 1}));

  auto m = D::from({{3.0, 1.0, 3.0}, {0.0, 2.0, 1.0}}).requires_grad_();
  m.max(1).sum().backward();
  EXPECT_EQ(m.grad().value(), (Array<double>{{0.5, 0, 0.5}, {0, 1, 0}}));
  EXPECT_EQ(m.max().item(), 3.0);
  EXPECT_EQ(m.min(0).value(), (Array<double>{0, 1, 1}));
}

TEST(Elementwise, SqrtAndLogAtZero) {
  auto x = D::from({0.0, 4.0}).requires_grad_();
  auto y = sqrt(x);
  EXPECT_EQ(y.value(), (Array<double>{0, 2}));
  y.sum().backward();
  EXPECT_EQ(x.grad().value()(0), kInf);  // d sqrt / dx at 0 is +inf, honestly reported
  EXPECT_EQ(x.grad().value()(1), 0.25);
}

TEST(Activation, StableAtExtremes) {
  auto x = D::from({-1000.0, -50.0, 0.0, 50.0, 1000.0}).requires_grad_();
  auto s = sigmoid(x);
  EXPECT_TRUE(all_finite(s.value()));
  EXPECT_EQ(s.value()(0), 0.0);
  EXPECT_EQ(s.value()(2), 0.5);
  EXPECT_EQ(s.value()(4), 1.0);
  s.sum().backward();
  EXPECT_TRUE(all_finite(x.grad().value()));
  auto t = tanh(x);
  EXPECT_EQ(t.value()(0), -1.0);
  EXPECT_EQ(t.value()(4), 1.0);

  auto logits = D::from({{1000.0, -1000.0, 0.0}, {-kInf, 5.0, 5.0}}).requires_grad_();
  auto ls = log_softmax(logits, 1);
  EXPECT_NEAR(ls.value()(0, 0), 0.0, 1e-12);
  EXPECT_NEAR(ls.value()(0, 1), -2000.0, 1e-9);
  EXPECT_EQ(ls.value()(1, 0), -kInf);
  EXPECT_NEAR(ls.value()(1, 1), -std::log(2.0), 1e-12);
  auto sm = softmax(logits, 1);
  EXPECT_TRUE(all_finite(sm.value()));
  EXPECT_NEAR(xt::sum(sm.value())(), 2.0, 1e-12);
  (sm * D::from({1.0, 2.0, 3.0})).sum().backward();
  EXPECT_TRUE(all_finite(logits.grad().value()));
}

TEST(Activation, StepAndHeavisideHaveZeroGradient) {
  auto x = D::from({-1.0, 0.0, 2.0}).requires_grad_();
  EXPECT_EQ(step(x).value(), (Array<double>{0, 0, 1}));
  EXPECT_EQ(step(x, -2.0).value(), (Array<double>{1, 1, 1}));
  EXPECT_EQ(heaviside(x, 0.5).value(), (Array<double>{0, 0.5, 1}));
  (step(x) + heaviside(x, 0.5)).sum().backward();
  EXPECT_EQ(x.grad().value(), (Array<double>{0, 0, 0}));
}

TEST(Reduce, ValuesAndShapes) {
  auto a = D::from({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  EXPECT_EQ(a.sum().item(), 21.0);
  EXPECT_EQ(a.sum().dim(), 0u);
  EXPECT_EQ(a.sum(0).value(), (Array<double>{5, 7, 9}));
  EXPECT_EQ(a.sum(1, true).value(), D::from({{6}, {15}}).value());
  EXPECT_EQ(a.mean(-1).value(), (Array<double>{2, 5}));
  EXPECT_EQ(mean(a, {0, 1}, true).shape(), (Shape{1, 1}));
  EXPECT_EQ(D::zeros({0, 3}).sum(0).value(), (Array<double>{0, 0, 0}));
  EXPECT_EQ(D::zeros({0, 3}).sum().item(), 0.0);
  auto m = D::from({{1.0, 5.0, 5.0}, {7.0, -1.0, 2.0}});
  EXPECT_EQ(argmax(m, 1).value(), (Array<double>{1, 0}));  // first of a tie
  EXPECT_EQ(argmin(m, 0).value(), (Array<double>{0, 1, 1}));
  EXPECT_EQ(argmax(m, -1, true).shape(), (Shape{2, 1}));
}

TEST(Linalg, MatmulMatchesNaiveProducts) {
  auto a = test::uniform({2, 3, 4}, 1);
  auto b = test::uniform({2, 4, 5}, 2);
  auto c = matmul(a, b).value();
  ASSERT_EQ(c.shape(), (Array<double>::shape_type{2, 3, 5}));
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 5; ++j) {
        double s = 0;
        for (std::size_t k = 0; k < 4; ++k) s += a.value()(n, i, k) * b.value()(n, k, j);
        EXPECT_NEAR(c(n, i, j), s, 1e-12);
      }
  auto v = D::from({1.0, 2.0});
  auto m = D::from({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  EXPECT_EQ(matmul(v, m).value(), (Array<double>{9, 12, 15}));
  EXPECT_EQ(matmul(m.T(), v).value(), (Array<double>{9, 12, 15}));
  EXPECT_EQ(matmul(v, v).dim(), 0u);
  EXPECT_EQ(matmul(v, v).item(), 5.0);
  EXPECT_EQ(matmul(D::zeros({3, 0}), D::zeros({0, 2})).value(), (Array<double>(Shape{3, 2}, 0.0)));
  auto f = F::from({{1.0f, 2.0f}}).matmul(F::from({{3.0f}, {4.0f}}));
  EXPECT_EQ(f.item(), 11.0f);
}

TEST(Shape, Values) {
  auto a = D::arange(6.0).reshape({2, 3});
  EXPECT_EQ(a.T().value(), (Array<double>{{0, 3}, {1, 4}, {2, 5}}));
  EXPECT_EQ(a.reshape({-1}).shape(), (Shape{6}));
  EXPECT_EQ(a.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(a.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(D::scalar(1.0).flatten().shape(), (Shape{1}));
  EXPECT_EQ(concat<double>({a, a}, 1).value(),
            (Array<double>{{0, 1, 2, 0, 1, 2}, {3, 4, 5, 3, 4, 5}}));
  EXPECT_EQ(stack<double>({a, a}, 0).shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(a.index_select(1, {2, 0}).value(), (Array<double>{{2, 0}, {5, 3}}));
  EXPECT_EQ(a.slice(1, 1, 3).value(), (Array<double>{{1, 2}, {4, 5}}));
  EXPECT_EQ(a.slice(1, -1, 10).value(), D::from({{2}, {5}}).value());
  EXPECT_EQ(a.slice(0, 5, 9).shape(), (Shape{0, 3}));
  EXPECT_EQ(a.broadcast_to({2, 2, 3}).shape(), (Shape{2, 2, 3}));
}

TEST(Loss, ValuesAgainstHandComputation) {
  auto p = D::from({0.8, 0.1});
  auto y = D::from({1.0, 0.0});
  EXPECT_NEAR(bce(p, y).item(), -(std::log(0.8) + std::log(0.9)) / 2, 1e-12);
  EXPECT_NEAR(bce(p, y, Reduction::Sum).item(), -(std::log(0.8) + std::log(0.9)), 1e-12);
  // Saturated probabilities give the clamped value 100, not inf.
  EXPECT_NEAR(bce(D::from({0.0, 1.0}), D::from({1.0, 0.0})).item(), 100.0, 1e-9);
  auto x = D::from({-1000.0, 0.0, 1000.0});
  auto l = bce_with_logits(x, D::from({1.0, 1.0, 0.0}), Reduction::None);
  EXPECT_NEAR(l.value()(0), 1000.0, 1e-9);
  EXPECT_NEAR(l.value()(1), std::log(2.0), 1e-12);
  EXPECT_NEAR(l.value()(2), 1000.0, 1e-9);
  EXPECT_NEAR(mse(D::from({1.0, 3.0}), D::from({0.0, 0.0})).item(), 5.0, 1e-12);
  // Uniform logits: -log(1/C).
  EXPECT_NEAR(cross_entropy(D::zeros({3, 4}), std::vector<std::int64_t>{0, 1, 3}).item(),
              std::log(4.0), 1e-12);
  auto logits = D::from({{1000.0, -1000.0}, {-kInf, 0.0}}).requires_grad_();
  auto ce = cross_entropy(logits, std::vector<std::int64_t>{0, 1}, Reduction::Sum);
  EXPECT_NEAR(ce.item(), 0.0, 1e-12);
  ce.backward();
  EXPECT_TRUE(all_finite(logits.grad().value()));
  EXPECT_NEAR(nll(D::from({{-1.0, -2.0}}), std::vector<std::int64_t>{1}).item(), 2.0, 1e-12);
  auto lp = log_softmax(D::from({{0.3, -0.2, 1.0}}), 1);
  EXPECT_NEAR(nll(lp, std::vector<std::int64_t>{2}).item(),
              cross_entropy(D::from({{0.3, -0.2, 1.0}}), std::vector<std::int64_t>{2}).item(),
              1e-12);
}

TEST(Precision, FloatAndDoubleAgree) {
  auto xd = test::uniform({8, 5}, 3);
  auto wd = test::uniform({5, 2}, 4);
  F xf(Array<float>(xt::cast<float>(xd.value())));
  F wf(Array<float>(xt::cast<float>(wd.value())));
  wd.requires_grad_();
  wf.requires_grad_();
  xd.matmul(wd).tanh().sum().backward();
  xf.matmul(wf).tanh().sum().backward();
  for (std::size_t i = 0; i < 10; ++i)
    EXPECT_NEAR(wf.grad().value().flat(i), wd.grad().value().flat(i), 1e-5);
}

}  // namespace
}  // namespace xgrad

namespace xgrad {
namespace {

TEST(EdgeValues, ExtremaKeepInfinitiesAndPropagateNaN) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Tensor<double>::from({-inf, -inf}).max().item(), -inf);
  EXPECT_EQ(Tensor<double>::from({inf, inf}).min().item(), inf);
  auto rows = Tensor<double>::from({{-inf, -inf}, {1.0, 2.0}}).requires_grad_();
  auto m = rows.max(1);
  EXPECT_EQ(m.value()(0), -inf);
  m.sum().backward();
  EXPECT_EQ(rows.grad().value(), Tensor<double>::from({{0.5, 0.5}, {0.0, 1.0}}).value());
  for (auto v : {Tensor<double>::from({nan, 1.0}), Tensor<double>::from({1.0, nan, 0.0})}) {
    EXPECT_TRUE(std::isnan(v.max().item()));
    EXPECT_TRUE(std::isnan(v.min().item()));
  }
  EXPECT_EQ(argmax(Tensor<double>::from({1.0, nan, 0.0}), 0).item(), 1.0);
  EXPECT_TRUE(std::isnan(relu(Tensor<double>::from({nan})).item()));
  auto a = Tensor<double>::from({nan, 0.0}).requires_grad_();
  auto b = Tensor<double>::from({0.0, nan}).requires_grad_();
  auto mx = maximum(a, b);
  EXPECT_TRUE(std::isnan(mx.value()(0)));
  EXPECT_TRUE(std::isnan(mx.value()(1)));
  mx.sum().backward();
  EXPECT_EQ(a.grad().value(), (Array<double>{1.0, 0.0}));  // the gradient follows the NaN
  EXPECT_EQ(b.grad().value(), (Array<double>{0.0, 1.0}));
}

TEST(EdgeValues, EmptyNestedListsAndSoftmaxOverNothing) {
  EXPECT_EQ(Tensor<double>::from({{}, {}}).shape(), (Shape{2, 0}));
  EXPECT_EQ(Tensor<double>::from({}).shape(), (Shape{0}));
  auto e = Tensor<double>::zeros({2, 0}).requires_grad_();
  auto s = softmax(e, 1) + log_softmax(e, 1);
  EXPECT_EQ(s.shape(), (Shape{2, 0}));
  s.sum().backward();
  EXPECT_EQ(e.grad().value().shape(), (Array<double>::shape_type{2, 0}));
  test::expect_error<ValueError>(
      [] {
        Tensor<double>::from({{1.0}, {2.0, 3.0}});
      },
      {"xgrad::from", "ragged"});
}

TEST(EdgeValues, PowZeroToTheZeroHasZeroGradient) {
  auto x = Tensor<double>::zeros({2}).requires_grad_();
  pow(x, Tensor<double>::zeros({2})).sum().backward();
  EXPECT_EQ(x.grad().value(), (Array<double>{0.0, 0.0}));
}

TEST(EdgeValues, DivisionByAScalarIsExact) {
  EXPECT_EQ((Tensor<double>::from({49.0}) / 49.0).item(), 1.0);
  test::expect_error<ValueError>([] { Tensor<double>::arange(0.0, 1e300); },
                                 {"xgrad::arange", "elements"});
}

}  // namespace
}  // namespace xgrad

namespace xgrad {
namespace {

// Same-shape operands and single-input ops run flat vector loops, with a scalar tail when the
// length is not a multiple of the vector width. These pin their values, edge inputs and
// gradients element by element against scalar formulas, in both precisions.
template <class T>
class FlatLoops : public ::testing::Test {};
using Precisions = ::testing::Types<float, double>;
TYPED_TEST_SUITE(FlatLoops, Precisions);

// 37 values in [-3, 3): several full batches and a partial one in either precision.
template <class T>
Tensor<T> ramp(std::size_t n = 37, T lo = -3, T hi = 3) {
  Array<T> v = Array<T>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) v(i) = lo + (hi - lo) * T(i) / T(n);
  return Tensor<T>(std::move(v));
}

template <class T>
T tol() {
  return std::is_same_v<T, float> ? T(2e-6) : T(1e-14);
}

TYPED_TEST(FlatLoops, BinaryArithmeticAndGradients) {
  using T = TypeParam;
  auto a = ramp<T>().requires_grad_();
  auto b = (ramp<T>() * T(0.5) + T(2)).detach().requires_grad_();  // in [0.5, 3.5): no zero
  const auto& x = a.value();
  const auto& y = b.value();
  const auto s = a + b, d = a - b, p = a * b, q = a / b;
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(s.value()(i), x(i) + y(i));
    EXPECT_EQ(d.value()(i), x(i) - y(i));
    EXPECT_EQ(p.value()(i), x(i) * y(i));
    EXPECT_EQ(q.value()(i), x(i) / y(i));
  }
  (s + d * T(2) + p * T(3) + q * T(4)).sum().backward();
  for (std::size_t i = 0; i < x.size(); ++i) {
    const T ga = 1 + 2 + 3 * y(i) + 4 / y(i);
    const T gb = 1 - 2 + 3 * x(i) - 4 * x(i) / (y(i) * y(i));
    EXPECT_NEAR(a.grad().value()(i), ga, tol<T>() * 8 * (1 + std::abs(ga))) << i;
    EXPECT_NEAR(b.grad().value()(i), gb, tol<T>() * 8 * (1 + std::abs(gb))) << i;
  }
}

TYPED_TEST(FlatLoops, UnaryValuesAndGradients) {
  using T = TypeParam;
  auto a = ramp<T>().requires_grad_();
  const auto& x = a.value();
  const auto e = exp(a), sg = sigmoid(a), th = tanh(a), r = relu(a);
  const auto l = log(a + T(3.5));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const T v = x(i);
    EXPECT_NEAR(e.value()(i), std::exp(v), tol<T>() * std::exp(v)) << i;
    EXPECT_NEAR(sg.value()(i), T(1) / (T(1) + std::exp(-v)), tol<T>()) << i;
    EXPECT_NEAR(th.value()(i), std::tanh(v), tol<T>()) << i;
    EXPECT_EQ(r.value()(i), v > 0 ? v : T(0)) << i;
    EXPECT_NEAR(l.value()(i), std::log(v + T(3.5)), tol<T>() * 4) << i;
  }
  const auto sq = sqrt(a + T(3.5)), p2 = pow(a, T(2)), lk = leaky_relu(a, T(0.25));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const T v = x(i);
    EXPECT_EQ(sq.value()(i), std::sqrt(v + T(3.5))) << i;
    EXPECT_EQ(p2.value()(i), v * v) << i;
    EXPECT_EQ(lk.value()(i), v > 0 ? v : v * T(0.25)) << i;
  }
  (e + sg + th + r + l - a * T(2) + T(1) + sq + p2 + lk).sum().backward();
  for (std::size_t i = 0; i < x.size(); ++i) {
    const T v = x(i);
    const T s = T(1) / (T(1) + std::exp(-v));
    const T t = std::tanh(v);
    const T want = std::exp(v) + s * (1 - s) + (1 - t * t) + (v > 0 ? 1 : 0) + 1 / (v + T(3.5)) -
                   2 + T(0.5) / std::sqrt(v + T(3.5)) + 2 * v + (v > 0 ? T(1) : T(0.25));
    EXPECT_NEAR(a.grad().value()(i), want, tol<T>() * 16 * (1 + std::abs(want))) << i;
  }
}

TYPED_TEST(FlatLoops, ActivationsAtNaNAndInfinities) {
  using T = TypeParam;
  const T inf = std::numeric_limits<T>::infinity();
  const T nan = std::numeric_limits<T>::quiet_NaN();
  // 11 values: a full float batch (8) and a partial one, so the edges land in both parts.
  auto a =
      Tensor<T>(Array<T>{nan, -inf, inf, T(-1000), T(1000), T(-100), T(100), T(0), nan, -inf, inf})
          .requires_grad_();
  const auto s = sigmoid(a);
  const auto r = relu(a);
  const auto t = tanh(a);
  const auto lk = leaky_relu(a, T(0.5));
  EXPECT_TRUE(std::isnan(lk.value()(0)));
  EXPECT_EQ(lk.value()(1), -inf);
  EXPECT_EQ(lk.value()(2), inf);
  EXPECT_EQ(lk.value()(5), T(-50));
  const std::vector<T> sig{nan, 0, 1, 0, 1, 0, 1, T(0.5), nan, 0, 1};
  const std::vector<T> rel{nan, 0, inf, 0, 1000, 0, 100, 0, nan, 0, inf};
  const std::vector<T> tan{nan, -1, 1, -1, 1, -1, 1, 0, nan, -1, 1};
  for (std::size_t i = 0; i < sig.size(); ++i) {
    if (std::isnan(sig[i])) {
      EXPECT_TRUE(std::isnan(s.value()(i))) << i;
      EXPECT_TRUE(std::isnan(r.value()(i))) << i;
      EXPECT_TRUE(std::isnan(t.value()(i))) << i;
    } else {
      // Within 1e-30: sigmoid(-100) is 3.7e-44 in double; everything else is exact.
      EXPECT_NEAR(s.value()(i), sig[i], T(1e-30)) << i;
      EXPECT_EQ(r.value()(i), rel[i]) << i;
      EXPECT_EQ(t.value()(i), tan[i]) << i;
    }
  }
  s.sum().backward();
  // sigmoid': finite and (all but) 0 at the saturated ends, NaN only where the input was NaN.
  for (std::size_t i = 0; i < sig.size(); ++i) {
    if (std::isnan(sig[i])) {
      EXPECT_TRUE(std::isnan(a.grad().value()(i))) << i;
    } else {
      EXPECT_NEAR(a.grad().value()(i), i == 7 ? T(0.25) : T(0), T(1e-30)) << i;
    }
  }
  a.clear_grad();
  relu(a).sum().backward();
  const std::vector<T> relu_grad{0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1};
  for (std::size_t i = 0; i < relu_grad.size(); ++i)
    EXPECT_EQ(a.grad().value()(i), relu_grad[i]) << i;
}

TYPED_TEST(FlatLoops, ZeroGradientMasksInfiniteLocalDerivatives) {
  using T = TypeParam;
  // Zeros in every lane position of a batch and in the tail.
  Array<T> v = Array<T>::from_shape({19});
  for (std::size_t i = 0; i < v.size(); ++i) v(i) = i % 3 == 0 ? T(0) : T(i);
  auto x = Tensor<T>(v).requires_grad_();
  auto keep = Tensor<T>(Array<T>(xt::cast<T>(xt::not_equal(v, T(0)))));
  // log(0) and 1/0 are taken only where the mask is 0, so the gradient there is exactly 0.
  (where(keep, log(x), Tensor<T>::scalar(0)) +
   where(keep, Tensor<T>::ones({19}) / x, Tensor<T>::scalar(0)))
      .sum()
      .backward();
  for (std::size_t i = 0; i < v.size(); ++i) {
    const T want = v(i) == 0 ? T(0) : T(1) / v(i) - T(1) / (v(i) * v(i));
    EXPECT_NEAR(x.grad().value()(i), want, tol<T>() * 4) << i;
  }
}

TYPED_TEST(FlatLoops, SumsMatchAWideAccumulator) {
  using T = TypeParam;
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(7), std::size_t(33),
                        std::size_t(1000), std::size_t(4099)}) {
    auto a = ramp<T>(n, T(-1), T(2)).requires_grad_();
    long double want = 0;
    for (std::size_t i = 0; i < n; ++i) want += a.value()(i);
    const auto s = a.sum();
    EXPECT_NEAR(s.item(), T(want), tol<T>() * (1 + n)) << n;
    (s * T(3)).backward();
    EXPECT_EQ(a.grad().value().shape(), (typename Array<T>::shape_type{n}));
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(a.grad().value()(i), T(3)) << i;
    if (n > 0) {
      EXPECT_NEAR(a.mean().item(), T(want / n), tol<T>() * 4) << n;
    }
  }
  // Rows (trailing dim) and columns (leading dim) of a [5, 13] matrix.
  auto m = ramp<T>(65).reshape({5, 13}).detach().requires_grad_();
  const auto rows = m.sum(1);
  const auto cols = m.sum(0, true);
  for (std::size_t i = 0; i < 5; ++i) {
    T want = 0;
    for (std::size_t j = 0; j < 13; ++j) want += m.value()(i, j);
    EXPECT_NEAR(rows.value()(i), want, tol<T>() * 40) << i;
  }
  for (std::size_t j = 0; j < 13; ++j) {
    T want = 0;
    for (std::size_t i = 0; i < 5; ++i) want += m.value()(i, j);
    EXPECT_NEAR(cols.value()(0, j), want, tol<T>() * 20) << j;
  }
  (rows * Tensor<T>(Array<T>{1, 2, 3, 4, 5})).sum().backward();
  cols.sum().backward();
  for (std::size_t i = 0; i < 5; ++i) {
    for (std::size_t j = 0; j < 13; ++j)
      EXPECT_EQ(m.grad().value()(i, j), T(i + 2)) << i << "," << j;
  }
}

TYPED_TEST(FlatLoops, EmptyTensors) {
  using T = TypeParam;
  auto a = Tensor<T>::zeros({0, 3}).requires_grad_();
  auto b = Tensor<T>::zeros({0, 3}).requires_grad_();
  auto out = (a + b) * (a - b) / b + exp(a) + log(a) + sigmoid(a) + tanh(a) + relu(a) - a * T(2);
  EXPECT_EQ(out.shape(), (Shape{0, 3}));
  EXPECT_EQ(out.sum().item(), T(0));
  out.sum().backward();
  EXPECT_EQ(a.grad().value().shape(), (typename Array<T>::shape_type{0, 3}));
  EXPECT_EQ(b.grad().value().shape(), (typename Array<T>::shape_type{0, 3}));
}

}  // namespace
}  // namespace xgrad

namespace xgrad {
namespace {

// GELU, SiLU, softplus, logsumexp, var and std against formulas evaluated here with <cmath>, and
// against values PyTorch prints (torch.nn.functional.gelu(torch.tensor(1.0)) = 0.8413447...).

using D2 = Tensor<double>;
using F2 = Tensor<float>;
constexpr double kInf2 = std::numeric_limits<double>::infinity();

double phi_cdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}
double gelu_ref(double x) {
  return x * phi_cdf(x);
}
double gelu_grad_ref(double x) {
  return phi_cdf(x) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
}
double gelu_tanh_ref(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double sigmoid_ref(double x) {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}
double softplus_ref(double x, double beta, double threshold) {
  return beta * x > threshold ? x : std::log1p(std::exp(beta * x)) / beta;
}

const std::vector<double> kActInputs = {-40.0, -9.0, -6.0, -1.5, -1.0, -0.3, 0.0,
                                        0.25,  1.0,  2.0,  7.5,  19.0, 21.0, 60.0};

template <class T>
Tensor<T> act_inputs() {
  auto a = Array<T>::from_shape({kActInputs.size()});
  std::transform(kActInputs.begin(), kActInputs.end(), a.begin(),
                 [](double v) { return static_cast<T>(v); });
  return Tensor<T>(std::move(a)).requires_grad_();
}

// |got - want| within rel of |want|, or within abs for values near 0.
void expect_close(double got, double want, double rel, double abs, const std::string& what) {
  EXPECT_NEAR(got, want, std::max(abs, rel * std::abs(want))) << what;
}

TEST(NewActivations, PyTorchReferenceValues) {
  auto x = D2::from({1.0, -1.0, 0.0});
  auto g = gelu(x).value();
  EXPECT_NEAR(g(0), 0.8413447460685429, 1e-15);
  EXPECT_NEAR(g(1), -0.15865525393145707, 1e-15);
  EXPECT_EQ(g(2), 0.0);
  EXPECT_NEAR(gelu(x, true).value()(0), 0.8411919906082768, 1e-15);
  EXPECT_EQ(gelu(x, "tanh").value(), gelu(x, true).value());
  EXPECT_EQ(gelu(x, "none").value(), gelu(x).value());
  EXPECT_NEAR(silu(x).value()(0), 0.7310585786300049, 1e-15);
  EXPECT_NEAR(silu(x).value()(1), -0.2689414213699951, 1e-15);
  EXPECT_NEAR(softplus(x).value()(0), 1.3132616875182228, 1e-15);
  EXPECT_NEAR(softplus(x).value()(2), 0.6931471805599453, 1e-15);
  EXPECT_NEAR(erf(x).value()(0), 0.8427007929497149, 1e-15);
}

TEST(NewActivations, ValuesAndGradientsMatchFormulasInDouble) {
  auto x = act_inputs<double>();
  const auto n = kActInputs.size();
  auto ge = gelu(x);
  auto gt = gelu(x, true);
  auto si = silu(x);
  auto sp = softplus(x);
  auto sb = softplus(x, 2.0, 5.0);
  auto er = erf(x);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = kActInputs[i];
    const std::string at = "x = " + std::to_string(v);
    // xsimd's erfc is good to about 1e-12 relative in the left tail (1 + erf, as PyTorch
    // computes it, has no correct digit left at x = -9).
    expect_close(ge.value()(i), gelu_ref(v), 1e-12, 1e-300, "gelu " + at);
    // 1 + tanh(u) cancels for u << 0 in any implementation: an absolute bound there.
    expect_close(gt.value()(i), gelu_tanh_ref(v), 1e-14, 1e-15 * (1 + std::abs(v)),
                 "gelu tanh " + at);
    expect_close(si.value()(i), v * sigmoid_ref(v), 1e-14, 1e-300, "silu " + at);
    expect_close(sp.value()(i), softplus_ref(v, 1.0, 20.0), 1e-14, 1e-300, "softplus " + at);
    expect_close(sb.value()(i), softplus_ref(v, 2.0, 5.0), 1e-14, 1e-300, "softplus beta " + at);
    expect_close(er.value()(i), std::erf(v), 1e-14, 1e-300, "erf " + at);
  }
  // Each op's gradient, one at a time.
  auto grad_of = [&](const D2& y) {
    x.zero_grad();
    y.sum().backward();
    return Array<double>(x.grad().value());
  };
  const auto dge = grad_of(ge);
  const auto dsi = grad_of(si);
  const auto dsp = grad_of(sp);
  const auto dsb = grad_of(sb);
  const auto der = grad_of(er);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = kActInputs[i];
    const std::string at = "x = " + std::to_string(v);
    const double s = sigmoid_ref(v);
    expect_close(dge(i), gelu_grad_ref(v), 1e-13, 1e-300, "gelu' " + at);
    expect_close(dsi(i), s * (1 + v * (1 - s)), 1e-13, 1e-300, "silu' " + at);
    expect_close(dsp(i), v > 20 ? 1.0 : s, 1e-13, 1e-300, "softplus' " + at);
    expect_close(dsb(i), 2 * v > 5 ? 1.0 : sigmoid_ref(2 * v), 1e-13, 1e-300,
                 "softplus beta' " + at);
    expect_close(der(i), 2 / std::sqrt(std::numbers::pi) * std::exp(-v * v), 1e-13, 1e-300,
                 "erf' " + at);
  }
  // Above the threshold softplus is x itself, bit for bit.
  EXPECT_EQ(sp.value()(n - 1), 60.0);
  EXPECT_EQ(sp.value()(n - 2), 21.0);
}

TEST(NewActivations, FloatMatchesTheDoubleFormulas) {
  auto x = act_inputs<float>();
  auto ge = gelu(x);
  auto gt = gelu(x, true);
  auto si = silu(x);
  auto sp = softplus(x);
  (ge + gt + si + sp).sum().backward();
  for (std::size_t i = 0; i < kActInputs.size(); ++i) {
    const double v = static_cast<float>(kActInputs[i]);
    const std::string at = "x = " + std::to_string(v);
    const double s = sigmoid_ref(v);
    const double k = std::sqrt(2.0 / std::numbers::pi);
    const double t = std::tanh(k * (v + 0.044715 * v * v * v));
    const double dgt = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v);
    expect_close(ge.value()(i), gelu_ref(v), 1e-5, 1e-30, "gelu " + at);
    expect_close(gt.value()(i), gelu_tanh_ref(v), 1e-6, 1e-6, "gelu tanh " + at);
    expect_close(si.value()(i), v * s, 1e-6, 1e-30, "silu " + at);
    expect_close(sp.value()(i), softplus_ref(v, 1.0, 20.0), 1e-6, 1e-30, "softplus " + at);
    const double dsum = gelu_grad_ref(v) + dgt + s * (1 + v * (1 - s)) + (v > 20 ? 1.0 : s);
    expect_close(x.grad().value()(i), dsum, 1e-5, 1e-6, "sum of derivatives " + at);
  }
}

TEST(NewActivations, FiniteAtExtremes) {
  auto x = D2::from({-1e300, -1e10, -745.0, 745.0, 1e10, 1e300}).requires_grad_();
  auto y = gelu(x) + silu(x) + softplus(x) + softplus(x, 50.0, 1e6);
  EXPECT_TRUE(all_finite(y.value()));
  y.sum().backward();
  EXPECT_TRUE(all_finite(x.grad().value()));
  // softplus never overflows, even when the threshold lets beta x far past exp's range.
  EXPECT_DOUBLE_EQ(softplus(D2::from({800.0}), 1.0, 1e9).item(), 800.0);
  EXPECT_DOUBLE_EQ(softplus(D2::from({-800.0})).item(), 0.0);
  auto f = F2::from({-200.0f, 200.0f}).requires_grad_();
  auto fy = softplus(f, 1.0f, 1e6f) + silu(f) + gelu(f);
  EXPECT_TRUE(std::isfinite(fy.value()(0)) && std::isfinite(fy.value()(1)));
  EXPECT_FLOAT_EQ(fy.value()(1), 600.0f);
  fy.sum().backward();
  EXPECT_TRUE(std::isfinite(f.grad().value()(0)) && std::isfinite(f.grad().value()(1)));
  auto t = D2::from({-1e10, -30.0, 30.0, 1e10}).requires_grad_();
  auto gt = gelu(t, true);
  EXPECT_EQ(gt.value(), (Array<double>{0.0, 0.0, 30.0, 1e10}));
  gt.sum().backward();
  EXPECT_EQ(t.grad().value(), (Array<double>{0.0, 0.0, 1.0, 1.0}));
  // erf squares its argument inside: no NaN once the square overflows.
  EXPECT_EQ(erf(D2::from({-1e300, -1e160, 1e160, 1e300})).value(),
            (Array<double>{-1.0, -1.0, 1.0, 1.0}));
  EXPECT_EQ(erf(F2::from({-1e30f, 1e30f})).value(), (Array<float>{-1.0f, 1.0f}));
  EXPECT_EQ(gelu(F2::from({-1e30f, 1e30f})).value(), (Array<float>{0.0f, 1e30f}));
  EXPECT_TRUE(std::isnan(gelu(D2::from({std::nan("")})).item()));
  EXPECT_TRUE(std::isnan(softplus(D2::from({std::nan("")})).item()));
}

TEST(NewReductions, LogsumexpValues) {
  auto a = D2::from({{1.0, 2.0, 3.0}, {-1.0, 0.5, 0.0}});
  EXPECT_NEAR(logsumexp(D2::from({1.0, 2.0, 3.0}), {0}).item(), 3.4076059644443806, 1e-15);
  auto r = logsumexp(a, {1});
  EXPECT_EQ(r.shape(), (Shape{2}));
  for (std::size_t i = 0; i < 2; ++i) {
    double s = 0;
    for (std::size_t j = 0; j < 3; ++j) s += std::exp(a.value()(i, j));
    EXPECT_NEAR(r.value()(i), std::log(s), 1e-14);
  }
  EXPECT_EQ(a.logsumexp(0, true).shape(), (Shape{1, 3}));
  EXPECT_EQ(logsumexp(a, {0, 1}).dim(), 0u);
  EXPECT_NEAR(logsumexp(a, {}).item(), logsumexp(a.reshape({-1}), {0}).item(), 1e-15);
  // Over several dims: equal to reducing one dim after the other.
  auto b = test::uniform({2, 3, 4}, 5, -3, 3);
  auto two = logsumexp(b, {0, 2});
  auto chained = logsumexp(logsumexp(b, {2}), {0});
  for (std::size_t i = 0; i < 3; ++i) EXPECT_NEAR(two.value()(i), chained.value()(i), 1e-13);
  // Shifted by the max: no overflow at 1000, no underflow to -inf at -1000.
  auto big = logsumexp(D2::from({{1000.0, 1000.0}, {-1000.0, -1000.0}}), {1});
  EXPECT_NEAR(big.value()(0), 1000.0 + std::log(2.0), 1e-12);
  EXPECT_NEAR(big.value()(1), -1000.0 + std::log(2.0), 1e-12);
  auto fbig = logsumexp(F2::from({100.0f, 100.0f, -200.0f}), {0});
  EXPECT_NEAR(fbig.item(), 100.0f + std::log(2.0f), 1e-4f);
  auto f = logsumexp(F2::from({{1.0f, 2.0f, 3.0f}}), {-1});
  EXPECT_NEAR(f.item(), 3.4076059644443806, 1e-6);
}

TEST(NewReductions, LogsumexpInfinitiesNaNAndEmpty) {
  auto x =
      D2::from({{-kInf2, -kInf2, -kInf2}, {1.0, -kInf2, 2.0}, {kInf2, 0.0, 1.0}}).requires_grad_();
  auto r = logsumexp(x, {1});
  EXPECT_EQ(r.value()(0), -kInf2);  // log of a sum of zeros, not NaN
  EXPECT_NEAR(r.value()(1), std::log(std::exp(1.0) + std::exp(2.0)), 1e-14);
  EXPECT_EQ(r.value()(2), kInf2);
  r.index_select(0, {0, 1}).sum().backward();
  const auto& g = x.grad().value();
  // The all -inf row has gradient 0; the others the softmax of their row.
  EXPECT_EQ(g(0, 0), 0.0);
  EXPECT_EQ(g(0, 1), 0.0);
  EXPECT_EQ(g(0, 2), 0.0);
  EXPECT_NEAR(g(1, 0), 1.0 / (1.0 + std::exp(1.0)), 1e-15);
  EXPECT_EQ(g(1, 1), 0.0);
  EXPECT_NEAR(g(1, 2), 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
  EXPECT_TRUE(std::isnan(logsumexp(D2::from({1.0, std::nan(""), 2.0}), {0}).item()));
  // Its second derivative is finite there too.
  auto y = D2::from({{-kInf2, -kInf2}, {0.5, 1.5}}).requires_grad_();
  auto gy = grad({logsumexp(y, {1}).sum()}, {y}, {.create_graph = true})[0];
  EXPECT_EQ(gy.value()(0, 0), 0.0);
  auto h = grad({(gy * D2::from({{1.0, 2.0}, {3.0, -1.0}})).sum()}, {y})[0];
  EXPECT_EQ(h.value()(0, 0), 0.0);
  EXPECT_EQ(h.value()(0, 1), 0.0);
  const double p = 1.0 / (1.0 + std::exp(-1.0));  // softmax of 1.5 against 0.5
  // The Hessian of a row's logsumexp is diag(p) - p p^T, here times (3, -1).
  EXPECT_NEAR(h.value()(1, 0), 4.0 * p * (1 - p), 1e-15);
  EXPECT_NEAR(h.value()(1, 1), -4.0 * p * (1 - p), 1e-15);
  // An empty reduction is a sum of nothing: -inf, as torch.logsumexp.
  auto e = D2::zeros({2, 0}).requires_grad_();
  auto re = logsumexp(e, {1});
  EXPECT_EQ(re.value(), (Array<double>{-kInf2, -kInf2}));
  re.sum().backward();
  EXPECT_EQ(e.grad().value().shape(), (Array<double>::shape_type{2, 0}));
}

TEST(NewReductions, VarAndStdValues) {
  auto a = D2::from({{1.0, 2.0, 3.0, 4.0}, {2.0, 2.0, 2.0, 2.0}});
  EXPECT_EQ(var(D2::from({1.0, 2.0, 3.0, 4.0})).item(), 5.0 / 3.0);
  EXPECT_EQ(var(D2::from({1.0, 2.0, 3.0, 4.0}), {}, 0.0).item(), 1.25);
  EXPECT_NEAR(D2::from({1.0, 2.0, 3.0, 4.0}).std().item(), 1.2909944487358056, 1e-15);
  EXPECT_EQ(a.var(1).value(), (Array<double>{5.0 / 3.0, 0.0}));
  EXPECT_EQ(a.var(1, 0.0, true).value(), D2::from({{1.25}, {0.0}}).value());
  EXPECT_EQ(a.var(0).value(), (Array<double>{0.5, 0.0, 0.5, 2.0}));
  EXPECT_NEAR(std(a, {0, 1}).item(), std::sqrt(0.7857142857142857), 1e-15);  // torch.std(a)
  EXPECT_EQ(std(a, {-1}, 1.0, true).shape(), (Shape{2, 1}));
  EXPECT_EQ(var(a, {0, 1}, 0.0, true).shape(), (Shape{1, 1}));
  EXPECT_EQ(var(D2::scalar(3.0), {}, 0.0).item(), 0.0);
  // A fractional correction divides by N - correction.
  EXPECT_DOUBLE_EQ(var(D2::from({1.0, 2.0, 3.0, 4.0}), {}, 1.5).item(), 5.0 / 2.5);
  // Two passes: exact for a spread far smaller than the mean (one pass loses it all in float).
  auto f = F2::from({10001.0f, 10002.0f, 10003.0f, 10004.0f});
  EXPECT_FLOAT_EQ(f.var().item(), 5.0f / 3.0f);
  EXPECT_FLOAT_EQ(f.std(0, 0.0f).item(), std::sqrt(1.25f));
  auto big = D2::from({1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4});
  EXPECT_DOUBLE_EQ(big.var().item(), 5.0 / 3.0);
}

TEST(NewReductions, VarAndStdGradients) {
  auto x = D2::from({{1.0, 2.0, 4.0}, {3.0, 3.0, 3.0}}).requires_grad_();
  var(x, {1}).sum().backward();
  // d var / d x_i = 2 (x_i - mean) / (N - 1)
  const double m = 7.0 / 3.0;
  EXPECT_NEAR(x.grad().value()(0, 0), (1.0 - m), 1e-15);
  EXPECT_NEAR(x.grad().value()(0, 2), (4.0 - m), 1e-15);
  EXPECT_EQ(x.grad().value()(1, 1), 0.0);
  x.zero_grad();
  std(x, {1}, 0.0).sum().backward();
  const double s = std::sqrt(((1 - m) * (1 - m) + (2 - m) * (2 - m) + (4 - m) * (4 - m)) / 3.0);
  EXPECT_NEAR(x.grad().value()(0, 1), (2.0 - m) / (3.0 * s), 1e-15);
  // A constant row: std 0, gradient 0 (not NaN), as PyTorch.
  EXPECT_EQ(x.grad().value()(1, 0), 0.0);
  EXPECT_EQ(x.grad().value()(1, 2), 0.0);
  auto f = F2::from({1.0f, 2.0f, 4.0f}).requires_grad_();
  f.std().backward();
  const double sf = std::sqrt(((1 - m) * (1 - m) + (2 - m) * (2 - m) + (4 - m) * (4 - m)) / 2.0);
  EXPECT_NEAR(f.grad().value()(2), (4.0 - m) / (2.0 * sf), 1e-6);
}

}  // namespace
}  // namespace xgrad
