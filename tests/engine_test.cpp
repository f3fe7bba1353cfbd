// The engine: graph recording, accumulation, grad mode, retain_graph, functional grad(),
// in-place modification checks, deep graphs, and gradcheck itself.

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using test::expect_error;
using test::run_with_stack;

TEST(Engine, IssueExampleLogisticGradients) {
  auto x = D::randn({4, 3}, /*seed=*/7);
  auto y = D::from({{1.0}, {0.0}, {1.0}, {1.0}});
  auto w = D::full({3, 1}, 0.5).requires_grad_();
  auto b = D::zeros({1}).requires_grad_();
  auto loss = bce_with_logits(x.matmul(w) + b, y).mean();
  loss.backward();
  // Closed form: dL/dz = (sigmoid(z) - y) / N, dL/dw = x^T dL/dz, dL/db = sum(dL/dz).
  const auto& xv = x.value();
  std::vector<double> dz(4);
  double db = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const double z = 0.5 * (xv(i, 0) + xv(i, 1) + xv(i, 2));
    dz[i] = (1 / (1 + std::exp(-z)) - y.value()(i, 0)) / 4;
    db += dz[i];
  }
  ASSERT_EQ(w.grad().value().shape(), (Array<double>::shape_type{3, 1}));
  ASSERT_EQ(b.grad().value().shape(), (Array<double>::shape_type{1}));
  for (std::size_t k = 0; k < 3; ++k) {
    double dw = 0;
    for (std::size_t i = 0; i < 4; ++i) dw += xv(i, k) * dz[i];
    EXPECT_NEAR(w.grad().value()(k, 0), dw, 1e-12);
  }
  EXPECT_NEAR(b.grad().value()(0), db, 1e-12);
  EXPECT_FALSE(x.has_grad());  // x does not require grad: nothing is computed for it

  auto report = testing::gradcheck(
      [&](auto& in) { return (in[0].matmul(in[1]) + in[2]).sigmoid().sum(); }, {x, w, b});
  EXPECT_TRUE(report.ok) << report.summary();
  EXPECT_FALSE(report.inputs[0].checked);
  EXPECT_TRUE(report.inputs[1].checked);
  EXPECT_TRUE(report.inputs[2].checked);
}

TEST(Engine, DiamondAccumulates) {
  auto x = D::from({1.0, -2.0, 3.0}).requires_grad_();
  auto a = x * 3.0;
  auto out = (a * a + a).sum();  // 9x^2 + 3x
  out.backward();
  for (std::size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(x.grad().value()(i), 18 * x.value()(i) + 3);
}

TEST(Engine, SameTensorTwiceInOneOp) {
  auto x = D::from({2.0, -1.0}).requires_grad_();
  (x * x).sum().backward();
  EXPECT_DOUBLE_EQ(x.grad().value()(0), 4.0);
  EXPECT_DOUBLE_EQ(x.grad().value()(1), -2.0);
}

TEST(Engine, GradientsAccumulateAcrossBackwardCallsUntilZeroed) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  (x * 2.0).sum().backward();
  (x * 3.0).sum().backward();
  EXPECT_DOUBLE_EQ(x.grad().value()(0), 5.0);
  x.zero_grad();
  EXPECT_DOUBLE_EQ(x.grad().value()(1), 0.0);
  (x * x).sum().backward();
  EXPECT_DOUBLE_EQ(x.grad().value()(1), 4.0);
  x.clear_grad();
  EXPECT_FALSE(x.has_grad());
}

TEST(Engine, BroadcastInputGetsSummedGradient) {
  auto x = D::ones({3, 4});
  auto b = D::from({{1.0, 2.0, 3.0, 4.0}}).requires_grad_();  // [1,4]
  auto c = D::scalar(2.0).requires_grad_();                   // []
  ((x + b) * c).sum().backward();
  ASSERT_EQ(b.grad().value().shape(), (Array<double>::shape_type{1, 4}));
  for (std::size_t j = 0; j < 4; ++j) EXPECT_DOUBLE_EQ(b.grad().value()(0, j), 6.0);
  EXPECT_EQ(c.grad().value().dimension(), 0u);
  EXPECT_DOUBLE_EQ(c.grad().value()(), 12.0 + 3 * 10.0);
}

TEST(Engine, NoGradGuardRecordsNothingAndNests) {
  auto x = D::ones({2}).requires_grad_();
  EXPECT_TRUE(is_grad_enabled());
  {
    NoGradGuard outer;
    {
      NoGradGuard inner;
      EXPECT_FALSE(is_grad_enabled());
    }
    EXPECT_FALSE(is_grad_enabled());
    auto y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
  }
  EXPECT_TRUE(is_grad_enabled());
  EXPECT_TRUE((x * 2.0).requires_grad());
}

TEST(Engine, DetachStopsGradientAndSharesValue) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  auto y = x * 2.0;
  auto d = y.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(&d.value(), &y.value());  // shared, not copied
  (x * d).sum().backward();           // d is a constant here
  EXPECT_DOUBLE_EQ(x.grad().value()(0), 2.0);
  EXPECT_DOUBLE_EQ(x.grad().value()(1), 4.0);
}

TEST(Engine, RetainGraphAllowsASecondBackwardWithTheSameResult) {
  auto x = D::from({0.5, -1.5}).requires_grad_();
  auto y = (x.exp() * x).sum();
  y.backward({.retain_graph = true});
  const Array<double> first = x.grad().value();
  x.zero_grad();
  y.backward();
  EXPECT_EQ(x.grad().value(), first);
  expect_error<GraphError>([&] { y.backward(); }, {"xgrad::backward", "freed", "retain_graph"});
}

TEST(Engine, SecondBackwardWithoutRetainNamesTheOp) {
  auto x = D::from({1.0}).requires_grad_();
  auto y = x.exp().sum();
  y.backward();
  expect_error<GraphError>([&] { y.backward(); }, {"'sum'", "freed"});
}

TEST(Engine, NonScalarBackwardNeedsAGradient) {
  auto x = D::from({1.0, 2.0, 3.0}).requires_grad_();
  auto y = x * x;
  expect_error<GraphError>([&] { y.backward(); }, {"[3]", "explicit gradient"});
  y.backward(Array<double>{1.0, 0.0, -1.0});
  EXPECT_DOUBLE_EQ(x.grad().value()(0), 2.0);
  EXPECT_DOUBLE_EQ(x.grad().value()(1), 0.0);
  EXPECT_DOUBLE_EQ(x.grad().value()(2), -6.0);
}

TEST(Engine, BackwardOnALeaf) {
  auto x = D::from({4.0}).requires_grad_();
  x.backward();
  EXPECT_DOUBLE_EQ(x.grad().value()(0), 1.0);
}

TEST(Engine, FunctionalGradLeavesGradUntouched) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  auto w = D::from({3.0, -1.0}).requires_grad_();
  auto h = x * w;  // non-leaf input
  auto y = (h * h).sum();
  auto g = grad<double>({y}, {x, h, w, x}, {.retain_graph = true});
  EXPECT_FALSE(x.has_grad());
  EXPECT_FALSE(w.has_grad());
  // dy/dh = 2h, dy/dx = 2 h w, dy/dw = 2 h x
  EXPECT_DOUBLE_EQ(g[0].value()(0), 2 * 3.0 * 3.0);
  EXPECT_DOUBLE_EQ(g[1].value()(1), 2 * -2.0);
  EXPECT_DOUBLE_EQ(g[2].value()(1), 2 * -2.0 * 2.0);
  EXPECT_EQ(g[3].value(), g[0].value());
  auto unused = D::ones({2}).requires_grad_();
  expect_error<GraphError>([&] { grad<double>({y}, {unused}, {.retain_graph = true}); },
                           {"xgrad::grad", "not reachable", "[2]"});
  auto z = grad<double>({y}, {unused}, {.allow_unused = true});
  EXPECT_EQ(z[0].value(), (Array<double>{0.0, 0.0}));
}

TEST(Engine, GradientsOnlyForInputsThatNeedThem) {
  std::vector<bool> asked;
  auto a = D::ones({2});
  auto b = D::ones({2}).requires_grad_();
  auto out = record<double>("probe", Array<double>(a.value() * b.value()), {a, b},
                            [&asked](const Tensor<double>& grad, Grads<double>& g) {
                              asked = {g.needs(0), g.needs(1)};
                              g.to(0, grad);
                              g.to(1, grad);
                            });
  out.sum().backward();
  EXPECT_EQ(asked, (std::vector<bool>{false, true}));
  EXPECT_FALSE(a.has_grad());
  EXPECT_TRUE(b.has_grad());
  // Nothing that requires grad: no node at all.
  auto c = a * 2.0;
  EXPECT_TRUE(c.is_leaf());
  EXPECT_FALSE(c.requires_grad());
}

TEST(Engine, ModifyingASavedValueIsReportedWithTheOp) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  auto y = (x.exp()).sum();  // exp saves its output, mul its inputs
  auto w = D::from({1.0, 1.0});
  auto z = (x * w).sum();
  w.mutable_value()(0) = 5.0;
  expect_error<GraphError>([&] { z.backward(); }, {"'mul'", "modified in place", "[2]"});
  // An op that does not read the changed value is unaffected.
  auto u = (x + w).sum();
  w.mutable_value()(1) = 7.0;
  u.backward();
  EXPECT_DOUBLE_EQ(x.grad().value()(0), 1.0);
  y.backward();
}

TEST(Engine, GradcheckCatchesAWrongGradient) {
  auto wrong_square = [](const D& x) {
    return record<double>("wrong_square", Array<double>(x.value() * x.value()), {x},
                          [](const Tensor<double>& grad, Grads<double>& g) {
                            g.to(0, grad * g.in(0) * 3.0);  // should be 2
                          });
  };
  auto report = testing::gradcheck([&](auto& in) { return wrong_square(in[0]).sum(); },
                                   {test::uniform({3}, 1)});
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.summary().find("MISMATCH"), std::string::npos);
  EXPECT_NEAR(report.inputs[0].analytic, 1.5 * report.inputs[0].numeric, 1e-6);
}

TEST(Engine, CustomOpBroadcastGradientIsShapeChecked) {
  auto x = D::ones({3}).requires_grad_();
  auto y = record<double>("bad_op", Array<double>(x.value()), {x},
                          [](const Tensor<double>&, Grads<double>& g) {
                            g.to(0, Array<double>(Shape{2, 5}, 1.0));
                          });
  expect_error<ShapeError>([&] { y.sum().backward(); }, {"'bad_op'", "[2,5]", "[3]"});
}

TEST(Engine, CustomOpMisuseIsReportedByName) {
  auto x = D::ones({2}).requires_grad_();
  auto y = record<double>("one_input", Array<double>(x.value()), {x},
                          [](const Tensor<double>& grad, Grads<double>& g) { g.to(1, grad); });
  expect_error<GraphError>([&] { y.sum().backward(); }, {"'one_input'", "input 1", "1 input"});
  expect_error<GraphError>([&] { record<double>("no_backward", Array<double>{1.0}, {x}, nullptr); },
                           {"xgrad::record", "'no_backward'"});
}

TEST(Engine, InputReplacedWithAnotherShapeIsReported) {
  auto x = D::ones({3}).requires_grad_();
  auto b = D::ones({3}).requires_grad_();
  auto y = (x + b).sum();
  b.mutable_value() = Array<double>(Shape{1}, 5.0);
  expect_error<GraphError>([&] { y.backward(); }, {"'add'", "[3]", "[1]", "in place"});
}

constexpr std::size_t kChain = 1000000;

TEST(Engine, MillionNodeChainBackpropagatesAndFreesOnAnEightMiBStack) {
  run_with_stack(8u << 20, [] {
    const std::size_t start = live_nodes();
    {
      auto x = D::from({1.0}).requires_grad_();
      D y = x;
      for (std::size_t i = 0; i < kChain; ++i) y = y + 1.0;
      y.sum().backward();
      EXPECT_DOUBLE_EQ(x.grad().value()(0), 1.0);
      EXPECT_DOUBLE_EQ(y.item(), 1.0 + kChain);
    }
    EXPECT_EQ(live_nodes(), start);
  });
}

// The two below run on a 256 KiB stack: teardown and the sweep must not grow the stack with the
// depth of the graph.
TEST(Engine, MillionNodeChainIsFreedWithoutBackwardOnA256KiBStack) {
  run_with_stack(256u << 10, [] {
    const std::size_t start = live_nodes();
    auto x = D::from({1.0}).requires_grad_();
    D y = x;
    for (std::size_t i = 0; i < kChain; ++i) y = y * 1.0;
    EXPECT_EQ(live_nodes(), start + kChain);
    y = D();  // the whole chain dies here
    EXPECT_EQ(live_nodes(), start);
    EXPECT_TRUE(x.requires_grad());
  });
}

TEST(Engine, RetainedMillionNodeChainIsFreedAfterBackwardOnA256KiBStack) {
  run_with_stack(256u << 10, [] {
    const std::size_t start = live_nodes();
    {
      auto x = D::from({2.0}).requires_grad_();
      D y = x;
      for (std::size_t i = 0; i < kChain; ++i) y = y - 1.0;
      y.backward({.retain_graph = true});
      EXPECT_DOUBLE_EQ(x.grad().value()(0), 1.0);
    }
    EXPECT_EQ(live_nodes(), start);
  });
}

}  // namespace
}  // namespace xgrad
