// The smallest network: three binary inputs, one sigmoid unit, no bias. The target is the first
// input. Gradient descent (learning rate 1) on 0.5 * sum((y - yhat)^2) for 25,000 epochs, which is
// exactly the classic update W += X^T (error * yhat * (1 - yhat)), here derived by the engine.

#include <cstdio>

#include <xgrad/xgrad.hpp>

int main() {
  using namespace xgrad;
  using D = Tensor<double>;  // double: the published digits come from a float64 run

  const auto x = D::from({{0, 1, 0}, {0, 1, 1}, {0, 0, 0}, {1, 0, 0}, {1, 1, 1}, {1, 0, 1}});
  const auto y = D::from({{0}, {0}, {0}, {1}, {1}, {1}});
  auto w = D::full({3, 1}, 0.5).requires_grad_();

  const int epochs = 25000;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    auto yhat = x.matmul(w).sigmoid();
    auto error = y - yhat;
    auto loss = (error * error).sum() * 0.5;
    loss.backward();
    {
      NoGradGuard no_grad;
      w.mutable_value() -= w.grad();
      w.zero_grad();
    }
    if (epoch == 1 || epoch % 5000 == 0) {
      const double mean_abs_error = xt::mean(xt::abs(error.value()))();
      std::printf("epoch %5d  mean |error| %.8f\n", epoch, mean_abs_error);
    }
  }

  NoGradGuard no_grad;
  const auto probe = [&](const D& row) { return row.matmul(w).sigmoid().item(); };
  std::printf("[1,1,0] -> %.8f\n", probe(D::from({{1, 1, 0}})));
  std::printf("[0,1,1] -> %.6f\n", probe(D::from({{0, 1, 1}})));
  return 0;
}
