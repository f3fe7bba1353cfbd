#pragma once
// Modules: objects that own parameters and sub-modules and map a tensor to a tensor, as in
// torch.nn. Parameters are named by dotted paths ("0.weight", "encoder.fc1.bias") that are
// stable across runs, so checkpoints can be matched by name.

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad::nn {

/// Base of every layer and model: owns named parameters and child modules and maps a tensor to
/// a tensor (torch::nn::Module). Derive from it, register parameters and children in the
/// constructor, and override forward() and describe().
template <class T>
class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// The module's computation.
  virtual Tensor<T> forward(const Tensor<T>& input) = 0;
  /// forward(input), so that a module is called like a function.
  Tensor<T> operator()(const Tensor<T>& input) { return forward(input); }

  /// One line describing this module alone, like PyTorch's extra_repr: "Linear(784, 256)".
  virtual std::string describe() const = 0;

  /// Every parameter of this module and its children, depth first in registration order.
  std::vector<Tensor<T>> parameters() const;
  /// The same, with dotted names.
  std::vector<std::pair<std::string, Tensor<T>>> named_parameters() const;
  /// Direct children with their names.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  /// Total number of scalar parameters.
  std::size_t num_parameters() const;
  /// Drops the gradient of every parameter (PyTorch's default); with set_to_none false, zeroes
  /// the buffers and keeps them.
  void zero_grad(bool set_to_none = true);
  /// Training mode (Dropout active) or evaluation mode, for this module and all children.
  void train(bool on = true);
  /// Evaluation mode: train(false).
  void eval() { train(false); }
  /// True in training mode (the default).
  bool is_training() const { return training_; }
  /// A printable tree of the module, its children and the parameter count, like print(model).
  std::string summary() const;

 protected:
  /// Adds a parameter (marked requires_grad) under `name`; returns the stored handle.
  Tensor<T>& register_parameter(std::string name, Tensor<T> parameter);
  /// Adds a child module under `name`.
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    children_.emplace_back(std::move(name), module);
    return module;
  }

 private:
  void collect(const std::string& prefix,
               std::vector<std::pair<std::string, Tensor<T>>>& out) const;
  void print(std::string& out, const std::string& name, int depth) const;

  std::vector<std::pair<std::string, Tensor<T>>> parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

extern template class Module<float>;
extern template class Module<double>;

}  // namespace xgrad::nn
