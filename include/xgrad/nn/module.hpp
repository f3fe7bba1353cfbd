#pragma once
// Modules: objects that own parameters and sub-modules and map a tensor to a tensor, as in
// torch.nn. Parameters are named by dotted paths ("0.weight", "encoder.fc1.bias") that are
// stable across runs, so checkpoints can be matched by name.

#include <concepts>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad::nn {

/// A shared handle on a module, like libtorch's module holders: `fc1->forward(x)`, `fc1(x)` and
/// `*fc1` all reach the module, and copies share it. register_module() returns one.
template <class M>
class Handle {
 public:
  /// An empty handle, to be assigned from register_module() in a constructor.
  Handle() = default;
  /// Shares `module`.
  Handle(std::shared_ptr<M> module) : module_(std::move(module)) {}  // NOLINT: implicit by design
  /// The module's members: `fc1->weight()`, `fc1->forward(x)`. ValueError when empty.
  M* operator->() const { return &checked(); }
  /// The module.
  M& operator*() const { return checked(); }
  /// The module's forward(args...): `fc1(x)`.
  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    return checked().forward(std::forward<Args>(args)...);
  }
  /// The module, or nullptr when empty.
  M* get() const { return module_.get(); }
  /// The shared pointer the handle holds.
  const std::shared_ptr<M>& ptr() const { return module_; }
  /// The handle as a shared pointer to M or to one of its bases (for containers).
  template <class B>
  requires std::convertible_to<M*, B*>
  operator std::shared_ptr<B>() const {  // NOLINT: implicit by design
    return module_;
  }
  /// True when the handle holds a module.
  explicit operator bool() const { return module_ != nullptr; }

 private:
  M& checked() const {
    if (!module_) {
      throw ValueError("xgrad::nn::Handle: the handle is empty (no module was registered into it)");
    }
    return *module_;
  }
  std::shared_ptr<M> module_;
};

/// Base of every layer and model: owns named parameters and child modules and maps a tensor to
/// a tensor (torch::nn::Module). Derive from it, register parameters and children in the
/// constructor, and override forward(); describe() is optional.
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

  /// One line describing this module alone, like PyTorch's extra_repr: "Linear(784, 256)". By
  /// default the class name without namespaces ("Net", "Block<float>").
  virtual std::string describe() const;

  /// Every parameter of this module and its children, depth first in registration order.
  std::vector<Tensor<T>> parameters() const;
  /// The same, with dotted names.
  std::vector<std::pair<std::string, Tensor<T>>> named_parameters() const;
  /// Every buffer (state that is saved with the module but not trained: BatchNorm's running
  /// statistics) of this module and its children, depth first in registration order.
  std::vector<Tensor<T>> buffers() const;
  /// The same, with dotted names ("1.running_mean").
  std::vector<std::pair<std::string, Tensor<T>>> named_buffers() const;
  /// What a checkpoint of the module holds, as torch's state_dict(): the named parameters, then
  /// the named buffers. io::save and io::load read and write exactly these.
  std::vector<std::pair<std::string, Tensor<T>>> state_dict() const;
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
  /// Adds a buffer under `name` (no gradient; saved and loaded with the parameters); returns the
  /// stored handle, whose value the module updates in place.
  Tensor<T>& register_buffer(std::string name, Tensor<T> buffer);
  /// A module is moved when it is registered by value (register_module("fc", Linear(...))).
  Module(Module&&) = default;

  /// Adds a child module under `name` and returns a handle on it (ValueError for a null module or
  /// a name already taken).
  template <class M>
  requires std::derived_from<M, Module> Handle<M> register_module(std::string name,
                                                                  std::shared_ptr<M> module) {
    check_child(name, module != nullptr);
    children_.emplace_back(std::move(name), module);
    return Handle<M>(std::move(module));
  }
  /// Adds the module held by `module` under `name`.
  template <class M>
  requires std::derived_from<M, Module> Handle<M> register_module(std::string name,
                                                                  const Handle<M>& module) {
    return register_module(std::move(name), module.ptr());
  }
  /// Moves `module` into a new child under `name`: `fc1 = register_module("fc1", Linear<T>(4, 2))`.
  template <class M>
  requires(std::derived_from<std::remove_cvref_t<M>, Module> && !std::is_lvalue_reference_v<M>)
      Handle<std::remove_cvref_t<M>> register_module(std::string name, M&& module) {
    return register_module(std::move(name),
                           std::make_shared<std::remove_cvref_t<M>>(std::forward<M>(module)));
  }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor<T>>>& out,
               bool buffers) const;
  void check_name(const char* op, const std::string& name) const;
  void print(std::string& out, const std::string& name, int depth) const;
  void check_child(const std::string& name, bool non_null) const;

  std::vector<std::pair<std::string, Tensor<T>>> parameters_;
  std::vector<std::pair<std::string, Tensor<T>>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

extern template class Module<float>;
extern template class Module<double>;

}  // namespace xgrad::nn
