// SEEDS.md section 1, logistic regression as a shallow network: two Gaussian clusters in 2-D,
// weights W [1,2] used transposed, p = sigmoid(X W^T), binary cross-entropy, full-batch gradient
// descent. Prints the loss and the step size per iteration; writes the decision boundary before
// and after training and the loss curve.

#include <cmath>
#include <cstdio>

#include <xgrad/optim/optim.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace xgrad;
  using F = Tensor<float>;

  CLI::App app{"Logistic regression on two 2-D clusters"};
  examples::Flags flags{15, 1.0, 100};
  examples::add_common_flags(app, flags);
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
  return 0;
}
