// A convolutional network learns Fashion-MNIST: two blocks of 3x3 convolution, batch
// normalisation, ReLU and 2x2 max pooling (1 -> 16 -> 32 channels, 28x28 -> 7x7), then a
// 1568-128-10 head. Cross-entropy, SGD with momentum and a cosine learning rate, minibatches of
// 64. Prints the test accuracy after each epoch, writes the loss/accuracy plots and a safetensors
// checkpoint (parameters and BatchNorm's running statistics, under PyTorch's names).

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include <xgrad/data/data.hpp>
#include <xgrad/io/safetensors.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/viz/progress.hpp>
#include <xgrad/xgrad.hpp>

#include "common.hpp"

namespace {

using namespace xgrad;
using F = Tensor<float>;

// [N, 784] rows as [N, 1, 28, 28] images.
F as_images(const F& rows) {
  return rows.reshape({-1, 1, 28, 28});
}

nn::Sequential<float> make_model(Generator& gen) {
  nn::Sequential<float> net;
  for (auto [in, out] : {std::pair{1, 16}, std::pair{16, 32}}) {
    net.push_back(nn::Conv2d<float>(in, out, 3, {.padding = 1, .bias = false}, gen));
    net.push_back(nn::BatchNorm2d<float>(out));
    net.push_back(nn::ReLU<float>());
    net.push_back(nn::MaxPool2d<float>(2));
  }
  net.push_back(nn::Flatten<float>());
  net.push_back(nn::Linear<float>(32 * 7 * 7, 128, true, gen));
  net.push_back(nn::ReLU<float>());
  net.push_back(nn::Linear<float>(128, 10, true, gen));
  return net;
}

// Accuracy in evaluation mode, in slices so that the unfolded images stay small.
double accuracy(nn::Module<float>& model, const data::FashionMnist<float>& set) {
  NoGradGuard no_grad;
  model.eval();
  const std::size_t n = set.labels.numel();
  std::size_t correct = 0;
  for (std::size_t start = 0; start < n; start += 500) {
    const auto end = static_cast<std::int64_t>(std::min(n, start + 500));
    const auto s = static_cast<std::int64_t>(start);
    const auto predicted = argmax(model(as_images(set.images.slice(0, s, end))), 1).value();
    const auto labels = set.labels.slice(0, s, end).value();
    for (std::size_t i = 0; i < predicted.size(); ++i) correct += predicted(i) == labels(i);
  }
  model.train();
  return n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Fashion-MNIST: a small CNN (conv-BN-ReLU-pool x2, 128-unit head), SGD"};
  examples::Flags flags{10, 0.05, 64};
  examples::add_common_flags(app, flags);
  double momentum = 0.9;
  std::size_t limit = 0;
  std::string data_dir = data::kFashionMnistDir;
  app.add_option("--momentum", momentum, "SGD momentum")->capture_default_str();
  app.add_option("--limit", limit, "use only the first N training images (0: all)");
  app.add_option("--data", data_dir, "folder of the Fashion-MNIST IDX files")
      ->capture_default_str();
  bool profile = false;
  app.add_flag("--profile", profile,
               "profile the first epoch: time per op, products and their GEMM floor");
  CLI11_PARSE(app, argc, argv);
  const auto out = examples::prepare(flags);

  const auto train = data::load_fashion_mnist<float>(data_dir, true, limit);
  const auto test = data::load_fashion_mnist<float>(data_dir, false, limit ? limit / 6 : 0);
  std::printf("Fashion-MNIST: %zu training and %zu test images, %d thread(s)\n",
              train.labels.numel(), test.labels.numel(), get_num_threads());

  Generator gen(flags.seed);
  auto model = make_model(gen);
  std::printf("%s", model.summary().c_str());
  optim::SGD<float> sgd(model.parameters(), {.lr = flags.lr, .momentum = momentum});
  optim::CosineAnnealingLR<float> schedule(sgd, flags.epochs);
  data::DataLoader<float> loader(
      train.images, train.labels,
      {.batch_size = flags.batch_size, .shuffle = true, .seed = flags.seed});

  std::vector<double> epoch_loss, test_accuracy;
  for (int epoch = 1; epoch <= flags.epochs; ++epoch) {
    viz::ProgressBar bar(loader.size(), "epoch " + std::to_string(epoch));
    double loss_sum = 0;
    std::size_t seen = 0, batches = 0;
    std::optional<profiler::Profile> prof;
    if (profile && epoch == 1) prof.emplace();
    for (const auto& batch : loader) {
      sgd.zero_grad();
      auto loss = cross_entropy(model(as_images(batch.inputs)), batch.targets);
      loss.backward();
      sgd.step();
      loss_sum += loss.item();
      seen += batch.targets.numel();
      ++batches;
      bar.update(batches, loss_sum / static_cast<double>(batches), seen);
    }
    if (prof) examples::print_profile(*prof, epoch, batches, 24);
    schedule.step();
    epoch_loss.push_back(loss_sum / static_cast<double>(batches));
    test_accuracy.push_back(accuracy(model, test));
    char summary[96];
    std::snprintf(summary, sizeof summary, "test accuracy %.2f%%", 100 * test_accuracy.back());
    bar.finish(summary);
  }
  if (test_accuracy.empty()) return 0;
  std::printf("final test accuracy %.2f%%\n", 100 * test_accuracy.back());

  std::vector<double> epochs;
  for (std::size_t e = 1; e <= epoch_loss.size(); ++e) epochs.push_back(static_cast<double>(e));
  viz::line_plot_svg((out / "fashion_mnist_cnn_loss.svg").string(),
                     {{"training loss", epochs, epoch_loss}},
                     {"Fashion-MNIST CNN: training loss", "epoch", "cross-entropy"});
  viz::line_plot_svg((out / "fashion_mnist_cnn_accuracy.svg").string(),
                     {{"test accuracy", epochs, test_accuracy}},
                     {"Fashion-MNIST CNN: test accuracy", "epoch", "accuracy"});
  const auto checkpoint = out / "fashion_mnist_cnn.safetensors";
  io::save(model, checkpoint.string());
  std::printf("wrote %s, %s and %s\n", (out / "fashion_mnist_cnn_loss.svg").c_str(),
              (out / "fashion_mnist_cnn_accuracy.svg").c_str(), checkpoint.c_str());
  return 0;
}
