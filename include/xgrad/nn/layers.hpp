#pragma once
// Layers: Linear, Sequential, activations (ReLU, Tanh, ... as types), Softmax, Flatten, Dropout,
// and MLP for any list of layer sizes.

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xgrad/error.hpp>
#include <xgrad/nn/module.hpp>
#include <xgrad/ops.hpp>

namespace xgrad::nn {

/// y = x W^T + b with W [out, in] and b [out] (PyTorch's layout), one fused op. Initialised as
/// PyTorch does: W and b ~ U(-1/sqrt(in), 1/sqrt(in)).
template <class T>
class Linear : public Module<T> {
 public:
  /// A layer mapping [..., in_features] to [..., out_features], drawn from `gen`.
  Linear(std::size_t in_features, std::size_t out_features, bool bias = true,
         Generator& gen = default_generator());
  /// linear(input, weight, bias).
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "Linear(in_features=784, out_features=256, bias=true)".
  std::string describe() const override;
  /// W, [out_features, in_features]: a handle sharing the parameter
  /// (init::xavier_uniform_(fc.weight())).
  Tensor<T> weight() const { return weight_; }
  /// b, [out_features], a handle sharing the parameter; undefined when the layer has no bias.
  Tensor<T> bias() const { return bias_; }
  /// Size of the last input dim.
  std::size_t in_features() const { return in_; }
  /// Size of the last output dim.
  std::size_t out_features() const { return out_; }

 private:
  std::size_t in_, out_;
  Tensor<T> weight_;  // handles share their value with the registered parameters
  Tensor<T> bias_;
};

namespace detail {
/// What a container accepts as a module: a shared pointer or Handle to one, or a module value
/// (moved in).
template <class X, class T>
concept ModuleArg = std::convertible_to<X, std::shared_ptr<Module<T>>> ||
    (std::derived_from<std::remove_cvref_t<X>, Module<T>> && !std::is_lvalue_reference_v<X>);
}  // namespace detail

/// Applies its children in order. Children are named "0", "1", ...
template <class T>
class Sequential : public Module<T> {
 public:
  /// An empty container (push_back adds modules).
  Sequential() = default;
  /// The modules, in order.
  Sequential(std::initializer_list<std::shared_ptr<Module<T>>> modules);
  /// The modules, in order, each a module value, a std::shared_ptr or a Handle:
  /// `Sequential<float>{Linear<float>(2, 8), ReLU<float>(), Linear<float>(8, 1)}`.
  template <class... Ms>
  requires(sizeof...(Ms) > 0 &&
           (detail::ModuleArg<Ms, T> && ...)) explicit Sequential(Ms&&... modules) {
    (push_back(std::forward<Ms>(modules)), ...);
  }
  /// Appends a module; returns *this for chaining.
  Sequential& push_back(std::shared_ptr<Module<T>> module);
  /// Appends a module value (moved in) or the module of a Handle.
  template <class M>
  requires detail::ModuleArg<M, T> Sequential& push_back(M&& module) {
    if constexpr (std::convertible_to<M, std::shared_ptr<Module<T>>>) {
      return push_back(std::shared_ptr<Module<T>>(std::forward<M>(module)));
    } else {
      return push_back(std::shared_ptr<Module<T>>(
          std::make_shared<std::remove_cvref_t<M>>(std::forward<M>(module))));
    }
  }
  /// Each child applied to the previous one's output.
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "Sequential".
  std::string describe() const override { return "Sequential"; }
  /// Number of children.
  std::size_t size() const { return this->children().size(); }
  /// Child i; throws std::out_of_range past the end.
  Module<T>& operator[](std::size_t i) { return *this->children().at(i).second; }
};

/// Activation functions by name, for MLP and the Activation module.
enum class Act {
  Identity,    ///< x
  ReLU,        ///< max(x, 0)
  LeakyReLU,   ///< x > 0 ? x : slope * x
  Sigmoid,     ///< 1 / (1 + e^-x)
  Tanh,        ///< tanh(x)
  Softmax,     ///< softmax over the last dim
  LogSoftmax,  ///< log_softmax over the last dim
  Step,        ///< x > 0 ? 1 : 0 (zero gradient)
  GELU,        ///< x Phi(x), the exact form
  SiLU,        ///< x * sigmoid(x)
  Softplus,    ///< log(1 + e^x), x above 20
};

/// An activation as a module (no parameters). Softmax/LogSoftmax act on the last dim.
template <class T>
class Activation : public Module<T> {
 public:
  /// The activation `kind`; negative_slope is used by LeakyReLU only.
  explicit Activation(Act kind, T negative_slope = T(0.01)) : kind_(kind), slope_(negative_slope) {}
  /// The activation applied elementwise (or along the last dim).
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "ReLU()", "LeakyReLU(negative_slope=0.010000)", "Softmax(dim=-1)", ...
  std::string describe() const override;
  /// Which activation this is.
  Act kind() const { return kind_; }

 private:
  Act kind_;
  T slope_;
};

// The activations under their torch::nn names: `nn::ReLU<float> act; act(x)`.

/// x, as torch::nn::Identity.
template <class T>
class Identity : public Activation<T> {
 public:
  /// The identity.
  Identity() : Activation<T>(Act::Identity) {}
};
/// max(x, 0), as torch::nn::ReLU.
template <class T>
class ReLU : public Activation<T> {
 public:
  /// A ReLU.
  ReLU() : Activation<T>(Act::ReLU) {}
};
/// 1 / (1 + e^-x), as torch::nn::Sigmoid.
template <class T>
class Sigmoid : public Activation<T> {
 public:
  /// A sigmoid.
  Sigmoid() : Activation<T>(Act::Sigmoid) {}
};
/// tanh(x), as torch::nn::Tanh.
template <class T>
class Tanh : public Activation<T> {
 public:
  /// A tanh.
  Tanh() : Activation<T>(Act::Tanh) {}
};
/// x > 0 ? x : negative_slope * x, as torch::nn::LeakyReLU.
template <class T>
class LeakyReLU : public Activation<T> {
 public:
  /// A leaky ReLU with the given slope for negative inputs.
  explicit LeakyReLU(T negative_slope = T(0.01)) : Activation<T>(Act::LeakyReLU, negative_slope) {}
};

/// x * sigmoid(x), as torch::nn::SiLU.
template <class T>
class SiLU : public Activation<T> {
 public:
  /// A SiLU.
  SiLU() : Activation<T>(Act::SiLU) {}
};

/// gelu(x, approximate), as torch::nn::GELU.
template <class T>
class GELU : public Module<T> {
 public:
  /// The exact GELU, or its tanh form when approximate.
  explicit GELU(bool approximate = false) : approximate_(approximate) {}
  /// PyTorch's spelling: approximate "none" or "tanh" (ValueError otherwise).
  explicit GELU(const char* approximate) : approximate_(is_tanh(approximate)) {}
  /// gelu(input, approximate).
  Tensor<T> forward(const Tensor<T>& input) override { return gelu(input, approximate_); }
  /// "GELU(approximate='none')" or "GELU(approximate='tanh')".
  std::string describe() const override {
    return std::string("GELU(approximate='") + (approximate_ ? "tanh" : "none") + "')";
  }

 private:
  static bool is_tanh(const char* approximate) {
    const std::string form = approximate ? approximate : "(null)";
    if (form != "none" && form != "tanh") {
      throw ValueError("xgrad::nn::GELU: approximate must be \"none\" or \"tanh\", got \"" + form +
                       "\"");
    }
    return form == "tanh";
  }
  bool approximate_;
};

/// softplus(x, beta, threshold), as torch::nn::Softplus.
template <class T>
class Softplus : public Module<T> {
 public:
  /// log(1 + e^(beta x)) / beta, and x where beta x > threshold.
  explicit Softplus(T beta = T(1), T threshold = T(20)) : beta_(beta), threshold_(threshold) {}
  /// softplus(input, beta, threshold).
  Tensor<T> forward(const Tensor<T>& input) override { return softplus(input, beta_, threshold_); }
  /// "Softplus(beta=1.000000, threshold=20.000000)".
  std::string describe() const override {
    return "Softplus(beta=" + std::to_string(beta_) + ", threshold=" + std::to_string(threshold_) +
           ")";
  }

 private:
  T beta_, threshold_;
};

/// softmax(x, dim), as torch::nn::Softmax.
template <class T>
class Softmax : public Module<T> {
 public:
  /// Normalises along `dim` (negative counts from the end).
  explicit Softmax(int dim) : dim_(dim) {}
  /// softmax(input, dim).
  Tensor<T> forward(const Tensor<T>& input) override { return softmax(input, dim_); }
  /// "Softmax(dim=1)".
  std::string describe() const override { return "Softmax(dim=" + std::to_string(dim_) + ")"; }

 private:
  int dim_;
};

/// log_softmax(x, dim), as torch::nn::LogSoftmax.
template <class T>
class LogSoftmax : public Module<T> {
 public:
  /// Normalises along `dim` (negative counts from the end).
  explicit LogSoftmax(int dim) : dim_(dim) {}
  /// log_softmax(input, dim).
  Tensor<T> forward(const Tensor<T>& input) override { return log_softmax(input, dim_); }
  /// "LogSoftmax(dim=1)".
  std::string describe() const override { return "LogSoftmax(dim=" + std::to_string(dim_) + ")"; }

 private:
  int dim_;
};

/// flatten(x, start_dim, end_dim), as torch::nn::Flatten: by default [N, ...] -> [N, rest].
template <class T>
class Flatten : public Module<T> {
 public:
  /// Merges dims start_dim..end_dim (the batch dim 0 stays by default).
  explicit Flatten(int start_dim = 1, int end_dim = -1) : start_(start_dim), end_(end_dim) {}
  /// flatten(input, start_dim, end_dim).
  Tensor<T> forward(const Tensor<T>& input) override { return flatten(input, start_, end_); }
  /// "Flatten(start_dim=1, end_dim=-1)".
  std::string describe() const override {
    return "Flatten(start_dim=" + std::to_string(start_) + ", end_dim=" + std::to_string(end_) +
           ")";
  }

 private:
  int start_, end_;
};

/// Zeroes each element with probability p in training mode and scales the rest by 1 / (1 - p);
/// the identity in evaluation mode. As torch.nn.Dropout, masks come from the global generator
/// (default_generator() of the thread calling forward), so manual_seed makes a run repeatable
/// and two Dropout layers draw different masks; a seed or a Generator gives the layer its own.
template <class T>
class Dropout : public Module<T> {
 public:
  /// Drops with probability p in [0, 1) (ValueError otherwise), drawing from the global generator.
  explicit Dropout(T p = T(0.5));
  /// Draws from a generator of its own, seeded with `seed`.
  Dropout(T p, std::uint64_t seed);
  /// Draws from `gen`, which must outlive the layer.
  Dropout(T p, Generator& gen);
  /// input * mask / (1 - p) in training mode, input in evaluation mode.
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "Dropout(p=0.500000)".
  std::string describe() const override;
  /// The generator the next mask comes from (the layer's own, the one given, or the calling
  /// thread's default_generator()); save its state to resume a run exactly.
  Generator& generator();

 private:
  T p_;
  std::unique_ptr<Generator> own_;  // set when seeded
  Generator* gen_ = nullptr;        // null: the global generator
};

/// Fully connected network: Linear(sizes[0], sizes[1]), act, ..., Linear(sizes[n-2], sizes[n-1]),
/// output act. A Sequential, so parameters are named "0.weight", "0.bias", "2.weight", ...
template <class T>
class MLP : public Sequential<T> {
 public:
  /// Layers of the given sizes (at least two: input and output), `hidden` after every Linear but
  /// the last, `output` after the last; weights drawn from `gen`.
  MLP(const std::vector<std::size_t>& sizes, Act hidden = Act::ReLU, Act output = Act::Identity,
      Generator& gen = default_generator());
  /// "MLP(784-256-10)".
  std::string describe() const override;
  /// The Linear layers in order.
  std::vector<Linear<T>*> linears() const { return linears_; }

 private:
  std::vector<std::size_t> sizes_;
  std::vector<Linear<T>*> linears_;
};

}  // namespace xgrad::nn
