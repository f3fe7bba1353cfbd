// A physics-informed network: a tanh MLP (1-32-32-1) learns u with u''(x) = -pi^2 sin(pi x) on
// [0, 1] and u(0) = u(1) = 0, whose solution is sin(pi x). The loss holds u'' itself, taken by the
// engine as the gradient of a gradient (create_graph), so training differentiates through it a
// third time. The boundary conditions are built into the trial function u = x (1 - x) N(x).
// Adam first, then L-BFGS; prints the largest error against sin(pi x) on 1,000 points and plots
// both.

#include <cmath>
#include <cstdio>
#include <numbers>

#include <xgrad/optim/lbfgs.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {
using namespace xgrad;
using D = Tensor<double>;

// u(x) = x (1 - x) N(x): zero at both ends whatever the network.
D trial(nn::MLP<double>& net, const D& x) {
  return x * (1.0 - x) * net(x);
}

// mean((u'' + pi^2 sin(pi x))^2) over the collocation points x [n,1].
D residual_loss(nn::MLP<double>& net, const D& x, const D& source) {
  auto xr = x.detach().requires_grad_();
  auto u = trial(net, xr);
  auto du = grad({u.sum()}, {xr}, {.create_graph = true})[0];
  auto d2u = grad({du.sum()}, {xr}, {.create_graph = true})[0];
  return mse(d2u, source);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Physics-informed network for u'' = -pi^2 sin(pi x), u(0) = u(1) = 0"};
  examples::Flags flags{2000, 0.01, 64};  // Adam steps, Adam's lr, collocation points
  int lbfgs_steps = 40;
  examples::add_common_flags(app, flags);
  app.add_option("--lbfgs-steps", lbfgs_steps, "L-BFGS steps (20 iterations each) after Adam")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const auto out = examples::prepare(flags);
  const double pi = std::numbers::pi;

  Generator gen(flags.seed);
  nn::MLP<double> net({1, 32, 32, 1}, nn::Act::Tanh, nn::Act::Identity, gen);
  const D x = D::linspace(0.0, 1.0, flags.batch_size).reshape({-1, 1});
  const D source = sin(x * pi) * (-pi * pi);
  std::printf("PINN %s, %zu collocation points, %zu parameters\n", net.describe().c_str(),
              flags.batch_size, net.num_parameters());

  std::vector<double> losses;
  optim::Adam<double> adam(net.parameters(), {.lr = flags.lr});
  for (int step = 1; step <= flags.epochs; ++step) {
    adam.zero_grad();
    auto loss = residual_loss(net, x, source);
    loss.backward();
    adam.step();
    losses.push_back(loss.item());
    if (step % 500 == 0 || step == flags.epochs) {
      std::printf("adam  step %5d  loss %.3e\n", step, loss.item());
    }
  }
  optim::LBFGS<double> lbfgs(net.parameters(), {.max_iter = 20, .history_size = 50});
  for (int step = 1; step <= lbfgs_steps; ++step) {
    const double loss = lbfgs.step([&] {
      lbfgs.zero_grad();
      auto l = residual_loss(net, x, source);
      l.backward();
      return l;
    });
    losses.push_back(loss);
    if (step % 10 == 0 || step == lbfgs_steps) {
      std::printf("lbfgs step %5d  loss %.3e\n", step, loss);
    }
  }

  NoGradGuard no_grad;
  const D test = D::linspace(0.0, 1.0, 1000).reshape({-1, 1});
  const D u = trial(net, test);
  const D exact = sin(test * pi);
  const double max_error = xt::amax(xt::abs(u.value() - exact.value()))();
  std::printf("max |u - sin(pi x)| on 1000 points: %.3e\n", max_error);

  std::vector<double> xs(test.value().begin(), test.value().end());
  std::vector<double> us(u.value().begin(), u.value().end());
  std::vector<double> es(exact.value().begin(), exact.value().end());
  viz::line_plot_svg((out / "pinn_solution.svg").string(),
                     {{"network u(x)", xs, us}, {"sin(pi x)", xs, es}},
                     {"u'' = -pi^2 sin(pi x), u(0) = u(1) = 0", "x", "u"});
  viz::line_plot_svg((out / "pinn_loss.svg").string(), {{"residual loss", {}, losses}},
                     {"PINN training", "step (Adam, then L-BFGS)", "loss", true});
  std::printf("wrote %s and %s\n", (out / "pinn_solution.svg").c_str(),
              (out / "pinn_loss.svg").c_str());
  return max_error <= 1e-3 ? 0 : 1;
}
