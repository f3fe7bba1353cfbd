// Optimisers against torch.optim's update formulas worked by hand, convergence on problems with
// known minima, the error cases, schedulers, gradient clipping and a whole training loop.

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <xgrad/optim/optim.hpp>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using F = Tensor<float>;
using test::expect_error;
using namespace xgrad::optim;

std::vector<double> values(const D& t) {
  return {t.value().begin(), t.value().end()};
}

/// One training round on loss = sum(p^2), whose gradient is 2p.
template <class V>
void square_round(Optimizer<V>& opt, Tensor<V>& p) {
  opt.zero_grad();
  (p * p).sum().backward();
  opt.step();
}

D param(std::initializer_list<NestedList<double>> v) {
  auto p = D::from(v);
  p.requires_grad_();
  return p;
}

// ---- one or two steps against the formulas ----

TEST(Optim, SgdPlainStep) {
  auto p = param({1.0, -2.0, 0.5});
  SGD<double> opt({p}, {.lr = 0.1});
  square_round(opt, p);
  // p - lr * 2p = 0.8 p
  EXPECT_EQ(values(p), (std::vector<double>{1 - 0.1 * 2, -2 - 0.1 * -4, 0.5 - 0.1 * 1}));
}

TEST(Optim, SgdMomentumDampeningWeightDecayTwoSteps) {
  const std::vector<double> p0 = {1.0, -2.0, 0.5};
  auto p = param({1.0, -2.0, 0.5});
  SGD<double> opt({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
  square_round(opt, p);
  square_round(opt, p);
  for (std::size_t k = 0; k < 3; ++k) {
    // The buffer starts at the first gradient, undampened; later ones are dampened.
    const double d1 = 2 * p0[k] + 0.01 * p0[k];
    const double b1 = d1;
    const double p1 = p0[k] - 0.1 * b1;
    const double d2 = 2 * p1 + 0.01 * p1;
    const double b2 = 0.9 * b1 + (1 - 0.1) * d2;
    const double p2 = p1 - 0.1 * b2;
    EXPECT_NEAR(p.value()(k), p2, 1e-15) << k;
  }
  EXPECT_NEAR(p.value()(0), 0.4735609, 1e-12);
}

TEST(Optim, SgdNesterovTwoSteps) {
  auto p = param({1.0, -3.0});
  SGD<double> opt({p}, {.lr = 0.1, .momentum = 0.5, .nesterov = true});
  square_round(opt, p);
  // g = 2, buf = 2, step = g + 0.5 buf = 3: p = 0.7
  EXPECT_NEAR(p.value()(0), 0.7, 1e-15);
  square_round(opt, p);
  // g = 1.4, buf = 0.5 * 2 + 1.4 = 2.4, step = 1.4 + 1.2 = 2.6: p = 0.44
  EXPECT_NEAR(p.value()(0), 0.44, 1e-15);
  EXPECT_NEAR(p.value()(1), -3 * 0.44, 1e-14);
}

/// Two Adam steps on sum(p^2) by torch's single-tensor formula; decoupled picks AdamW's decay.
std::vector<double> adam_by_hand(std::vector<double> p, double lr, double wd, bool decoupled) {
  const double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<double> m(p.size(), 0.0), v(p.size(), 0.0);
  for (int t = 1; t <= 2; ++t) {
    for (std::size_t k = 0; k < p.size(); ++k) {
      double g = 2 * p[k];
      if (decoupled) {
        p[k] *= 1 - lr * wd;
      } else {
        g += wd * p[k];
      }
      m[k] = beta1 * m[k] + (1 - beta1) * g;
      v[k] = beta2 * v[k] + (1 - beta2) * g * g;
      const double step_size = lr / (1 - std::pow(beta1, t));
      const double denom = std::sqrt(v[k]) / std::sqrt(1 - std::pow(beta2, t)) + eps;
      p[k] -= step_size * m[k] / denom;
    }
  }
  return p;
}

TEST(Optim, AdamTwoSteps) {
  auto p = param({1.0, -2.0, 0.5});
  Adam<double> opt({p}, {.lr = 0.1});
  square_round(opt, p);
  // The first Adam step moves every element by lr * sign(g), up to eps.
  EXPECT_NEAR(p.value()(0), 0.9, 1e-8);
  EXPECT_NEAR(p.value()(1), -1.9, 1e-8);
  square_round(opt, p);
  const auto expected = adam_by_hand({1.0, -2.0, 0.5}, 0.1, 0, false);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_NEAR(p.value()(k), expected[k], 1e-14) << k;
  EXPECT_EQ(opt.step_count(0), 2);
}

TEST(Optim, AdamWeightDecayIsL2Penalty) {
  auto p = param({1.0, -2.0, 0.5});
  Adam<double> opt({p}, {.lr = 0.1, .weight_decay = 0.5});
  square_round(opt, p);
  square_round(opt, p);
  const auto expected = adam_by_hand({1.0, -2.0, 0.5}, 0.1, 0.5, false);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_NEAR(p.value()(k), expected[k], 1e-14) << k;
}

TEST(Optim, AdamWDecoupledDecayTwoSteps) {
  auto p = param({1.0, -2.0, 0.5});
  AdamW<double> opt({p}, {.lr = 0.1, .weight_decay = 0.5});
  square_round(opt, p);
  // p * (1 - 0.05) then the Adam move of lr * sign(g)
  EXPECT_NEAR(p.value()(0), 0.95 - 0.1, 1e-8);
  square_round(opt, p);
  const auto expected = adam_by_hand({1.0, -2.0, 0.5}, 0.1, 0.5, true);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_NEAR(p.value()(k), expected[k], 1e-14) << k;
  // AdamW's default decay is torch's 1e-2, Adam's is 0.
  EXPECT_EQ(AdamWOptions{}.weight_decay, 1e-2);
  EXPECT_EQ(AdamOptions{}.weight_decay, 0.0);
}

TEST(Optim, FloatParametersFollowTheDoubleFormulas) {
  auto pf = F::from({1.0f, -2.0f, 0.5f});
  pf.requires_grad_();
  auto qf = F::from({1.0f, -2.0f, 0.5f});
  qf.requires_grad_();
  SGD<float> sgd({pf}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
  AdamW<float> adamw({qf}, {.lr = 0.1, .weight_decay = 0.5});
  for (int i = 0; i < 2; ++i) {
    square_round(sgd, pf);
    square_round(adamw, qf);
  }
  EXPECT_NEAR(pf.value()(0), 0.4735609, 1e-6);
  const auto expected = adam_by_hand({1.0, -2.0, 0.5}, 0.1, 0.5, true);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_NEAR(qf.value()(k), expected[k], 1e-6) << k;
}

TEST(Optim, LbfgsTwoIterationsByHand) {
  // f = 0.5 p^2 from p = 3. Iteration 1: d = -g = -3, t = min(1, 1/|g|_1) = 1/3, and the first
  // trial point p = 2 already meets strong Wolfe (f drops 4.5 -> 2, |f'(2) d| = 6 <= 0.9 * 9).
  // Iteration 2: s = -1, y = -1, so H = s/y = 1 and d = -2 with t = lr = 1: p = 0 exactly.
  for (int max_iter : {1, 2}) {
    auto p = param({3.0});
    // max_eval left at max_iter * 5 / 4 would stop max_iter 2 after one iteration, as in torch.
    LBFGS<double> opt({p}, {.max_iter = max_iter, .max_eval = 10});
    const double loss = opt.step([&] {
      opt.zero_grad();
      auto l = (p * p).sum() * 0.5;
      l.backward();
      return l;
    });
    EXPECT_EQ(p.value()(0), max_iter == 1 ? 2.0 : 0.0);
    EXPECT_EQ(loss, max_iter == 1 ? 2.0 : 0.0);
    EXPECT_EQ(opt.n_iter(), max_iter);
    EXPECT_EQ(opt.func_evals(), 1 + max_iter);
  }
}

// ---- convergence on 0.5 ||A x - b||^2 with A x* = b, x* = (1, -2, 0.5) ----

template <class V>
struct LeastSquares {
  Tensor<V> a = Tensor<V>::from({{2, 1, 0}, {1, 3, 1}, {0, 1, 2}, {1, 0, 1}});
  Tensor<V> b = Tensor<V>::from({{0}, {-4.5}, {-1}, {1.5}});
  Tensor<V> x = Tensor<V>::zeros({3, 1}).requires_grad_();
  Tensor<V> loss() const {
    auto r = a.matmul(x) - b;
    return (r * r).sum() * V(0.5);
  }
  double error() const {
    const double want[] = {1, -2, 0.5};
    double e = 0;
    for (std::size_t k = 0; k < 3; ++k) e = std::max(e, std::abs(x.value()(k, 0) - want[k]));
    return e;
  }
};

template <class V>
double train(Optimizer<V>& opt, const LeastSquares<V>& problem, int steps) {
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    problem.loss().backward();
    opt.step();
  }
  return problem.error();
}

TEST(Optim, SgdMomentumSolvesLeastSquares) {
  LeastSquares<double> ls;
  SGD<double> opt({ls.x}, {.lr = 0.05, .momentum = 0.9});
  EXPECT_LT(train(opt, ls, 300), 1e-3);
}

TEST(Optim, AdamSolvesLeastSquares) {
  LeastSquares<double> ls;
  Adam<double> opt({ls.x}, {.lr = 0.05});
  EXPECT_LT(train(opt, ls, 300), 1e-3);
  LeastSquares<float> lsf;
  AdamW<float> optf({lsf.x}, {.lr = 0.05, .weight_decay = 0});
  EXPECT_LT(train(optf, lsf, 300), 1e-3);
}

TEST(Optim, LbfgsSolvesLeastSquares) {
  LeastSquares<double> ls;
  LBFGS<double> opt({ls.x});
  const double loss = opt.step([&] {
    opt.zero_grad();
    auto l = ls.loss();
    l.backward();
    return l;
  });
  EXPECT_LT(ls.error(), 1e-6);
  EXPECT_LT(loss, 1e-12);
  EXPECT_EQ(loss, ls.loss().item());  // the loss at the parameters left in place
  EXPECT_LT(opt.n_iter(), 20);        // stopped by tolerance_grad, not by max_iter

  // Float parameters: the search runs in double on float evaluations.
  LeastSquares<float> lsf;
  LBFGS<float> optf({lsf.x});
  for (int i = 0; i < 3; ++i) {
    optf.step([&] {
      optf.zero_grad();
      auto l = lsf.loss();
      l.backward();
      return l;
    });
  }
  EXPECT_LT(lsf.error(), 1e-4);
}

TEST(Optim, LbfgsRosenbrock) {
  auto x = param({-1.5});
  auto y = param({2.0});
  LBFGS<double> opt({x, y}, {.max_iter = 100});
  const auto closure = [&] {
    opt.zero_grad();
    auto l = ((1.0 - x).pow(2) + 100.0 * (y - x * x).pow(2)).sum();
    l.backward();
    return l;
  };
  int steps = 0;
  while (steps < 5 && (std::abs(x.value()(0) - 1) > 1e-5 || std::abs(y.value()(0) - 1) > 1e-5)) {
    opt.step(closure);
    ++steps;
  }
  EXPECT_NEAR(x.value()(0), 1.0, 1e-5);
  EXPECT_NEAR(y.value()(0), 1.0, 1e-5);
  EXPECT_LE(steps, 2);
}

TEST(Optim, LbfgsKeepsLastGoodPointWhenTheLossTurnsNan) {
  // The loss is (p - 10)^2 but undefined beyond p = 3, so the search toward 10 must fail there.
  auto p = param({0.0});
  LBFGS<double> opt({p});
  const auto closure = [&] {
    opt.zero_grad();
    if (p.value()(0) > 3) return D::scalar(std::numeric_limits<double>::quiet_NaN());
    auto l = ((p - 10.0) * (p - 10.0)).sum();
    l.backward();
    return l;
  };
  const double loss = opt.step(closure);
  const double at = p.value()(0);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_GT(at, 0.0);
  EXPECT_LE(at, 3.0);
  EXPECT_EQ(loss, (at - 10) * (at - 10));
  EXPECT_EQ(p.grad().value()(0), 2 * (at - 10));  // gradients match the point left in place
}

TEST(Optim, LbfgsRestoresParametersWhenTheClosureThrows) {
  auto p = param({3.0});
  LBFGS<double> opt({p});
  int calls = 0;
  expect_error<ShapeError>(
      [&] {
        opt.step([&] {
          opt.zero_grad();
          if (++calls == 2) D::ones({2}) + D::ones({3});
          auto l = (p * p).sum();
          l.backward();
          return l;
        });
      },
      {"xgrad::add", "[2]", "[3]"});
  EXPECT_EQ(p.value()(0), 3.0);
}

// ---- error cases ----

TEST(Optim, ConstructorErrors) {
  auto p = param({1.0});
  expect_error<ValueError>([] { SGD<double>({}, {.lr = 0.1}); },
                           {"xgrad::SGD: no parameters to optimise"});
  expect_error<ValueError>([] { Adam<double>({}); }, {"xgrad::Adam: no parameters to optimise"});
  expect_error<ValueError>([] { LBFGS<double>({}); }, {"xgrad::LBFGS: no parameters"});
  expect_error<ValueError>(
      [] {
        SGD<double>({D::ones({2, 3})}, {.lr = 0.1});
      },
      {"xgrad::SGD", "parameter 0", "[2,3]", "does not require grad"});
  expect_error<ValueError>(
      [&] {
        SGD<double>({p, p * 2.0}, {.lr = 0.1});
      },
      {"xgrad::SGD", "parameter 1", "not a leaf", "mul"});
  expect_error<ValueError>(
      [&] {
        Adam<double>({p, p});
      },
      {"xgrad::Adam", "parameter 1", "same tensor as parameter 0"});
  expect_error<ValueError>([] { SGD<double>({D()}, {.lr = 0.1}); },
                           {"xgrad::SGD", "parameter 0", "undefined"});

  expect_error<ValueError>([&] { SGD<double>({p}, {}); },
                           {"xgrad::SGD", "learning rate", "> 0", "got 0"});
  expect_error<ValueError>([&] { SGD<double>({p}, {.lr = -0.1}); }, {"got -0.1"});
  expect_error<ValueError>([&] { Adam<double>({p}, {.lr = std::nan("")}); },
                           {"xgrad::Adam", "learning rate", "nan"});
  expect_error<ValueError>([&] { SGD<double>({p}, {.lr = 0.1, .momentum = -0.5}); },
                           {"xgrad::SGD", "momentum", "-0.5"});
  expect_error<ValueError>([&] { SGD<double>({p}, {.lr = 0.1, .weight_decay = -1}); },
                           {"weight_decay", "-1"});
  expect_error<ValueError>([&] { SGD<double>({p}, {.lr = 0.1, .nesterov = true}); },
                           {"xgrad::SGD", "Nesterov", "momentum > 0", "dampening == 0"});
  expect_error<ValueError>(
      [&] { SGD<double>({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
      {"Nesterov", "dampening 0.1"});

  expect_error<ValueError>([&] { Adam<double>({p}, {.beta1 = 1.0}); },
                           {"xgrad::Adam", "beta1", "[0, 1)", "got 1"});
  expect_error<ValueError>([&] { AdamW<double>({p}, {.beta2 = -0.1}); },
                           {"xgrad::AdamW", "beta2", "-0.1"});
  expect_error<ValueError>([&] { Adam<double>({p}, {.eps = -1e-8}); }, {"eps", "-1e-08"});
  expect_error<ValueError>([&] { AdamW<double>({p}, {.weight_decay = -1}); },
                           {"xgrad::AdamW", "weight_decay"});

  expect_error<ValueError>([&] { LBFGS<double>({p}, {.lr = 0}); }, {"xgrad::LBFGS", "learning"});
  expect_error<ValueError>([&] { LBFGS<double>({p}, {.max_iter = 0}); },
                           {"xgrad::LBFGS", "max_iter", ">= 1", "got 0"});
  expect_error<ValueError>([&] { LBFGS<double>({p}, {.max_eval = 0}); }, {"max_eval"});
  expect_error<ValueError>([&] { LBFGS<double>({p}, {.history_size = 0}); }, {"history_size"});
  expect_error<ValueError>([&] { LBFGS<double>({p}, {.tolerance_grad = -1}); }, {"tolerance_grad"});

  SGD<double> opt({p}, {.lr = 0.1});
  expect_error<ValueError>([&] { opt.set_lr(-1); }, {"xgrad::SGD", "learning rate", "-1"});
  opt.set_lr(0);  // schedulers may reach 0
  EXPECT_EQ(opt.lr(), 0.0);
}

TEST(Optim, LbfgsClosureErrors) {
  auto p = param({1.0, 2.0});
  LBFGS<double> opt({p});
  expect_error<ValueError>([&] { opt.step(); }, {"xgrad::LBFGS", "needs a closure"});
  expect_error<ValueError>([&] { opt.step(LBFGS<double>::Closure()); }, {"empty closure"});
  expect_error<ValueError>([&] { opt.step([] { return D(); }); }, {"undefined tensor"});
  expect_error<ValueError>(
      [&] {
        opt.step([&] {
          opt.zero_grad();
          auto l = p * p;
          l.sum().backward();
          return l;
        });
      },
      {"one-element loss", "[2]"});
  expect_error<ValueError>(
      [&] { opt.step([] { return D::scalar(std::numeric_limits<double>::infinity()); }); },
      {"non-finite loss", "inf", "starting point"});
  expect_error<ValueError>(
      [&] {
        opt.step([&] {
          opt.zero_grad();
          auto l = (p - 1.0).sqrt().sum();  // infinite slope at p = 1
          l.backward();
          return l;
        });
      },
      {"gradient of parameter 0", "not finite"});
  EXPECT_EQ(values(p), (std::vector<double>{1.0, 2.0}));
}

TEST(Optim, StateSizeAndGradShapeChecks) {
  auto p = param({1.0, 2.0});
  Adam<double> opt({p});
  square_round(opt, p);
  p.mutable_value() = Array<double>(Shape{3}, 1.0);
  p.mutable_grad() = Array<double>(Shape{3}, 1.0);
  expect_error<ValueError>([&] { opt.step(); },
                           {"xgrad::Adam", "parameter 0 now has 3 elements", "built for 2"});
  p.mutable_grad() = Array<double>(Shape{4}, 1.0);
  expect_error<ShapeError>([&] { opt.step(); },
                           {"xgrad::Adam", "value shape [3]", "gradient shape [4]"});
}

// ---- parameters without a gradient ----

TEST(Optim, ParameterWithoutGradIsLeftUntouched) {
  auto used = param({1.0});
  auto unused = param({5.0});
  SGD<double> sgd({used, unused}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
  Adam<double> adam({used, unused}, {.lr = 0.1, .weight_decay = 0.1});
  LBFGS<double> lbfgs({used, unused}, {.max_iter = 3});
  const auto before = unused.version();
  for (int i = 0; i < 3; ++i) {
    square_round(sgd, used);
    square_round(adam, used);
  }
  EXPECT_FALSE(unused.has_grad());
  EXPECT_EQ(unused.value()(0), 5.0);
  EXPECT_EQ(unused.version(), before);  // not even written
  EXPECT_EQ(adam.step_count(1), 0);
  EXPECT_NE(used.value()(0), 1.0);

  // A gradient dropped by zero_grad(set_to_none) stops the updates again, momentum included.
  used.clear_grad();
  unused.mutable_value()(0) = 5.0;
  (unused * unused).sum().backward();
  sgd.step();
  const double moved_used = used.value()(0);
  sgd.zero_grad(/*set_to_none=*/true);
  EXPECT_FALSE(unused.has_grad());
  const double moved_unused = unused.value()(0);
  sgd.step();
  EXPECT_EQ(used.value()(0), moved_used);
  EXPECT_EQ(unused.value()(0), moved_unused);

  // L-BFGS counts a missing gradient as zero, which leaves that coordinate where it is.
  lbfgs.step([&] {
    lbfgs.zero_grad(true);
    auto l = ((used - 2.0) * (used - 2.0)).sum();
    l.backward();
    return l;
  });
  EXPECT_EQ(unused.value()(0), moved_unused);
  EXPECT_NEAR(used.value()(0), 2.0, 1e-9);
}

// ---- schedulers ----

TEST(Optim, StepLRFollowsClosedForm) {
  auto p = param({1.0});
  SGD<double> opt({p}, {.lr = 0.8});
  StepLR<double> sched(opt, 3, 0.5);
  EXPECT_EQ(sched.get_last_lr(), 0.8);
  for (int epoch = 1; epoch <= 10; ++epoch) {
    sched.step();
    const double want = 0.8 * std::pow(0.5, epoch / 3);
    EXPECT_EQ(sched.get_last_lr(), want) << epoch;
    EXPECT_EQ(opt.lr(), want) << epoch;
  }
  EXPECT_EQ(sched.last_epoch(), 10);
  EXPECT_EQ(opt.lr(), 0.8 / 8);
  expect_error<ValueError>([&] { StepLR<double>(opt, 0); }, {"xgrad::StepLR", "step_size", "0"});
  expect_error<ValueError>([&] { StepLR<double>(opt, 2, -1); }, {"xgrad::StepLR", "gamma"});
}

TEST(Optim, CosineAnnealingLRFollowsClosedForm) {
  auto p = F::ones({2});
  p.requires_grad_();
  Adam<float> opt({p}, {.lr = 0.1});
  CosineAnnealingLR<float> sched(opt, 10, 0.01);
  EXPECT_EQ(opt.lr(), 0.1);
  for (int epoch = 1; epoch <= 20; ++epoch) {
    sched.step();
    const double want = 0.01 + (0.1 - 0.01) * (1 + std::cos(std::numbers::pi * epoch / 10)) / 2;
    EXPECT_NEAR(sched.get_last_lr(), want, 1e-15) << epoch;
    EXPECT_EQ(opt.lr(), sched.get_last_lr());
  }
  // Back at the start of the next period after 2 T_max, the bottom at T_max.
  EXPECT_NEAR(opt.lr(), 0.1, 1e-15);
  CosineAnnealingLR<float> to_zero(opt, 4);
  for (int i = 0; i < 4; ++i) to_zero.step();
  EXPECT_NEAR(opt.lr(), 0.0, 1e-15);
  expect_error<ValueError>([&] { CosineAnnealingLR<float>(opt, 0); },
                           {"xgrad::CosineAnnealingLR", "T_max", "0"});
  expect_error<ValueError>([&] { CosineAnnealingLR<float>(opt, 5, -0.1); }, {"eta_min", "-0.1"});
}

// ---- gradient clipping ----

TEST(Optim, ClipGradNormScalesByTotalNorm) {
  auto a = param({3.0, -4.0});
  auto b = param({12.0});
  auto none = param({100.0});
  const auto set_grads = [&] {
    a.mutable_value() = Array<double>{3.0, -4.0};
    b.mutable_value() = Array<double>{12.0};
    a.clear_grad();
    b.clear_grad();
    (a * a * 0.5).sum().backward();  // grad = value
    (b * b * 0.5).sum().backward();
  };
  set_grads();
  EXPECT_EQ(clip_grad_norm_<double>({a, b, none}, 6.5), 13.0);  // sqrt(9 + 16 + 144)
  const double c = 6.5 / (13 + 1e-6);
  EXPECT_NEAR(a.grad().value()(0), 3 * c, 1e-15);
  EXPECT_NEAR(a.grad().value()(1), -4 * c, 1e-15);
  EXPECT_NEAR(b.grad().value()(0), 12 * c, 1e-15);
  EXPECT_FALSE(none.has_grad());

  set_grads();
  EXPECT_EQ(clip_grad_norm_<double>({a, b}, 100), 13.0);  // under max_norm: unchanged
  EXPECT_EQ(a.grad().value()(1), -4.0);
  EXPECT_EQ(clip_grad_norm_<double>({a, b}, 1, std::numeric_limits<double>::infinity()), 12.0);
  EXPECT_NEAR(b.grad().value()(0), 12 / (12 + 1e-6), 1e-15);
  set_grads();
  EXPECT_EQ(clip_grad_norm_<double>({a, b}, 100, 1), 19.0);
  EXPECT_NEAR(clip_grad_norm_<double>({a, b}, 100, 3), std::cbrt(27 + 64 + 1728), 1e-12);
  EXPECT_EQ(clip_grad_norm_<double>({none}, 1), 0.0);

  auto f = F::from({3.0f, 4.0f});
  f.requires_grad_();
  (f * f * 0.5f).sum().backward();
  EXPECT_EQ(clip_grad_norm_<float>({f}, 1), 5.0f);
  EXPECT_NEAR(f.grad().value()(1), 0.8f, 1e-6f);
}

TEST(Optim, ClipGradNormErrors) {
  auto a = param({1.0, 4.0});
  a.sqrt().sum().backward();
  a.mutable_grad()(0) = std::nan("");
  for (double norm_type : {2.0, 1.0, std::numeric_limits<double>::infinity()}) {
    expect_error<ValueError>([&] { clip_grad_norm_<double>({a}, 1, norm_type); },
                             {"xgrad::clip_grad_norm_", "non-finite", "nan", "parameter 0"});
  }
  EXPECT_TRUE(std::isnan(a.grad().value()(0)));
  EXPECT_EQ(a.grad().value()(1), 0.25);  // left unchanged
  a.mutable_grad()(0) = 1e300;
  expect_error<ValueError>([&] { clip_grad_norm_<double>({a}, 1); },
                           {"total norm of order 2", "inf"});
  expect_error<ValueError>([&] { clip_grad_norm_<double>({a}, -1); }, {"max_norm", "-1"});
  expect_error<ValueError>([&] { clip_grad_norm_<double>({a}, 1, 0); }, {"norm_type", "got 0"});
}

// ---- a whole model ----

TEST(Optim, LogisticRegressionBySgdSeparatesTheData) {
  const auto x = D::from({{2, 1},
                          {1, 2},
                          {3, 3},
                          {2.5, 0.5},
                          {0.5, 0.8},  // class 1
                          {-1, -2},
                          {-2, -1},
                          {-3, -2},
                          {-0.5, -2},
                          {-0.2, -0.6}});
  const auto y = D::from({{1}, {1}, {1}, {1}, {1}, {0}, {0}, {0}, {0}, {0}});
  auto w = D::zeros({2, 1}).requires_grad_();
  auto b = D::zeros({1}).requires_grad_();
  SGD<double> opt({w, b}, {.lr = 0.5, .momentum = 0.5});
  StepLR<double> sched(opt, 50, 0.5);
  double first = 0, last = 0;
  for (int epoch = 0; epoch < 100; ++epoch) {
    opt.zero_grad();
    auto loss = bce_with_logits(x.matmul(w) + b, y);
    loss.backward();
    clip_grad_norm_<double>({w, b}, 5);
    opt.step();
    sched.step();
    (epoch == 0 ? first : last) = loss.item();
  }
  EXPECT_LT(last, 0.1 * first);
  const auto logits = x.matmul(w) + b;
  int correct = 0;
  for (std::size_t i = 0; i < 10; ++i)
    correct += (logits.value()(i, 0) > 0) == (y.value()(i, 0) == 1);
  EXPECT_EQ(correct, 10);
}

}  // namespace
}  // namespace xgrad
