// SEEDS.md section 4: one hidden layer on images. Input -> 8 ReLU units -> 1 sigmoid unit, mean
// binary cross-entropy, plain gradient descent W -= alpha dW from small random weights and zero
// biases. By default on a binary Fashion-MNIST task (ankle boot vs sneaker, pixels in [0, 1]);
// with --h5 it trains on the article's own train_catvnoncat.h5 (64x64x3 images turned grey:
// 4,096 inputs, 32,785 parameters).

#include <cstdio>

#include <xgrad/data/data.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {

using namespace xgrad;
using F = Tensor<float>;

struct Split {
  F x;  // [n, features] in [0, 1]
  F y;  // [n, 1] in {0, 1}
};

// Keeps the images of two classes; `positive` becomes label 1.
Split binary(const data::FashionMnist<float>& set, float positive, float negative) {
  std::vector<std::size_t> rows;
  const auto& labels = set.labels.value();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels(i) == positive || labels(i) == negative) rows.push_back(i);
  }
  Array<float> y = Array<float>::from_shape({rows.size(), 1});
  for (std::size_t i = 0; i < rows.size(); ++i) y(i, 0) = labels(rows[i]) == positive ? 1.f : 0.f;
  return {set.images.index_select(0, rows), F(std::move(y))};
}

// The article's HDF5 file: (n, 64, 64, 3) uint8 images made grey and flattened, labels (n,).
Split from_h5(const std::string& path, const std::string& prefix) {
  const auto images = data::read_hdf5<float>(path, prefix + "_x").value();
  const auto labels = data::read_hdf5<float>(path, prefix + "_y").value();
  if (images.dimension() != 4 || images.shape()[3] != 3) {
    throw ValueError("image_classifier: " + path + ": " + prefix +
                     "_x must be (n, height, width, 3)");
  }
  const std::size_t n = images.shape()[0];
  Array<float> grey = xt::mean(images, {3}) / 255.f;
  grey.reshape({n, grey.size() / n});
  Array<float> y = labels;
  y.reshape({n, 1});
  return {F(std::move(grey)), F(std::move(y))};
}

double accuracy(nn::Module<float>& model, const Split& s) {
  NoGradGuard no_grad;
  const auto p = model(s.x).value();
  return xt::mean(xt::equal(p >= 0.5f, s.y.value() >= 0.5f))();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"One hidden layer of 8 ReLU units on images"};
  examples::Flags flags{500, 0.5, 0};
  examples::add_common_flags(app, flags);
  std::string h5, h5_test, data_dir = data::kFashionMnistDir;
  std::size_t limit = 0;
  app.add_option("--h5", h5, "train on this train_catvnoncat.h5 instead of Fashion-MNIST");
  app.add_option("--h5-test", h5_test, "test on this test_catvnoncat.h5 (with --h5)");
  app.add_option("--limit", limit, "use only the first N Fashion-MNIST images of each set");
  app.add_option("--data", data_dir, "folder of the Fashion-MNIST IDX files")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  examples::prepare(flags);

  Split train, test;
  if (!h5.empty()) {
    train = from_h5(h5, "train_set");
    if (!h5_test.empty()) test = from_h5(h5_test, "test_set");
    std::printf("%s: %zu images of %zu grey pixels\n", h5.c_str(), train.y.numel(),
                train.x.size(1));
  } else {
    // Ankle boot (9) against sneaker (7): two shoes, so not a trivial task.
    train = binary(data::load_fashion_mnist<float>(data_dir, true, limit), 9, 7);
    test = binary(data::load_fashion_mnist<float>(data_dir, false, limit), 9, 7);
    std::printf("Fashion-MNIST ankle boot vs sneaker: %zu training, %zu test images\n",
                train.y.numel(), test.y.numel());
  }

  // Small random weights (0.01 N(0, 1)) and zero biases, as in the article.
  Generator gen(flags.seed);
  nn::MLP<float> model({train.x.size(1), 8, 1}, nn::Act::ReLU, nn::Act::Sigmoid, gen);
  for (auto* layer : model.linears()) {
    F w = layer->weight();
    F b = layer->bias();
    nn::init::normal_(w, 0.f, 0.01f, gen);
    nn::init::zeros_(b);
  }
  std::printf("%s", model.summary().c_str());

  optim::SGD<float> gd(model.parameters(), {.lr = flags.lr});
  for (int it = 1; it <= flags.epochs; ++it) {
    gd.zero_grad();
    auto cost = bce(model(train.x), train.y);
    cost.backward();
    gd.step();
    if (it == 1 || it % 100 == 0 || it == flags.epochs) {
      std::printf("iteration %5d  cost %.6f\n", it, cost.item());
    }
  }
  std::printf("train accuracy %.2f%%", 100 * accuracy(model, train));
  if (test.y.defined()) std::printf("  test accuracy %.2f%%", 100 * accuracy(model, test));
  std::printf("\n");
  return 0;
}
