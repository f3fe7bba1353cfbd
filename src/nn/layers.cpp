#include <cmath>
#include <random>

#include <xgrad/nn/init.hpp>
#include <xgrad/nn/layers.hpp>

namespace xgrad::nn {

// ---- Linear ----

template <class T>
Linear<T>::Linear(std::size_t in_features, std::size_t out_features, bool bias, Generator& gen)
    : in_(in_features), out_(out_features) {
  if (in_features == 0 || out_features == 0) {
    throw ValueError("xgrad::nn::Linear: in_features " + std::to_string(in_features) +
                     " and out_features " + std::to_string(out_features) + " must be positive");
  }
  // PyTorch's default: kaiming_uniform(a = sqrt(5)) for W, which is U(-1/sqrt(in), 1/sqrt(in)),
  // and the same bound for b.
  const T bound = T(1) / std::sqrt(static_cast<T>(in_features));
  weight_ = this->register_parameter("weight", Tensor<T>(Array<T>::from_shape({out_, in_})));
  init::uniform_(weight_, -bound, bound, gen);
  if (bias) {
    bias_ = this->register_parameter("bias", Tensor<T>(Array<T>::from_shape({out_})));
    init::uniform_(bias_, -bound, bound, gen);
  }
}

template <class T>
Tensor<T> Linear<T>::forward(const Tensor<T>& input) {
  return linear(input, weight_, bias_);
}

template <class T>
std::string Linear<T>::describe() const {
  return "Linear(in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
         ", bias=" + (bias_.defined() ? "true" : "false") + ")";
}

// ---- Sequential ----

template <class T>
Sequential<T>::Sequential(std::initializer_list<std::shared_ptr<Module<T>>> modules) {
  for (const auto& m : modules) push_back(m);
}

template <class T>
Sequential<T>& Sequential<T>::push_back(std::shared_ptr<Module<T>> module) {
  if (!module) throw ValueError("xgrad::nn::Sequential: cannot add a null module");
  this->register_module(std::to_string(this->children().size()), std::move(module));
  return *this;
}

template <class T>
Tensor<T> Sequential<T>::forward(const Tensor<T>& input) {
  Tensor<T> x = input;
  for (const auto& [_, child] : this->children()) x = child->forward(x);
  return x;
}

// ---- Activation ----

template <class T>
Tensor<T> Activation<T>::forward(const Tensor<T>& x) {
  switch (kind_) {
    case Act::Identity:
      return x;
    case Act::ReLU:
      return relu(x);
    case Act::LeakyReLU:
      return leaky_relu(x, slope_);
    case Act::Sigmoid:
      return sigmoid(x);
    case Act::Tanh:
      return tanh(x);
    case Act::Softmax:
      return softmax(x, -1);
    case Act::LogSoftmax:
      return log_softmax(x, -1);
    case Act::Step:
      return step(x);
    case Act::GELU:
      return gelu(x);
    case Act::SiLU:
      return silu(x);
    case Act::Softplus:
      return softplus(x);
  }
  throw ValueError("xgrad::nn::Activation: unknown activation");
}

template <class T>
std::string Activation<T>::describe() const {
  switch (kind_) {
    case Act::Identity:
      return "Identity()";
    case Act::ReLU:
      return "ReLU()";
    case Act::LeakyReLU:
      return "LeakyReLU(negative_slope=" + std::to_string(slope_) + ")";
    case Act::Sigmoid:
      return "Sigmoid()";
    case Act::Tanh:
      return "Tanh()";
    case Act::Softmax:
      return "Softmax(dim=-1)";
    case Act::LogSoftmax:
      return "LogSoftmax(dim=-1)";
    case Act::Step:
      return "Step()";
    case Act::GELU:
      return "GELU(approximate='none')";
    case Act::SiLU:
      return "SiLU()";
    case Act::Softplus:
      return "Softplus(beta=1.000000, threshold=20.000000)";
  }
  return "Activation()";
}

// ---- Dropout ----

template <class T>
Dropout<T>::Dropout(T p) : p_(p) {
  if (!(p >= T(0) && p < T(1))) {
    throw ValueError("xgrad::nn::Dropout: probability " + std::to_string(p) + " must be in [0, 1)");
  }
}

template <class T>
Dropout<T>::Dropout(T p, std::uint64_t seed) : Dropout(p) {
  own_ = std::make_unique<Generator>(seed);
  gen_ = own_.get();
}

template <class T>
Dropout<T>::Dropout(T p, Generator& gen) : Dropout(p) {
  gen_ = &gen;
}

template <class T>
Generator& Dropout<T>::generator() {
  // Looked up at each call, not kept: the default generator is per thread.
  return gen_ ? *gen_ : default_generator();
}

template <class T>
Tensor<T> Dropout<T>::forward(const Tensor<T>& input) {
  return dropout(input, static_cast<double>(p_), this->is_training(), generator());
}

template <class T>
std::string Dropout<T>::describe() const {
  return "Dropout(p=" + std::to_string(p_) + ")";
}

// ---- MLP ----

template <class T>
MLP<T>::MLP(const std::vector<std::size_t>& sizes, Act hidden, Act output, Generator& gen)
    : sizes_(sizes) {
  if (sizes.size() < 2) {
    throw ValueError("xgrad::nn::MLP: needs at least an input and an output size, got " +
                     std::to_string(sizes.size()) + " sizes");
  }
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    auto layer = std::make_shared<Linear<T>>(sizes[i], sizes[i + 1], true, gen);
    linears_.push_back(layer.get());
    this->push_back(layer);
    const Act act = i + 2 < sizes.size() ? hidden : output;
    if (act != Act::Identity) this->push_back(std::make_shared<Activation<T>>(act));
  }
}

template <class T>
std::string MLP<T>::describe() const {
  std::string s = "MLP(";
  for (std::size_t i = 0; i < sizes_.size(); ++i) {
    if (i) s += '-';
    s += std::to_string(sizes_[i]);
  }
  return s + ")";
}

#define XGRAD_INSTANTIATE_LAYERS(T) \
  template class Linear<T>;         \
  template class Sequential<T>;     \
  template class Activation<T>;     \
  template class Dropout<T>;        \
  template class MLP<T>;

XGRAD_INSTANTIATE_LAYERS(float)
XGRAD_INSTANTIATE_LAYERS(double)

}  // namespace xgrad::nn
