// SEEDS.md section 2: a network whose architecture the user chooses (--layers 784,25,10), sigmoid
// on every layer, bias units everywhere but the output, fully vectorised over the m examples.
// Cost: cross-entropy summed over the K classes, averaged over m, plus lambda / (2m) times the
// sum of squared weights (biases left out). Trained with L-BFGS over the flattened parameters, as
// the article does with SciPy's minimize. predict = argmax of the forward pass.

#include <cstdio>

#include <xgrad/data/data.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {

using namespace xgrad;
using D = Tensor<double>;

D one_hot(const D& labels, std::size_t classes) {
  Array<double> y(Shape{labels.numel(), classes}, 0.0);
  for (std::size_t i = 0; i < labels.numel(); ++i) {
    y(i, static_cast<std::size_t>(labels.value()(i))) = 1.0;
  }
  return D(std::move(y));
}

double accuracy(nn::Module<double>& model, const data::FashionMnist<double>& set) {
  NoGradGuard no_grad;
  const auto predicted = argmax(model(set.images), 1).value();
  std::size_t correct = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) {
    correct += predicted(i) == set.labels.value()(i);
  }
  return static_cast<double>(correct) / static_cast<double>(predicted.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A sigmoid network of any shape, L2-regularised, trained with L-BFGS"};
  examples::Flags flags{100, 1.0, 5000};
  examples::add_common_flags(app, flags);
  std::vector<std::size_t> layers{784, 25, 10};
  double lambda = 1.0;
  std::size_t train_size = 5000, test_size = 1000;
  std::string data_dir = data::kFashionMnistDir;
  app.add_option("--layers", layers, "layer sizes, input first")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--lambda", lambda, "L2 regularisation strength")->capture_default_str();
  app.add_option("--train-size", train_size, "training images")->capture_default_str();
  app.add_option("--test-size", test_size, "test images")->capture_default_str();
  app.add_option("--data", data_dir, "folder of the Fashion-MNIST IDX files")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  examples::prepare(flags);
  if (layers.size() < 2 || layers.front() != 784 || layers.back() != 10) {
    std::fprintf(stderr, "--layers must start with 784 (pixels) and end with 10 (classes)\n");
    return 2;
  }

  const auto train = data::load_fashion_mnist<double>(data_dir, true, train_size);
  const auto test = data::load_fashion_mnist<double>(data_dir, false, test_size);
  const D y = one_hot(train.labels, 10);
  const double m = static_cast<double>(train.labels.numel());

  Generator gen(flags.seed);
  nn::MLP<double> model(layers, nn::Act::Sigmoid, nn::Act::Sigmoid, gen);
  std::printf("%s", model.summary().c_str());

  optim::LBFGS<double> lbfgs(model.parameters(), {.lr = flags.lr, .max_iter = 1});
  const auto cost = [&] {
    lbfgs.zero_grad();
    auto j = bce(model(train.images), y, Reduction::Sum) / m +
             nn::l2_penalty(model) * (lambda / (2 * m));
    j.backward();
    return j;
  };
  for (int it = 1; it <= flags.epochs; ++it) {
    const double j = lbfgs.step(cost);
    if (it == 1 || it % 10 == 0 || it == flags.epochs) {
      std::printf("iteration %4d  cost %.6f\n", it, j);
    }
  }
  std::printf("train accuracy %.2f%%  test accuracy %.2f%%\n", 100 * accuracy(model, train),
              100 * accuracy(model, test));
  return 0;
}
