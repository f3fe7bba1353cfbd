// SEEDS.md section 5, the perceptron: a weighted sum plus bias through a binary step, trained
// online on one randomly picked example per step. The update w += lr (y - yhat) x is the gradient
// of the perceptron criterion (yhat - y) * (w.x + b) with yhat held constant, so the engine derives
// it. AND, OR and NAND are learned; XOR is not (it is not linearly separable), and a network with
// one hidden layer learns it.

#include <cstdio>
#include <random>

#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {

using namespace xgrad;
using F = Tensor<float>;

const F inputs = F::from({{0, 0}, {0, 1}, {1, 0}, {1, 1}});

std::string bits(const Array<float>& a) {
  std::string s = "[";
  for (std::size_t i = 0; i < a.size(); ++i) s += (i ? "," : "") + std::to_string(int(a.flat(i)));
  return s + "]";
}

// Returns the perceptron's predictions on the four inputs after `steps` online updates.
Array<float> train_perceptron(const F& targets, int steps, float lr, std::uint64_t seed) {
  Generator gen(seed);
  auto w = F::zeros({2, 1}).requires_grad_();
  auto b = F::zeros({1}).requires_grad_();
  optim::SGD<float> sgd({w, b}, {.lr = lr});
  std::uniform_int_distribution<std::size_t> pick(0, 3);
  for (int s = 0; s < steps; ++s) {
    const std::size_t i = pick(gen.engine());
    const F x = inputs.slice(0, i, i + 1);
    const F y = targets.slice(0, i, i + 1);
    auto z = x.matmul(w) + b;
    auto yhat = step(z);
    auto criterion = ((yhat - y).detach() * z).sum();
    sgd.zero_grad();
    criterion.backward();
    sgd.step();
  }
  NoGradGuard no_grad;
  return step(inputs.matmul(w) + b).value();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Perceptron on logic gates, and an MLP for XOR"};
  examples::Flags flags{100, 0.1, 1};
  examples::add_common_flags(app, flags);
  CLI11_PARSE(app, argc, argv);
  examples::prepare(flags);

  const std::vector<std::pair<std::string, F>> gates = {
      {"AND", F::from({{0}, {0}, {0}, {1}})},
      {"OR", F::from({{0}, {1}, {1}, {1}})},
      {"NAND", F::from({{1}, {1}, {1}, {0}})},
      {"XOR", F::from({{0}, {1}, {1}, {0}})},
  };
  for (const auto& [name, target] : gates) {
    const auto pred =
        train_perceptron(target, flags.epochs, static_cast<float>(flags.lr), flags.seed);
    const bool learned = pred == target.value();
    std::printf("perceptron %-4s predicts %s, target %s: %s\n", name.c_str(), bits(pred).c_str(),
                bits(target.value()).c_str(), learned ? "learned" : "NOT learned");
  }

  // One hidden layer of tanh units solves XOR.
  Generator gen(flags.seed);
  nn::MLP<float> mlp({2, 4, 1}, nn::Act::Tanh, nn::Act::Identity, gen);
  optim::Adam<float> adam(mlp.parameters(), {.lr = 0.05});
  const F& xor_target = gates[3].second;
  for (int epoch = 0; epoch < 500; ++epoch) {
    adam.zero_grad();
    bce_with_logits(mlp(inputs), xor_target).backward();
    adam.step();
  }
  NoGradGuard no_grad;
  const auto pred = step(mlp(inputs)).value();
  std::printf("MLP 2-4-1  XOR  predicts %s, target %s: %s\n", bits(pred).c_str(),
              bits(xor_target.value()).c_str(),
              pred == xor_target.value() ? "learned" : "NOT learned");
  return 0;
}
