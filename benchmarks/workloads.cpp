#include "workloads.hpp"

#include <sys/resource.h>

#include <numbers>
#include <random>

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

const Dataset& cnn_data() {
  static const Dataset data = [] {
    auto set = data::load_fashion_mnist<float>(data::kFashionMnistDir, true, kCnnImages);
    return Dataset{set.images, set.labels};
  }();
  return data;
}

std::vector<std::size_t> cnn_order() {
  const auto& d = cnn_data();
  data::DataLoader<float> loader(
      d.inputs, d.targets, {.batch_size = kFashionBatch, .shuffle = true, .seed = kFashionSeed});
  return loader.order(0);
}

template <class T>
nn::Sequential<T> make_cnn(Generator& gen) {
  // examples/fashion_mnist_cnn.cpp's make_model.
  nn::Sequential<T> net;
  for (auto [in, out] : {std::pair{1, 16}, std::pair{16, 32}}) {
    net.push_back(nn::Conv2d<T>(in, out, 3, {.padding = 1, .bias = false}, gen));
    net.push_back(nn::BatchNorm2d<T>(out));
    net.push_back(nn::ReLU<T>());
    net.push_back(nn::MaxPool2d<T>(2));
  }
  net.push_back(nn::Flatten<T>());
  net.push_back(nn::Linear<T>(32 * 7 * 7, 128, true, gen));
  net.push_back(nn::ReLU<T>());
  net.push_back(nn::Linear<T>(128, 10, true, gen));
  return net;
}
template nn::Sequential<float> make_cnn<float>(Generator&);
template nn::Sequential<double> make_cnn<double>(Generator&);

namespace {

NamedInit extract_named(const nn::Module<float>& model) {
  NamedInit init;
  for (const auto& [name, p] : model.named_parameters()) init.emplace_back(name, p.value());
  return init;
}

// examples/char_transformer.cpp's pre-norm block: x + attn(ln1(x)), then + mlp(ln2(x)).
class Block : public nn::Module<float> {
 public:
  explicit Block(Generator& gen) {
    const auto w = static_cast<std::size_t>(kTransformerWidth);
    ln1_ = register_module("ln1", nn::LayerNorm<float>({w}));
    attn_ = register_module(
        "attn",
        nn::MultiheadAttention<float>(kTransformerWidth, kTransformerHeads, {.causal = true}, gen));
    ln2_ = register_module("ln2", nn::LayerNorm<float>({w}));
    fc1_ = register_module("fc1", nn::Linear<float>(w, 4 * w, true, gen));
    fc2_ = register_module("fc2", nn::Linear<float>(4 * w, w, true, gen));
  }
  F forward(const F& x) override {
    const F h = x + attn_(ln1_(x));
    return h + fc2_(gelu(fc1_(ln2_(h))));
  }

 private:
  nn::Handle<nn::LayerNorm<float>> ln1_, ln2_;
  nn::Handle<nn::MultiheadAttention<float>> attn_;
  nn::Handle<nn::Linear<float>> fc1_, fc2_;
};

}  // namespace

NamedInit cnn_init() {
  Generator gen(kFashionSeed);
  return extract_named(make_cnn<float>(gen));
}

CharTransformer::CharTransformer(Generator& gen) {
  tokens_ =
      register_module("tok_emb", nn::Embedding<float>(kTransformerVocab, kTransformerWidth, gen));
  positions_ =
      register_module("pos_emb", nn::Embedding<float>(kTransformerContext, kTransformerWidth, gen));
  for (std::int64_t b = 0; b < kTransformerBlocks; ++b) {
    blocks_.emplace_back(register_module("block" + std::to_string(b), Block(gen)).ptr());
  }
  const auto w = static_cast<std::size_t>(kTransformerWidth);
  ln_ = register_module("ln_f", nn::LayerNorm<float>({w}));
  head_ = register_module(
      "head", nn::Linear<float>(w, static_cast<std::size_t>(kTransformerVocab), true, gen));
}

F CharTransformer::forward(const F& idx) {
  const auto t = static_cast<std::int64_t>(idx.size(1));
  std::vector<std::int64_t> pos(static_cast<std::size_t>(t));
  for (std::int64_t i = 0; i < t; ++i) pos[static_cast<std::size_t>(i)] = i;
  F x = tokens_(idx) + embedding(pos, positions_->weight());
  for (auto& b : blocks_) x = (*b)(x);
  return head_(ln_(x));
}

NamedInit transformer_init() {
  Generator gen(kTransformerSeed);
  return extract_named(CharTransformer(gen));
}

const std::vector<TokenBatch>& transformer_batches() {
  static const std::vector<TokenBatch> batches = [] {
    std::mt19937_64 rng(9);
    std::uniform_int_distribution<int> letter(1, static_cast<int>(kTransformerVocab) - 1);
    std::uniform_int_distribution<int> length(2, 8);
    std::vector<std::vector<int>> words(64);
    for (auto& w : words) {
      const int n = length(rng);
      for (int i = 0; i < n; ++i) w.push_back(letter(rng));
    }
    std::uniform_int_distribution<std::size_t> pick(0, words.size() - 1);
    std::vector<int> stream{0};
    while (stream.size() < 8192) {
      const auto& w = words[pick(rng)];
      stream.insert(stream.end(), w.begin(), w.end());
      stream.push_back(0);
    }
    const auto t = static_cast<std::size_t>(kTransformerContext);
    std::uniform_int_distribution<std::size_t> start(0, stream.size() - t - 2);
    std::vector<TokenBatch> out;
    for (int s = 0; s < kTransformerSteps; ++s) {
      TokenBatch b{Array<float>::from_shape({kTransformerBatch, t}), {}};
      for (std::size_t i = 0; i < kTransformerBatch; ++i) {
        const std::size_t first = start(rng);
        for (std::size_t j = 0; j < t; ++j) {
          b.inputs(i, j) = static_cast<float>(stream[first + j]);
          b.targets.push_back(stream[first + j + 1]);
        }
      }
      out.push_back(std::move(b));
    }
    return out;
  }();
  return batches;
}

template <class T>
void load(nn::Module<T>& model, const NamedInit& init) {
  const auto params = model.named_parameters();
  if (params.size() != init.size()) {
    throw ValueError("bench::load: " + std::to_string(init.size()) + " tensors for " +
                     std::to_string(params.size()) + " parameters");
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (params[i].first != init[i].first ||
        params[i].second.value().shape() != init[i].second.shape()) {
      throw ValueError("bench::load: parameter " + params[i].first + " does not match " +
                       init[i].first);
    }
    Tensor<T> p = params[i].second;
    p.mutable_value() = xt::cast<T>(init[i].second);
  }
}
template void load<float>(nn::Module<float>&, const NamedInit&);
template void load<double>(nn::Module<double>&, const NamedInit&);

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

namespace {

template <class T>
double cnn_loop(const Tensor<T>& inputs, const Tensor<T>& targets, const NamedInit& init,
                std::size_t max_batches) {
  // examples/fashion_mnist_cnn.cpp's training loop over the first kCnnImages images.
  auto model = make_cnn<T>();
  load(model, init);
  optim::SGD<T> sgd(model.parameters(), {.lr = kFashionLr, .momentum = kFashionMomentum});
  data::DataLoader<T> loader(inputs, targets,
                             {.batch_size = kFashionBatch, .shuffle = true, .seed = kFashionSeed});
  double loss_sum = 0;
  std::size_t batches = 0;
  for (const auto& batch : loader) {
    if (batches == max_batches) break;
    sgd.zero_grad();
    auto loss = cross_entropy(model(batch.inputs.reshape({-1, 1, 28, 28})), batch.targets);
    loss.backward();
    sgd.step();
    loss_sum += loss.item();
    ++batches;
  }
  return loss_sum / static_cast<double>(batches);
}

}  // namespace

double run_cnn(const Dataset& data, const NamedInit& init, std::size_t max_batches) {
  return cnn_loop(data.inputs, data.targets, init, max_batches);
}

double run_cnn_float64(const Dataset& data, const NamedInit& init, std::size_t max_batches) {
  const D inputs(Array<double>(xt::cast<double>(data.inputs.value())));
  const D targets(Array<double>(xt::cast<double>(data.targets.value())));
  return cnn_loop(inputs, targets, init, max_batches);
}

TransformerRun::TransformerRun(const NamedInit& init)
    : opt_(model_.parameters(), {.lr = kTransformerLr, .weight_decay = kTransformerWeightDecay}) {
  load(model_, init);  // into the very tensors AdamW holds; it has no state yet
}

double TransformerRun::step() {
  // examples/char_transformer.cpp's training step (without its cosine schedule).
  const auto& batches = transformer_batches();
  const auto& batch = batches[next_++ % batches.size()];
  opt_.zero_grad();
  F loss = cross_entropy(model_(F(batch.inputs)).reshape({-1, kTransformerVocab}), batch.targets);
  loss.backward();
  opt_.step();
  return loss.item();
}

double run_transformer(const NamedInit& init, int steps) {
  TransformerRun run(init);
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

double cnn_step_flops(std::size_t rows) {
  const double n = static_cast<double>(rows);
  // conv1: [n*28*28, 9] x [9, 16]; conv2: [n*14*14, 144] x [144, 32] (unfolded images).
  const double conv1 = 2.0 * n * 28 * 28 * 9 * 16;
  const double conv2 = 2.0 * n * 14 * 14 * 144 * 32;
  const double fc1 = 2.0 * n * 1568 * 128;
  const double fc2 = 2.0 * n * 128 * 10;
  return 2 * conv1 + 3 * (conv2 + fc1 + fc2);
}

double transformer_step_flops() {
  const double rows = static_cast<double>(kTransformerBatch * kTransformerContext);
  const double e = static_cast<double>(kTransformerWidth);
  const double t = static_cast<double>(kTransformerContext);
  // Per block: in-projection E -> 3E, Q K^T and P V (T x T per window and head, E wide in all),
  // out-projection, E -> 4E -> E; then the read-out E -> 27.
  const double block = 2.0 * rows * (3 * e * e + 2 * t * e + e * e + 8 * e * e);
  const double head = 2.0 * rows * e * static_cast<double>(kTransformerVocab);
  return 3 * (static_cast<double>(kTransformerBlocks) * block + head);
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
