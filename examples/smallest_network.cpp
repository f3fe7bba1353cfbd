// SEEDS.md section 3, the smallest network: three binary inputs, one sigmoid unit, no bias; the
// target is the first input. Gradient descent (learning rate 1) on 0.5 * sum((y - yhat)^2) for
// 25,000 epochs: exactly the classic update W += X^T (error * yhat * (1 - yhat)), here derived by
// the engine. Prints the article's two predictions and plots mean |error| per epoch.

#include <cstdio>

#include <xgrad/viz/plot.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace xgrad;
  using D = Tensor<double>;  // double: the published digits come from a float64 run

  CLI::App app{"The smallest network (6 samples, 3 binary features)"};
  examples::Flags flags{25000, 1.0, 6};
  examples::add_common_flags(app, flags);
  CLI11_PARSE(app, argc, argv);
  const auto out = examples::prepare(flags);

  const auto x = D::from({{0, 1, 0}, {0, 1, 1}, {0, 0, 0}, {1, 0, 0}, {1, 1, 1}, {1, 0, 1}});
  const auto y = D::from({{0}, {0}, {0}, {1}, {1}, {1}});
  auto w = D::full({3, 1}, 0.5).requires_grad_();

  std::vector<double> mean_abs_error;
  for (int epoch = 1; epoch <= flags.epochs; ++epoch) {
    auto yhat = x.matmul(w).sigmoid();
    auto error = y - yhat;
    auto loss = (error * error).sum() * 0.5;
    loss.backward();
    {
      NoGradGuard no_grad;
      w.mutable_value() -= flags.lr * w.grad().value();
      w.zero_grad();
    }
    mean_abs_error.push_back(xt::mean(xt::abs(error.value()))());
    if (epoch == 1 || epoch % 5000 == 0 || epoch == flags.epochs) {
      std::printf("epoch %5d  mean |error| %.8f\n", epoch, mean_abs_error.back());
    }
  }

  NoGradGuard no_grad;
  const auto predict = [&](const D& row) { return row.matmul(w).sigmoid().item(); };
  std::printf("[1,1,0] -> %.8f\n", predict(D::from({{1, 1, 0}})));
  std::printf("[0,1,1] -> %.6f\n", predict(D::from({{0, 1, 1}})));

  const auto plot = out / "smallest_network_error.svg";
  viz::line_plot_svg(plot.string(), {{"mean |error|", {}, mean_abs_error}},
                     {"Smallest network: mean |error| per epoch", "epoch", "mean |error|", true});
  std::printf("wrote %s\n", plot.c_str());
  return 0;
}
