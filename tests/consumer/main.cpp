// Fits y = 2x + 1 with an nn::Linear, mse and optim::SGD through the installed package, and
// prints the fitted weight and bias, which must come out as the line's own coefficients. The full
// consumer also round-trips the model through a safetensors file (component io).

#include <cstdio>
#include <cstring>
#ifdef CORE_ONLY
#include <xgrad/core.hpp>
#else
#include <string>
#include <xgrad/xgrad.hpp>
#endif

int main() {
  using namespace xgrad;
  if (std::strcmp(XGRAD_VERSION_STRING, EXPECTED_VERSION) != 0) {
    std::printf("version mismatch: header %s, package %s\n", XGRAD_VERSION_STRING,
                EXPECTED_VERSION);
    return 1;
  }
  auto x = Tensor<double>::from({{-1.0}, {-0.5}, {0.0}, {0.5}, {1.0}, {1.5}});
  auto y = x * 2.0 + 1.0;
  Generator gen(3);
  nn::Linear<double> model(1, 1, true, gen);
  optim::SGD<double> sgd(model.parameters(), {.lr = 0.3});
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    sgd.zero_grad();
    auto loss = mse(model(x), y);
    loss.backward();
    sgd.step();
    (step == 0 ? first : last) = loss.item();
  }
#ifndef CORE_ONLY
  const std::string path = "consumer_model.safetensors";
  io::save(model, path);
  nn::Linear<double> loaded(1, 1, true, gen);
  io::load(loaded, path);
  if (loaded.weight().item() != model.weight().item()) {
    std::printf("safetensors round trip changed the weight\n");
    return 1;
  }
#endif
  std::printf("xgrad %s (%d): loss %.4f -> %.2e, w %.4f, b %.4f\n", XGRAD_VERSION_STRING,
              XGRAD_VERSION, first, last, model.weight().item(), model.bias().item());
  return 0;
}
