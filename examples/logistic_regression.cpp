// SEEDS.md section 1, logistic regression as a shallow network: two Gaussian clusters in 2-D,
// weights W [1,2] used transposed, p = sigmoid(X W^T), binary cross-entropy, full-batch gradient
// descent. Prints the loss and the step size per iteration; writes the decision boundary before
// and after training and the loss curve. With --newton it also fits the same model in double
// precision by Newton's method, with the Hessian taken by the engine (a gradient of the
// gradient), and by plain gradient descent to the same tolerance, and plots both loss curves.

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include <xgrad/optim/optim.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {
using namespace xgrad;
using D = Tensor<double>;

// Solves a x = b for a small dense a by Gaussian elimination with partial pivoting.
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const std::size_t n = b.size();
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t p = c;
    for (std::size_t r = c + 1; r < n; ++r) {
      if (std::abs(a[r][c]) > std::abs(a[p][c])) p = r;
    }
    std::swap(a[c], a[p]);
    std::swap(b[c], b[p]);
    for (std::size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (std::size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (std::size_t i = n; i-- > 0;) {
    double s = b[i];
    for (std::size_t k = i + 1; k < n; ++k) s -= a[i][k] * x[k];
    x[i] = s / a[i][i];
  }
  return x;
}

double norm(const Array<double>& g) {
  return std::sqrt(xt::sum(xt::square(g))());
}

// Newton's method and gradient descent from the same start, each until the gradient norm is at
// most 1e-8; prints both iteration counts and plots the two loss curves on one axis.
void newton_versus_descent(const Array<float>& xs, const Array<float>& ys, const Array<double>& w0,
                           double lr, const std::filesystem::path& out) {
  const EnableGradGuard enable_grad;  // main's NoGradGuard for its evaluation is still alive
  const D x(Array<double>(xt::cast<double>(xs)));
  const D y(Array<double>(xt::cast<double>(ys)));
  auto loss_of = [&](const std::vector<D>& in) { return bce(x.matmul(in[0].T()).sigmoid(), y); };
  constexpr double tolerance = 1e-8;

  std::vector<double> newton_losses;
  D w{Array<double>(w0)};
  int newton_iterations = 0;
  for (;;) {
    auto wr = w.detach().requires_grad_();
    auto loss = loss_of({wr});
    const Array<double> g = grad({loss}, {wr})[0].value();
    newton_losses.push_back(loss.item());
    std::printf("newton    iteration %2d  loss %.12f  |grad| %.3e\n", newton_iterations,
                loss.item(), norm(g));
    if (norm(g) <= tolerance || newton_iterations == 50) break;
    // H is [1,2,1,2]: d2 loss / dw_ij dw_kl; solve H d = g over the flattened weights.
    const Array<double> h = hessian(loss_of, {w})[0][0].value();
    std::vector<std::vector<double>> hm(2, std::vector<double>(2));
    for (std::size_t i = 0; i < 2; ++i) {
      for (std::size_t j = 0; j < 2; ++j) hm[i][j] = h.flat(i * 2 + j);
    }
    const auto d = solve(hm, {g.flat(0), g.flat(1)});
    Array<double> next = w.value();
    next.flat(0) -= d[0];
    next.flat(1) -= d[1];
    w = D(std::move(next));
    ++newton_iterations;
  }
  std::printf("newton: |grad| <= 1e-8 after %d iterations\n", newton_iterations);

  std::vector<double> descent_losses;
  auto v = D(Array<double>(w0)).requires_grad_();
  optim::SGD<double> sgd({v}, {.lr = lr});
  int descent_iterations = 0;
  for (; descent_iterations < 1000000; ++descent_iterations) {
    sgd.zero_grad();
    auto loss = loss_of({v});
    loss.backward();
    descent_losses.push_back(loss.item());
    if (norm(v.grad().value()) <= tolerance) break;
    sgd.step();
  }
  std::printf("gradient descent (lr %g): |grad| <= 1e-8 after %d iterations\n", lr,
              descent_iterations);
  const double floor = std::min(newton_losses.back(), descent_losses.back());
  auto gap = [floor](std::vector<double> l) {
    for (auto& e : l) e = e - floor;  // distance to the optimum, on a log axis
    return l;
  };
  viz::line_plot_svg((out / "logistic_newton.svg").string(),
                     {{"Newton (engine Hessian)", {}, gap(newton_losses)},
                      {"gradient descent", {}, gap(descent_losses)}},
                     {"Logistic regression: loss - optimum", "iteration", "loss gap", true});
  std::printf("wrote %s\n", (out / "logistic_newton.svg").c_str());
}
}  // namespace

int main(int argc, char** argv) {
  using namespace xgrad;
  using F = Tensor<float>;

  CLI::App app{"Logistic regression on two 2-D clusters"};
  examples::Flags flags{15, 1.0, 100};
  bool newton = false;
  examples::add_common_flags(app, flags);
  app.add_flag("--newton", newton,
               "also fit by Newton's method (engine Hessian) and by gradient descent to a gradient "
               "norm of 1e-8, in double, and plot both");
  CLI11_PARSE(app, argc, argv);
  const auto out = examples::prepare(flags);

  // 100 points: 50 around (-1.5, -1) labelled 0, 50 around (1.5, 1) labelled 1, unit spread.
  Generator gen(flags.seed);
  const std::size_t n = 100;
  Array<float> noise = F::randn({n, 2}, gen).value();
  Array<float> xs = Array<float>::from_shape({n, 2});
  Array<float> ys = Array<float>::from_shape({n, 1});
  for (std::size_t i = 0; i < n; ++i) {
    const float sign = i < n / 2 ? -1.f : 1.f;
    xs(i, 0) = sign * 1.5f + noise(i, 0);
    xs(i, 1) = sign * 1.0f + noise(i, 1);
    ys(i, 0) = i < n / 2 ? 0.f : 1.f;
  }
  const F x(xs), y(ys);
  auto w = F::randn({1, 2}, gen).requires_grad_();  // untrained: a random direction
  const Array<float> w0 = w.value();

  std::vector<std::array<double, 2>> points;
  std::vector<int> labels;
  for (std::size_t i = 0; i < n; ++i) {
    points.push_back({xs(i, 0), xs(i, 1)});
    labels.push_back(static_cast<int>(ys(i, 0)));
  }
  const auto boundary = [&](const std::string& file) {
    NoGradGuard no_grad;
    viz::decision_boundary_png((out / file).string(),
                               [&](const std::vector<std::array<double, 2>>& grid) {
                                 Array<float> g = Array<float>::from_shape({grid.size(), 2});
                                 for (std::size_t i = 0; i < grid.size(); ++i) {
                                   g(i, 0) = static_cast<float>(grid[i][0]);
                                   g(i, 1) = static_cast<float>(grid[i][1]);
                                 }
                                 const auto p = F(std::move(g)).matmul(w.T()).sigmoid().value();
                                 return std::vector<double>(p.begin(), p.end());
                               },
                               points, labels);
    std::printf("wrote %s\n", (out / file).c_str());
  };
  boundary("logistic_before.png");

  optim::SGD<float> sgd({w}, {.lr = flags.lr});
  std::vector<double> losses, steps;
  for (int it = 1; it <= flags.epochs; ++it) {
    sgd.zero_grad();
    auto loss = bce(x.matmul(w.T()).sigmoid(), y);
    loss.backward();
    const Array<float> before = w.value();
    sgd.step();
    const double step = std::sqrt(xt::sum(xt::square(w.value() - before))());
    losses.push_back(loss.item());
    steps.push_back(step);
    std::printf("iteration %2d  loss %.6f  step %.6f\n", it, losses.back(), step);
  }
  boundary("logistic_after.png");

  NoGradGuard no_grad;
  const auto p = x.matmul(w.T()).sigmoid().value();
  const double accuracy = xt::mean(xt::equal(p >= 0.5f, ys >= 0.5f))();
  std::printf("training accuracy %.1f%%\n", 100 * accuracy);
  viz::line_plot_svg((out / "logistic_loss.svg").string(),
                     {{"loss", {}, losses}, {"step size", {}, steps}},
                     {"Logistic regression", "iteration", "value"});
  std::printf("wrote %s\n", (out / "logistic_loss.svg").c_str());
  if (newton) newton_versus_descent(xs, ys, Array<double>(xt::cast<double>(w0)), flags.lr, out);
  return 0;
}
