#include "workloads.hpp"

#include <sys/resource.h>

#include <numbers>

#include <cblas.h>

#include <xgrad/data/data.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>

namespace bench {

using namespace xgrad;
using F = Tensor<float>;
using D = Tensor<double>;

std::vector<std::size_t> image_sizes() {
  return {kImageFeatures, kImageHidden, 1};
}
std::vector<std::size_t> fashion_sizes() {
  return {784, 256, 128, 10};
}
std::vector<std::size_t> wide_sizes() {
  return {1024, 1024, 1024, 10};
}
std::vector<std::size_t> pinn_sizes() {
  return {1, 32, 32, 1};
}

namespace {

template <class T>
BasicMlpInit<T> extract(const nn::MLP<T>& model) {
  BasicMlpInit<T> init;
  for (const auto* layer : model.linears()) {
    init.weights.push_back(layer->weight().value());
    init.biases.push_back(layer->bias().value());
  }
  return init;
}

}  // namespace

// ---- data and initial weights ----

Dataset image_data() {
  F x = F::rand({kImageRows, kImageFeatures}, /*seed=*/4);
  Array<float> y = Array<float>::from_shape({kImageRows, 1});
  const float* p = x.value().data();
  const std::size_t half = kImageFeatures / 2;
  for (std::size_t i = 0; i < kImageRows; ++i) {
    double first = 0, second = 0;
    for (std::size_t j = 0; j < half; ++j) first += p[i * kImageFeatures + j];
    for (std::size_t j = half; j < kImageFeatures; ++j) second += p[i * kImageFeatures + j];
    y(i, 0) = first > second ? 1.f : 0.f;
  }
  return {x, F(std::move(y))};
}

MlpInit image_init() {
  Generator gen(4);
  nn::MLP<float> model(image_sizes(), nn::Act::ReLU, nn::Act::Sigmoid, gen);
  for (auto* layer : model.linears()) {
    F w = layer->weight();
    F b = layer->bias();
    nn::init::normal_(w, 0.f, 0.01f, gen);
    nn::init::zeros_(b);
  }
  return extract(model);
}

const Dataset& fashion_data() {
  static const Dataset data = [] {
    auto set = data::load_fashion_mnist<float>();
    return Dataset{set.images, set.labels};
  }();
  return data;
}

std::vector<std::size_t> fashion_order() {
  const auto& d = fashion_data();
  data::DataLoader<float> loader(
      d.inputs, d.targets, {.batch_size = kFashionBatch, .shuffle = true, .seed = kFashionSeed});
  return loader.order(0);
}

MlpInit fashion_init() {
  Generator gen(kFashionSeed);
  return extract(nn::MLP<float>(fashion_sizes(), nn::Act::ReLU, nn::Act::Identity, gen));
}

Dataset wide_data() {
  F x = F::randn({kWideBatch, wide_sizes().front()}, /*seed=*/5);
  Generator gen(6);
  std::uniform_int_distribution<int> label(0, static_cast<int>(wide_sizes().back()) - 1);
  Array<float> y = Array<float>::from_shape({kWideBatch});
  for (auto& v : y) v = static_cast<float>(label(gen.engine()));
  return {x, F(std::move(y))};
}

MlpInit wide_init() {
  Generator gen(7);
  return extract(nn::MLP<float>(wide_sizes(), nn::Act::ReLU, nn::Act::Identity, gen));
}

BasicMlpInit<double> pinn_init() {
  Generator gen(8);
  return extract(nn::MLP<double>(pinn_sizes(), nn::Act::Tanh, nn::Act::Identity, gen));
}

Array<float> tiny_x() {
  return F::randn({kTinySide, kTinySide}, 1).value();
}
Array<float> tiny_y() {
  return F::randn({kTinySide, kTinySide}, 2).value();
}

// ---- the workloads ----

double run_smallest(int epochs) {
  // examples/smallest_network.cpp without the printing and the plot.
  const auto x = D::from({{0, 1, 0}, {0, 1, 1}, {0, 0, 0}, {1, 0, 0}, {1, 1, 1}, {1, 0, 1}});
  const auto y = D::from({{0}, {0}, {0}, {1}, {1}, {1}});
  auto w = D::full({3, 1}, 0.5).requires_grad_();
  std::vector<double> mean_abs_error;
  double last = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    auto yhat = x.matmul(w).sigmoid();
    auto error = y - yhat;
    auto loss = (error * error).sum() * 0.5;
    loss.backward();
    {
      NoGradGuard no_grad;
      w.mutable_value() -= 1.0 * w.grad().value();
      w.zero_grad();
    }
    mean_abs_error.push_back(xt::mean(xt::abs(error.value()))());
    last = loss.item();
  }
  return last;
}

double run_tiny_chain(const F& x, const F& y) {
  auto h = x * y;
  h = h + y;
  h = h.sigmoid();
  h = h * 2.0f;
  h = h - y;
  h = h.tanh();
  h = h + 1.0f;
  h = h * h;
  h = h.exp();
  auto loss = h.sum();
  loss.backward();
  return loss.item();
}

double run_image(const Dataset& data, const MlpInit& init, int steps) {
  // examples/image_classifier.cpp's training loop.
  nn::MLP<float> model(image_sizes(), nn::Act::ReLU, nn::Act::Sigmoid);
  load(model, init);
  optim::SGD<float> gd(model.parameters(), {.lr = kImageLr});
  double cost_value = 0;
  for (int it = 1; it <= steps; ++it) {
    gd.zero_grad();
    auto cost = bce(model(data.inputs), data.targets);
    cost.backward();
    gd.step();
    if (it == steps) cost_value = cost.item();
  }
  return cost_value;
}

double run_fashion_epoch(const Dataset& data, const MlpInit& init, std::size_t max_batches) {
  // examples/fashion_mnist.cpp's first epoch (its cosine schedule keeps the first epoch's rate).
  nn::MLP<float> model(fashion_sizes(), nn::Act::ReLU, nn::Act::Identity);
  load(model, init);
  optim::SGD<float> sgd(model.parameters(), {.lr = kFashionLr, .momentum = kFashionMomentum});
  data::DataLoader<float> loader(
      data.inputs, data.targets,
      {.batch_size = kFashionBatch, .shuffle = true, .seed = kFashionSeed});
  double loss_sum = 0;
  std::size_t batches = 0;
  for (const auto& batch : loader) {
    if (batches == max_batches) break;
    sgd.zero_grad();
    auto loss = cross_entropy(model(batch.inputs), batch.targets);
    loss.backward();
    sgd.step();
    loss_sum += loss.item();
    ++batches;
  }
  return loss_sum / static_cast<double>(batches);
}

double run_wide(const Dataset& data, const MlpInit& init, int steps) {
  nn::MLP<float> model(wide_sizes(), nn::Act::ReLU, nn::Act::Identity);
  load(model, init);
  optim::SGD<float> sgd(model.parameters(), {.lr = kWideLr, .momentum = kWideMomentum});
  double last = 0;
  for (int s = 0; s < steps; ++s) {
    sgd.zero_grad();
    auto loss = cross_entropy(model(data.inputs), data.targets);
    loss.backward();
    sgd.step();
    last = loss.item();
  }
  return last;
}

PinnRun::PinnRun(const BasicMlpInit<double>& init)
    : net_(pinn_sizes(), nn::Act::Tanh, nn::Act::Identity),
      x_(D::linspace(0.0, 1.0, kPinnPoints).reshape({-1, 1})),
      source_(sin(x_ * std::numbers::pi) * (-std::numbers::pi * std::numbers::pi)),
      adam_(net_.parameters(), {.lr = kPinnLr}) {
  load(net_, init);  // into the very tensors Adam holds; it has no state yet
}

double PinnRun::step() {
  // examples/pinn.cpp's residual loss: u = x (1 - x) N(x), u'' by two create_graph passes.
  adam_.zero_grad();
  auto x = x_.detach().requires_grad_();
  auto u = x * (1.0 - x) * net_(x);
  auto du = grad({u.sum()}, {x}, {.create_graph = true})[0];
  auto d2u = grad({du.sum()}, {x}, {.create_graph = true})[0];
  auto loss = mse(d2u, source_);
  loss.backward();
  adam_.step();
  return loss.item();
}

double run_pinn(const BasicMlpInit<double>& init, int steps) {
  PinnRun run(init);
  double last = 0;
  for (int s = 0; s < steps; ++s) last = run.step();
  return last;
}

// ---- cost model ----

double mlp_step_flops(const std::vector<std::size_t>& sizes, std::size_t rows) {
  double flops = 0;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const double product = 2.0 * static_cast<double>(rows * sizes[l] * sizes[l + 1]);
    flops += (l == 0 ? 2 : 3) * product;
  }
  return flops;
}

GemmFloor::GemmFloor(std::vector<std::size_t> sizes, std::size_t max_rows)
    : sizes_(std::move(sizes)) {
  // Moderate values: no overflow, no denormals, whatever the number of steps.
  for (std::size_t l = 0; l + 1 < sizes_.size(); ++l) {
    weights_.emplace_back(sizes_[l + 1] * sizes_[l], 0.01f);
    grads_.emplace_back(sizes_[l + 1] * sizes_[l], 0.f);
    deltas_.emplace_back(max_rows * sizes_[l + 1], 0.01f);
  }
  for (std::size_t l = 0; l < sizes_.size(); ++l) acts_.emplace_back(max_rows * sizes_[l], 0.5f);
}

void GemmFloor::step(std::size_t rows) {
  const int n = static_cast<int>(rows);
  const std::size_t layers = weights_.size();
  for (std::size_t l = 0; l < layers; ++l) {
    const int in = static_cast<int>(sizes_[l]);
    const int out = static_cast<int>(sizes_[l + 1]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.f, acts_[l].data(), in,
                weights_[l].data(), in, 0.f, acts_[l + 1].data(), out);
  }
  for (std::size_t l = layers; l-- > 0;) {
    const int in = static_cast<int>(sizes_[l]);
    const int out = static_cast<int>(sizes_[l + 1]);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.f, deltas_[l].data(), out,
                acts_[l].data(), in, 0.f, grads_[l].data(), in);
    if (l > 0) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.f, deltas_[l].data(),
                  out, weights_[l].data(), in, 0.f, deltas_[l - 1].data(), in);
    }
  }
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace bench
