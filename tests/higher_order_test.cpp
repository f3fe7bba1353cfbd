// Gradients of gradients (create_graph), the functional helpers, hooks and the per-pass
// guarantees of the engine. Expected values come from closed forms.

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using test::expect_error;
using test::run_with_stack;
using test::uniform;

TEST(HigherOrder, ThirdDerivativeOfACube) {
  auto x = D::from({-1.5, 0.5, 2.0}).requires_grad_();
  auto y = (x * x * x).sum();
  auto d1 = grad({y}, {x}, {.create_graph = true})[0];         // 3x^2
  auto d2 = grad({d1.sum()}, {x}, {.create_graph = true})[0];  // 6x
  auto d3 = grad({d2.sum()}, {x})[0];                          // 6
  for (std::size_t i = 0; i < 3; ++i) {
    const double v = x.value()(i);
    EXPECT_NEAR(d1.value()(i), 3 * v * v, 1e-12);
    EXPECT_NEAR(d2.value()(i), 6 * v, 1e-12);
    EXPECT_NEAR(d3.value()(i), 6.0, 1e-12);
  }
  EXPECT_TRUE(d1.requires_grad());
  EXPECT_FALSE(d3.requires_grad());
}

TEST(HigherOrder, SecondDerivativeOfSinThroughATanhNetworkInput) {
  // u = sin(pi x): u'' = -pi^2 sin(pi x), taken twice by the engine.
  auto x = D::linspace(0.0, 1.0, 9).reshape({-1, 1}).requires_grad_();
  auto u = sin(x * std::numbers::pi);
  auto du = grad({u.sum()}, {x}, {.create_graph = true})[0];
  auto d2u = grad({du.sum()}, {x}, {.create_graph = true})[0];
  for (std::size_t i = 0; i < 9; ++i) {
    const double xi = x.value()(i, 0);
    EXPECT_NEAR(du.value()(i, 0), std::numbers::pi * std::cos(std::numbers::pi * xi), 1e-12);
    EXPECT_NEAR(d2u.value()(i, 0),
                -std::numbers::pi * std::numbers::pi * std::sin(std::numbers::pi * xi), 1e-11);
  }
}

TEST(HigherOrder, BackwardWithCreateGraphLeavesADifferentiableGrad) {
  auto w = D::from({0.3, -0.7}).requires_grad_();
  auto loss = (w * w * w).sum();  // dloss/dw = 3 w^2
  loss.backward({.create_graph = true});
  D g = w.grad();
  EXPECT_TRUE(g.requires_grad());
  // A gradient penalty: d/dw sum((3 w^2)^2) = 36 w^3.
  auto penalty = (g * g).sum();
  auto dp = grad({penalty}, {w}, {.retain_graph = true})[0];
  for (std::size_t i = 0; i < 2; ++i) {
    const double v = w.value()(i);
    EXPECT_NEAR(dp.value()(i), 36 * v * v * v, 1e-12);
  }
  // create_graph kept the graph, and retain_graph the penalty's pass: loss runs again.
  w.clear_grad();
  loss.backward();
  EXPECT_NEAR(w.grad().value()(0), 3 * 0.09, 1e-12);
}

TEST(HigherOrder, BroadcastGradientsAreReducedByARecordedSum) {
  // y = sum(x_row * m): x [3] broadcast against [2,3]; d2/dx dm flows through the reduction.
  auto x = D::from({1.0, 2.0, 3.0}).requires_grad_();
  auto m = D::from({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}).requires_grad_();
  auto y = (x * m).sum();
  auto gx = grad({y}, {x}, {.create_graph = true})[0];  // column sums of m
  EXPECT_EQ(gx.shape(), (Shape{3}));
  EXPECT_TRUE(gx.requires_grad());
  auto gm = grad({(gx * D::from({1.0, 10.0, 100.0})).sum()}, {m})[0];
  EXPECT_EQ(gm.value(), (Array<double>{{1.0, 10.0, 100.0}, {1.0, 10.0, 100.0}}));
}

TEST(HigherOrder, HessianVectorProductMatchesTheHessian) {
  // f(w) = sum(tanh(A w)^2) + w0 w1: compare H v with the full Hessian times v.
  const D a = uniform({4, 3}, 5);
  auto f = [a](const std::vector<D>& in) {
    auto h = tanh(a.matmul(in[0]));
    return (h * h).sum() + in[0].slice(0, 0, 1).sum() * in[0].slice(0, 1, 2).sum();
  };
  const D w = uniform({3}, 6);
  const D v = uniform({3}, 7);
  auto hv = hvp(f, {w}, {v})[0];
  auto h = hessian(f, {w})[0][0];
  ASSERT_EQ(h.shape(), (Shape{3, 3}));
  for (std::size_t i = 0; i < 3; ++i) {
    double expected = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      expected += h.value()(i, j) * v.value()(j);
      EXPECT_NEAR(h.value()(i, j), h.value()(j, i), 1e-12);  // symmetric
    }
    EXPECT_NEAR(hv.value()(i), expected, 1e-10);
  }
  EXPECT_FALSE(w.requires_grad());  // the caller's tensors are left alone
}

TEST(HigherOrder, HessianOfAQuadraticFormIsASymmetrisedMatrix) {
  const D a = D::from({{1.0, 2.0}, {0.0, 3.0}});
  auto f = [a](const std::vector<D>& in) { return in[0].matmul(a.matmul(in[0])); };
  auto h = hessian(f, {D::from({0.4, -1.2})})[0][0];
  EXPECT_TRUE(xt::allclose(h.value(), Array<double>{{2.0, 2.0}, {2.0, 6.0}}));
}

TEST(HigherOrder, JacobianAndVjpOfALinearMap) {
  const D m = uniform({2, 3}, 8);
  auto f = [m](const std::vector<D>& in) { return m.matmul(in[0]) * 2.0; };
  auto j = jacobian(f, {uniform({3}, 9)})[0];
  EXPECT_TRUE(xt::allclose(j.value(), m.value() * 2.0));
  auto g = vjp(f, {uniform({3}, 9)}, {D::from({1.0, -1.0})})[0];
  Array<double> expected =
      (xt::view(m.value(), 0, xt::all()) - xt::view(m.value(), 1, xt::all())) * 2.0;
  EXPECT_TRUE(xt::allclose(g.value(), expected));
  expect_error<ShapeError>([&] { hvp(f, {uniform({3}, 9)}, {uniform({3}, 1)}); },
                           {"xgrad::hvp", "one element", "[2]"});
  expect_error<ShapeError>([&] { hvp(f, {uniform({3}, 9)}, {uniform({2}, 1)}); },
                           {"xgrad::hvp", "[2]", "[3]"});
}

TEST(HigherOrder, ArrayDerivativeOfACustomOpIsRefusedWhenDifferentiatedTwice) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  auto cube = [](const D& a) {
    return record<double>("array_cube", Array<double>(a.value() * a.value() * a.value()), {a},
                          [](const D& g, Grads<double>& ctx) {
                            const auto& v = ctx.value(0);
                            ctx.to(0, g.value() * 3.0 * v * v);
                          });
  };
  // First order works, with or without create_graph.
  auto g1 = grad({cube(x).sum()}, {x})[0];
  EXPECT_DOUBLE_EQ(g1.value()(1), 12.0);
  auto g2 = grad({cube(x).sum()}, {x}, {.create_graph = true})[0];
  EXPECT_DOUBLE_EQ(g2.value()(1), 12.0);
  expect_error<GraphError>([&] { grad({g2.sum()}, {x}); },
                           {"'array_cube'", "cannot be differentiated again"});
}

TEST(HigherOrder, TensorDerivativeOfACustomOpIsDifferentiableTwice) {
  auto cube = [](const D& a) {
    return record<double>(
        "tensor_cube", Array<double>(a.value() * a.value() * a.value()), {a},
        [](const D& g, Grads<double>& ctx) {
          const D v = ctx.in(0);
          ctx.to(0, g * v * v * 3.0);  // cube: grad * 3 self^2
        },
        Saves::in({0}));
  };
  auto report = testing::gradgradcheck([&](std::vector<D>& in) { return cube(in[0]); },
                                       {uniform({2, 3}, 11)});
  EXPECT_TRUE(report.ok) << report.summary();
}

TEST(HigherOrder, GradgradcheckCatchesAWrongSecondDerivative) {
  // First derivative right, but written so that the graph misses d/dx of x^2: (x^2 detached).
  auto wrong = [](const D& a) {
    return record<double>(
        "wrong_cube", Array<double>(a.value() * a.value() * a.value()), {a},
        [](const D& g, Grads<double>& ctx) {
          const D v = ctx.in(0).detach();
          ctx.to(0, g * v * v * 3.0);
        },
        Saves::in({0}));
  };
  auto fn = [&](std::vector<D>& in) { return wrong(in[0]); };
  EXPECT_TRUE(testing::gradcheck(fn, {uniform({3}, 12)}).ok);
  EXPECT_FALSE(testing::gradgradcheck(fn, {uniform({3}, 12)}).ok);
}

TEST(Hooks, TensorHookSeesAndReplacesTheGradient) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  auto h = x * 3.0;
  std::vector<double> seen;
  h.register_hook([&](const D& g) {
    seen.push_back(g.value()(0));
    return g * 10.0;
  });
  (h * h).sum().backward();  // dh = 2h = [6, 12]
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_DOUBLE_EQ(seen[0], 6.0);
  EXPECT_DOUBLE_EQ(x.grad().value()(0), 180.0);  // 6 * 10 * 3
}

TEST(Hooks, LeafHookRunsOnTheTotalGradientAndCanBeRemoved) {
  auto x = D::from({1.0}).requires_grad_();
  int calls = 0;
  const auto id = x.register_hook([&](const D& g) {
    ++calls;
    EXPECT_DOUBLE_EQ(g.item(), 5.0);  // 2 + 3, summed before the hook
    return D();                       // keep it
  });
  (x * 2.0 + x * 3.0).sum().backward();
  EXPECT_EQ(calls, 1);
  EXPECT_DOUBLE_EQ(x.grad().item(), 5.0);
  EXPECT_TRUE(x.remove_hook(id));
  EXPECT_FALSE(x.remove_hook(id));
  (x * 2.0).sum().backward();
  EXPECT_EQ(calls, 1);
  EXPECT_DOUBLE_EQ(x.grad().item(), 7.0);
}

TEST(Hooks, PostAccumulateHookRunsOnceALeafIsFinalBeforeThePassEnds) {
  // w2 is used only at the end of the forward pass, so its gradient is final first; w1's last.
  auto w1 = D::from({1.0}).requires_grad_();
  auto w2 = D::from({2.0}).requires_grad_();
  std::vector<std::string> order;
  w1.register_post_accumulate_grad_hook(
      [&](const D& leaf) { order.push_back("w1:" + std::to_string(leaf.grad().item())); });
  w2.register_post_accumulate_grad_hook(
      [&](const D& leaf) { order.push_back("w2:" + std::to_string(leaf.grad().item())); });
  auto h = (w1 * 3.0).exp();
  auto y = (h * w2).sum();
  y.backward();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0].substr(0, 3), "w2:");
  EXPECT_EQ(order[1].substr(0, 3), "w1:");
  expect_error<GraphError>([&] { h.register_post_accumulate_grad_hook([](const D&) {}); },
                           {"register_post_accumulate_grad_hook", "'exp'"});
}

TEST(Hooks, ABackwardInsideAHookRunsAsItsOwnPass) {
  auto x = D::from({2.0}).requires_grad_();
  auto y = x * x;
  double inner = 0;
  y.register_hook([&](const D& g) {
    auto z = D::from({3.0}).requires_grad_();
    inner = grad({(z * z).sum()}, {z})[0].item();
    return g;
  });
  y.sum().backward();
  EXPECT_DOUBLE_EQ(inner, 6.0);
  EXPECT_DOUBLE_EQ(x.grad().item(), 4.0);
}

TEST(Hooks, AHookReturningAnotherShapeIsRefused) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  x.register_hook([](const D&) { return D::zeros({3}); });
  expect_error<ShapeError>([&] { (x * 2.0).sum().backward(); }, {"hook", "[3]", "[2]"});
}

// Elementwise derivatives write their result over the incoming gradient when the pass alone
// holds it; a gradient someone else holds (a seed, one a hook kept) must never change.
TEST(Engine2, GradientsOthersHoldAreNeverWrittenOver) {
  const auto x = D::from({0.5, -1.0, 2.0}).requires_grad_();
  const auto y = (x * 3.0).tanh() - x;
  const D seed = D::from({1.0, 2.0, 3.0});
  y.backward(seed);
  EXPECT_EQ(seed.value(), (Array<double>{1.0, 2.0, 3.0}));
  const Array<double> t = xt::tanh(3.0 * x.value());
  const Array<double> want = seed.value() * (3.0 * (1.0 - t * t) - 1.0);
  EXPECT_TRUE(xt::allclose(x.grad().value(), want));

  const auto z = x.detach().requires_grad_();
  auto h = z * 2.0;
  D seen;
  h.register_hook([&](const D& g) {
    seen = g;  // kept beyond the hook: the derivatives below must not write over it
    return D();
  });
  (h.sigmoid() * 5.0).sum().backward();
  const Array<double> s = 1.0 / (1.0 + xt::exp(-2.0 * x.value()));
  EXPECT_TRUE(xt::allclose(seen.value(), 5.0 * s * (1.0 - s)));
  EXPECT_TRUE(xt::allclose(z.grad().value(), 10.0 * s * (1.0 - s)));
}

TEST(Engine2, AFailedPassLeavesEveryGradAsItWasEvenAfterALeafWasFinal) {
  auto w1 = D::from({1.0}).requires_grad_();
  auto w2 = D::from({2.0}).requires_grad_();
  (w1 * w2).sum().backward();
  const double g1 = w1.grad().item();
  const double g2 = w2.grad().item();
  auto h = w1.exp();  // saves its output
  auto y = (h * w2).sum();
  bool ran = false;
  w2.register_post_accumulate_grad_hook([&](const D&) { ran = true; });
  h.register_hook([](const D& g) -> D { throw ValueError("stop: " + shape_str(g.shape())); });
  EXPECT_THROW(y.backward(), ValueError);
  EXPECT_TRUE(ran);  // w2 was final and committed before the failure...
  EXPECT_DOUBLE_EQ(w1.grad().item(), g1);
  EXPECT_DOUBLE_EQ(w2.grad().item(), g2);  // ...and is put back
}

TEST(Engine2, AddKeepsNoInputAliveAndMulOnlyWhatItReads) {
  auto x = D::from({1.0, 2.0}).requires_grad_();
  auto h = x * 2.0;
  std::weak_ptr<detail::Storage<double>> h_storage = h.impl()->storage;
  auto c = D::from({5.0, 6.0});  // a constant
  std::weak_ptr<detail::Storage<double>> c_storage = c.impl()->storage;
  auto y = h + c;
  auto z = y * c;  // reads c (for y's gradient) but not y (c needs none)
  std::weak_ptr<detail::Storage<double>> y_storage = y.impl()->storage;
  h = D();
  c = D();
  y = D();
  EXPECT_TRUE(h_storage.expired());
  EXPECT_TRUE(y_storage.expired());
  EXPECT_FALSE(c_storage.expired());
  z.sum().backward();
  EXPECT_EQ(x.grad().value(), (Array<double>{10.0, 12.0}));
}

TEST(Hooks, QueuedCallbacksRunOnceEveryGradientIsFinal) {
  auto a = D::from({1.0, 2.0}).requires_grad_();
  auto b = D::from({3.0}).requires_grad_();
  std::vector<std::string> events;
  a.register_post_accumulate_grad_hook([&](const D&) {
    events.push_back("a");
    queue_callback([&] {
      // Both leaves are final here, whichever finished last.
      events.push_back("callback " + std::to_string(a.grad().value()(1)) + " " +
                       std::to_string(b.grad().value()(0)));
      queue_callback([&] { events.push_back("queued by a callback"); });
    });
  });
  b.register_post_accumulate_grad_hook([&](const D&) { events.push_back("b"); });
  ((a * b).sum() + b.sum()).backward();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2], "callback 3.000000 4.000000");
  EXPECT_EQ(events[3], "queued by a callback");
  // A pass inside a hook runs its own callbacks before the outer pass goes on.
  events.clear();
  auto x = D::from({2.0}).requires_grad_();
  b.register_hook([&](const D& g) {
    auto y = (x * x).sum();
    grad({y}, {x});
    return g;
  });
  x.register_hook([&](const D& g) {
    queue_callback([&] { events.push_back("inner"); });
    return g;
  });
  a.clear_grad();
  b.clear_grad();
  ((a * b).sum()).backward();
  ASSERT_EQ(events.size(), 5u);  // the hooks of a and b (either first), the inner pass's callback
  std::sort(events.begin(), events.begin() + 3);
  EXPECT_EQ(events[0], "a");
  EXPECT_EQ(events[1], "b");
  EXPECT_EQ(events[2], "inner");
  EXPECT_EQ(events[3], "callback 3.000000 3.000000");
  EXPECT_EQ(events[4], "queued by a callback");
  test::expect_error<GraphError>([] { queue_callback([] {}); }, {"queue_callback", "no backward"});
  test::expect_error<ValueError>([] { queue_callback(nullptr); }, {"queue_callback", "empty"});
}

TEST(Engine2, GradOnlyRunsThePartOfTheGraphItNeeds) {
  // d/dx of a product with a weight: the weight's gradient (a matmul) is not computed, which a
  // derivative that throws when asked for it proves.
  auto x = D::from({{1.0, 2.0}}).requires_grad_();
  auto w = D::from({{3.0}, {4.0}}).requires_grad_();
  auto guarded = record<double>(
      "only_x", Array<double>(w.value()), {w},
      [](const D&, Grads<double>&) { throw ValueError("the weight's branch ran"); }, Saves::none());
  auto y = x.matmul(guarded).sum();
  auto gx = grad({y}, {x})[0];
  EXPECT_EQ(gx.value(), (Array<double>{{3.0, 4.0}}));
}

TEST(Engine2, ZeroLiveNodesAfterCreateGraphPasses) {
  const std::size_t start = live_nodes();
  {
    auto x = uniform({4, 3}, 3).requires_grad_();
    auto w = uniform({3, 2}, 4).requires_grad_();
    auto y = tanh(x.matmul(w)).sum();
    auto gx = grad({y}, {x}, {.create_graph = true})[0];
    auto penalty = (gx * gx).sum();
    penalty.backward({.create_graph = true});
    EXPECT_TRUE(w.grad().requires_grad());
    auto again = grad({w.grad().sum()}, {w});
  }
  EXPECT_EQ(live_nodes(), start);
}

TEST(Engine2, MillionNodeChainWithCreateGraphOnA256KiBStack) {
  run_with_stack(256u << 10, [] {
    const std::size_t start = live_nodes();
    {
      auto x = D::from({1.5}).requires_grad_();
      D y = x;
      for (std::size_t i = 0; i < 1000000; ++i) y = y * 1.0;
      // d(y^2)/dx = 2y flows back through the chain as a recorded chain of its own.
      auto g = grad({(y * y).sum()}, {x}, {.create_graph = true})[0];
      EXPECT_DOUBLE_EQ(g.item(), 3.0);
      ASSERT_TRUE(g.requires_grad());
      EXPECT_DOUBLE_EQ(grad({g.sum()}, {x})[0].item(), 2.0);
      y = D();
      g = D();
    }
    EXPECT_EQ(live_nodes(), start);
  });
}

TEST(Engine2, ConcurrentCreateGraphPassesOnDisjointGraphs) {
  std::vector<std::thread> threads;
  std::vector<double> results(8, 0.0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t, &results] {
      auto x = D::from({0.1 * (t + 1)}).requires_grad_();
      for (int rep = 0; rep < 50; ++rep) {
        auto y = (x * x * x).sum();
        auto d1 = grad({y}, {x}, {.create_graph = true})[0];
        results[static_cast<std::size_t>(t)] = grad({d1.sum()}, {x})[0].item();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t)
    EXPECT_NEAR(results[static_cast<std::size_t>(t)], 0.6 * (t + 1), 1e-12);
}

TEST(Engine2, LinspaceMatchesTorch) {
  auto t = D::linspace(0.0, 1.0, 5);
  EXPECT_EQ(t.value(), (Array<double>{0.0, 0.25, 0.5, 0.75, 1.0}));
  EXPECT_EQ(D::linspace(2.0, 2.0, 1).value(), (Array<double>{2.0}));
  EXPECT_EQ(D::linspace(0.0, 1.0, 0).numel(), 0u);
  auto f = Tensor<float>::linspace(-1.0f, 1.0f, 7);
  EXPECT_FLOAT_EQ(f.value()(6), 1.0f);
  EXPECT_NEAR(f.value()(3), 0.0f, 1e-7f);
  expect_error<ValueError>([] { D::linspace(0.0, INFINITY, 3); }, {"xgrad::linspace", "finite"});
}

}  // namespace
}  // namespace xgrad
