#pragma once
// Layers: Linear, Sequential, activations, Dropout, and MLP for any list of layer sizes.

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <xgrad/nn/module.hpp>
#include <xgrad/ops.hpp>

namespace xgrad::nn {

/// y = x W^T + b with W [out, in] and b [out] (PyTorch's layout), one fused op. Initialised as
/// PyTorch does: W and b ~ U(-1/sqrt(in), 1/sqrt(in)).
template <class T>
class Linear : public Module<T> {
 public:
  Linear(std::size_t in_features, std::size_t out_features, bool bias = true,
         Generator& gen = default_generator());
  Tensor<T> forward(const Tensor<T>& input) override;
  std::string describe() const override;
  const Tensor<T>& weight() const { return weight_; }
  /// Undefined when the layer has no bias.
  const Tensor<T>& bias() const { return bias_; }
  std::size_t in_features() const { return in_; }
  std::size_t out_features() const { return out_; }

 private:
  std::size_t in_, out_;
  Tensor<T> weight_;  // handles share their value with the registered parameters
  Tensor<T> bias_;
};

/// Applies its children in order. Children are named "0", "1", ...
template <class T>
class Sequential : public Module<T> {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module<T>>> modules);
  /// Appends a module; returns *this for chaining.
  Sequential& push_back(std::shared_ptr<Module<T>> module);
  Tensor<T> forward(const Tensor<T>& input) override;
  std::string describe() const override { return "Sequential"; }
  std::size_t size() const { return this->children().size(); }
  Module<T>& operator[](std::size_t i) { return *this->children().at(i).second; }
};

/// Activation functions by name, for MLP and the Activation module.
enum class Act { Identity, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax, Step };

/// An activation as a module (no parameters). Softmax/LogSoftmax act on the last dim.
template <class T>
class Activation : public Module<T> {
 public:
  explicit Activation(Act kind, T negative_slope = T(0.01)) : kind_(kind), slope_(negative_slope) {}
  Tensor<T> forward(const Tensor<T>& input) override;
  std::string describe() const override;
  Act kind() const { return kind_; }

 private:
  Act kind_;
  T slope_;
};

template <class T>
std::shared_ptr<Activation<T>> ReLU() {
  return std::make_shared<Activation<T>>(Act::ReLU);
}
template <class T>
std::shared_ptr<Activation<T>> Sigmoid() {
  return std::make_shared<Activation<T>>(Act::Sigmoid);
}
template <class T>
std::shared_ptr<Activation<T>> Tanh() {
  return std::make_shared<Activation<T>>(Act::Tanh);
}
template <class T>
std::shared_ptr<Activation<T>> LeakyReLU(T negative_slope = T(0.01)) {
  return std::make_shared<Activation<T>>(Act::LeakyReLU, negative_slope);
}

/// Zeroes each element with probability p in training mode and scales the rest by 1 / (1 - p);
/// the identity in evaluation mode.
template <class T>
class Dropout : public Module<T> {
 public:
  explicit Dropout(T p = T(0.5), std::uint64_t seed = 0);
  Tensor<T> forward(const Tensor<T>& input) override;
  std::string describe() const override;

 private:
  T p_;
  Generator gen_;
};

/// Fully connected network: Linear(sizes[0], sizes[1]), act, ..., Linear(sizes[n-2], sizes[n-1]),
/// output act. A Sequential, so parameters are named "0.weight", "0.bias", "2.weight", ...
template <class T>
class MLP : public Sequential<T> {
 public:
  MLP(const std::vector<std::size_t>& sizes, Act hidden = Act::ReLU, Act output = Act::Identity,
      Generator& gen = default_generator());
  std::string describe() const override;
  /// The Linear layers in order.
  std::vector<Linear<T>*> linears() const { return linears_; }

 private:
  std::vector<std::size_t> sizes_;
  std::vector<Linear<T>*> linears_;
};

}  // namespace xgrad::nn
