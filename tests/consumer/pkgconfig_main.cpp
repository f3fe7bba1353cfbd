// Compiled with nothing but `pkg-config --cflags --libs xgrad`: sum of squares of 1..4 through
// the library, and its gradient 2x.

#include <cstdio>
#include <xgrad/ops.hpp>
#include <xgrad/version.hpp>

int main() {
  auto x = xgrad::Tensor<float>::arange(1.0f, 5.0f).requires_grad_();
  auto s = (x * x).sum();
  s.backward();
  const auto& g = x.grad().value();
  std::printf("xgrad %s via pkg-config: sum %g, grad [%g %g %g %g]\n", XGRAD_VERSION_STRING,
              s.item(), g(0), g(1), g(2), g(3));
  return 0;
}
