// Anomaly mode: the first NaN or infinite gradient of a backward pass is reported with the op
// that produced it and where that op was called from; and the live-node counter.

#include <thread>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using test::expect_error;

// A custom op whose backward multiplies the gradient by `factor` (NaN or inf on demand). Being
// recorded here, it is located on the line where its name converts to an OpName (the line of the
// call too for GCC, which places a default argument's source_location there; clang places it
// at the argument).
D scaled(const D& x, double factor, int& line) {
  const auto backward = [factor](const Tensor<double>& grad, Grads<double>& g) {
    g.to(0, grad * factor);
  };
  line = __LINE__ + 1;
  return record<double>("scaled", Array<double>(x.value()), {x}, backward, Saves::none());
}

TEST(Anomaly, OffByDefaultScopedAndThreadLocal) {
  EXPECT_FALSE(is_anomaly_enabled());
  {
    AnomalyGuard on;
    EXPECT_TRUE(is_anomaly_enabled());
    bool other_thread = true;
    std::thread([&] { other_thread = is_anomaly_enabled(); }).join();
    EXPECT_FALSE(other_thread);
    {
      AnomalyGuard off(false);
      EXPECT_FALSE(is_anomaly_enabled());
    }
    EXPECT_TRUE(is_anomaly_enabled());
  }
  EXPECT_FALSE(is_anomaly_enabled());
}

TEST(Anomaly, CustomOpIsReportedWithTheLineThatRecordedIt) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  int line = 0;
  AnomalyGuard anomaly;
  auto y = scaled(x, std::numeric_limits<double>::infinity(), line);
  EXPECT_EQ(y.impl()->grad_fn->where().line(), static_cast<unsigned>(line));
  const std::string at = "anomaly_test.cpp:" + std::to_string(line);
  expect_error<AnomalyError>([&] { (y * 2.0).sum().backward(); },
                             {"xgrad::backward", "anomaly", "'scaled'", at, "inf", "input 0"});
  EXPECT_FALSE(x.has_grad());  // the faulty gradient never reached the leaf
}

TEST(Anomaly, NaNIsReportedAndOffModeLetsItThrough) {
  int line = 0;
  auto x = D::from({1.0, 2.0}).requires_grad_();
  {
    auto y = scaled(x, std::nan(""), line).sum();  // recorded with anomaly mode off
    AnomalyGuard anomaly;
    expect_error<AnomalyError>([&] { y.backward(); }, {"'scaled'", "NaN", "unknown place"});
  }
  scaled(x, std::nan(""), line).sum().backward();  // off: no check, the NaN arrives
  EXPECT_TRUE(std::isnan(x.grad().value()(0)));
}

TEST(Anomaly, FiniteGradientsPassUntouched) {
  auto x = D::from({0.5, -1.5}).requires_grad_();
  (x.exp() * x).sum().backward();
  const Array<double> off = x.grad().value();
  x.clear_grad();
  {
    AnomalyGuard anomaly;
    (x.exp() * x).sum().backward();
  }
  EXPECT_EQ(x.grad().value(), off);
}

TEST(Anomaly, NonFiniteSeedGradientIsReported) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  auto y = x * 2.0;
  AnomalyGuard anomaly;
  expect_error<AnomalyError>(
      [&] {
        y.backward(Array<double>{1.0, -std::numeric_limits<double>::infinity()});
      },
      {"xgrad::backward", "given", "-inf", "flat index 1"});
}

TEST(Anomaly, LogAtZeroInASmallModelIsReportedAsLogWithItsLine) {
  nn::Linear<double> layer(3, 2);
  auto w = layer.weight();
  auto b = layer.bias();
  w.mutable_value() = Array<double>{{1.0, 0.0, 0.0}, {0.0, 1.0, 0.0}};
  b.mutable_value().fill(0.0);
  auto x = D::from({{0.0, 2.0, 1.0}});  // the first unit's pre-activation is exactly 0
  AnomalyGuard anomaly;
  auto h = relu(layer(x));
  const int line = __LINE__ + 1;
  auto loss = -log(h).sum();
  EXPECT_EQ(loss.item(), std::numeric_limits<double>::infinity());
  // NOTE: appended, not "..." + std::to_string(line): GCC 12 reports a false -Warray-bounds on
  // that operator+ here when the precompiled header changes its inlining.
  std::string where = "anomaly_test.cpp:";
  where += std::to_string(line);
  expect_error<AnomalyError>([&] { loss.backward(); },
                             {"xgrad::backward (anomaly mode): 'log' created at", where, "-inf",
                              "input 0", "[1,2]", "flat index 0"});
  EXPECT_FALSE(w.has_grad());
  EXPECT_FALSE(b.has_grad());
}

// Each spelling of an op (function, method, operator with a tensor or a scalar on either side,
// unary minus) is located on the line where it is written.
TEST(Anomaly, FunctionsMethodsAndOperatorsAreLocatedWhereWritten) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  std::vector<std::pair<D, unsigned>> made;
  {
    AnomalyGuard anomaly;
    made.emplace_back(exp(x), __LINE__);
    made.emplace_back(x.exp(), __LINE__);
    made.emplace_back(x + x, __LINE__);
    made.emplace_back(x * 2.0, __LINE__);
    made.emplace_back(2.0 - x, __LINE__);
    made.emplace_back(1.0 / x, __LINE__);
    made.emplace_back(-x, __LINE__);
    made.emplace_back(x.sum(), __LINE__);
    made.emplace_back(cross_entropy(x.reshape({1, 2}), {1}), __LINE__);
    made.emplace_back(x.reshape({1, 2}).matmul(x), __LINE__);
  }
  for (const auto& [t, line] : made) {
    SCOPED_TRACE(t.op_name());
    const Location& where = t.impl()->grad_fn->where();
    EXPECT_EQ(where.line(), line);
    EXPECT_NE(std::string(where.file_name()).find("anomaly_test.cpp"), std::string::npos);
  }
  // Recorded with anomaly mode off: no place kept.
  EXPECT_EQ((x * x).impl()->grad_fn->where().line(), 0u);
}

TEST(Anomaly, FailedBackwardLeavesEveryGradAsItWas) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  (x * 3.0).sum().backward();
  const Array<double> before = x.grad().value();
  int line = 0;
  // Two branches into x: the finite one is swept first and must not reach x.grad() alone.
  auto loss = scaled(x, std::nan(""), line).sum() + (x * 2.0).sum();
  AnomalyGuard anomaly;
  expect_error<AnomalyError>([&] { loss.backward(); }, {"'scaled'", "NaN"});
  EXPECT_EQ(x.grad().value(), before);
}

TEST(LiveNodes, CountsNodesUntilTheGraphIsFreed) {
  const std::size_t start = live_nodes();
  auto x = D::from({1.0, 2.0}).requires_grad_();
  {
    auto y = ((x * 2.0).exp() + x).sum();
    EXPECT_EQ(live_nodes(), start + 4);
    y.backward();
    // Released nodes stay attached to their outputs until those die.
    EXPECT_EQ(live_nodes(), start + 1);
  }
  EXPECT_EQ(live_nodes(), start);
  { auto z = D::ones({2}) * 3.0; }  // nothing requires grad: no node
  EXPECT_EQ(live_nodes(), start);
}

}  // namespace
}  // namespace xgrad
