#pragma once
// First-order optimisers with torch.optim's update rules, option names and defaults. Each one
// updates its parameters in place (through mutable_value(), with grad mode off) and keeps its
// state buffers between steps, so a step allocates nothing after the first.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad::optim {

/// An optimiser's or scheduler's state, as torch's state_dict(): what it needs to continue
/// exactly where it stopped. Buffers are kept in double whatever the parameters' type (float
/// converts exactly).
struct StateDict {
  /// Whose state: "SGD", "Adam", "AdamW", "LBFGS", "StepLR", "CosineAnnealingLR".
  std::string type;
  /// Buffers, keyed "<parameter name>.<buffer>" as "0.weight.momentum_buffer".
  std::map<std::string, Array<double>> tensors;
  /// Numbers: "lr", "<parameter name>.step", "last_epoch", ...
  std::map<std::string, double> scalars;
};

/// Base of every optimiser: the parameter list, the learning rate and zero_grad().
template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient; parameters without one are skipped.
  virtual void step() = 0;
  /// Drops every parameter's gradient (PyTorch's default since 2.0): the next backward() moves
  /// fresh gradients in instead of adding them to zeros, and the next step() skips parameters
  /// that got none in between. With set_to_none false, zeroes the buffers and keeps them.
  void zero_grad(bool set_to_none = true);

  /// Current learning rate (schedulers change it through set_lr).
  double lr() const { return lr_; }
  /// Sets the learning rate; it must be finite and >= 0.
  void set_lr(double lr);
  /// The parameters, in the order given to the constructor.
  const std::vector<Tensor<T>>& params() const { return params_; }
  /// "SGD", "Adam", ...: the name that starts this optimiser's error messages.
  const std::string& name() const { return name_; }

  // ---- state, for checkpoints ----
  /// The state (lr, and the buffers and step counts of every parameter that has any), with
  /// parameter i keyed by names[i]: give the model's names (Module::named_parameters()) so that
  /// the state fits the model whatever order the parameters were listed in. Without names the
  /// keys are the positions "0", "1", ...
  StateDict state_dict(const std::vector<std::string>& names = {}) const;
  /// Restores a state_dict() of the same optimiser type, keyed by the same names. Raises IoError,
  /// changing nothing, for another type, a key that names no parameter or buffer, a missing
  /// entry, a buffer whose shape is not its parameter's, or a value out of its domain; and
  /// ValueError when `names` does not name every parameter once. The options other than lr are
  /// those this optimiser was built with.
  void load_state_dict(const StateDict& state, const std::vector<std::string>& names = {});

 protected:
  /// Checks lr (> 0, finite) and that params is non-empty and holds distinct leaves that require
  /// grad; raises ValueError naming `name` otherwise.
  Optimizer(std::vector<Tensor<T>> params, double lr, std::string name);
  /// "xgrad::<name>: ", the start of every error message.
  std::string prefix() const;
  /// The parameters, for derived optimisers.
  std::vector<Tensor<T>>& mutable_params() { return params_; }
  /// Parameter i's gradient, or nullptr when it has none; raises ShapeError when the gradient's
  /// size is not the value's.
  const Array<T>* grad_for_step(std::size_t i) const;
  /// Raises ValueError when parameter i no longer has the `state_size` elements its optimiser
  /// state was built for (its value was replaced by one of another size).
  void check_state_size(std::size_t i, std::size_t state_size) const;
  /// Raises ValueError unless `value` is finite and >= 0 (or > 0 when `positive`).
  void check_option(const char* option, double value, bool positive = false) const;

  /// Adds the derived optimiser's buffers and numbers to `out` (lr is already there).
  virtual void save_state(const std::vector<std::string>& names, StateDict& out) const = 0;
  /// Reads them back: checks everything, throwing IoError (via state_error), and calls `take`
  /// with every key it reads, so that the base can refuse keys nobody read; then, if `apply`,
  /// which the base sets only once a first call passed, replaces the optimiser's state.
  virtual void load_state(const std::vector<std::string>& names, const StateDict& state,
                          const std::function<void(const std::string&)>& take, bool apply) = 0;
  /// IoError("xgrad::<name>::load_state_dict: <what>").
  [[noreturn]] void state_error(const std::string& what) const;
  /// The state's buffer `key`, checked to have parameter i's shape (with `lead` extra leading
  /// dims) and, when `in_T`, values that T holds, or nullptr when absent.
  const Array<double>* state_buffer(const StateDict& state, const std::string& key, std::size_t i,
                                    const Shape& lead = {}, bool in_T = true) const;

 private:
  std::vector<Tensor<T>> params_;
  double lr_;
  std::string name_;
};

/// torch.optim.SGD's options and defaults (lr has no default there either).
struct SGDOptions {
  /// Learning rate (no default: must be given, > 0).
  double lr;
  /// Momentum factor; 0 disables the buffer.
  double momentum = 0;
  /// Dampening of the momentum.
  double dampening = 0;
  /// L2 penalty added to the gradient.
  double weight_decay = 0;
  /// Nesterov momentum.
  bool nesterov = false;
};

/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2
/// weight decay, as torch.optim.SGD:
///   d = g + weight_decay * p
///   buf = d on the first step, else momentum * buf + (1 - dampening) * d
///   d = d + momentum * buf (nesterov) or buf (momentum != 0)
///   p -= lr * d
template <class T>
class SGD : public Optimizer<T> {
 public:
  /// Raises ValueError for lr <= 0, a negative or non-finite option, or nesterov without
  /// momentum > 0 and dampening == 0.
  SGD(std::vector<Tensor<T>> params, SGDOptions options);
  void step() override;
  /// The options given to the constructor.
  const SGDOptions& options() const { return options_; }

 private:
  void save_state(const std::vector<std::string>& names, StateDict& out) const override;
  void load_state(const std::vector<std::string>& names, const StateDict& state,
                  const std::function<void(const std::string&)>& take, bool apply) override;

  SGDOptions options_;
  std::vector<std::vector<T>> momentum_;  // empty until the parameter's first step
};

/// torch.optim.Adam's options and defaults.
struct AdamOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Decay of the first-moment average.
  double beta1 = 0.9;
  /// Decay of the second-moment average.
  double beta2 = 0.999;
  /// Added to the denominator.
  double eps = 1e-8;
  /// L2 penalty added to the gradient.
  double weight_decay = 0;
};

/// torch.optim.AdamW's options and defaults (weight_decay is 1e-2 there, not 0).
struct AdamWOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Decay of the first-moment average.
  double beta1 = 0.9;
  /// Decay of the second-moment average.
  double beta2 = 0.999;
  /// Added to the denominator.
  double eps = 1e-8;
  /// Decoupled weight decay.
  double weight_decay = 1e-2;
};

/// Adam as torch.optim.Adam (amsgrad off), with a step count per parameter:
///   g += weight_decay * p                       (Adam: L2 penalty in the gradient)
///   p *= 1 - lr * weight_decay                  (AdamW: decoupled decay instead)
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
///   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
template <class T>
class Adam : public Optimizer<T> {
 public:
  /// Raises ValueError for lr <= 0, betas outside [0, 1), eps < 0 or weight_decay < 0.
  Adam(std::vector<Tensor<T>> params, AdamOptions options = {});
  void step() override;
  /// The options given to the constructor.
  const AdamOptions& options() const { return options_; }
  /// Number of steps parameter i has taken (its bias-correction exponent t).
  std::int64_t step_count(std::size_t i) const { return steps_.at(i); }

 protected:
  /// For AdamW: decoupled weight decay, and `name` in error messages.
  Adam(std::vector<Tensor<T>> params, AdamOptions options, bool decoupled, std::string name);
  /// Per parameter that has stepped: "<name>.step", "<name>.exp_avg", "<name>.exp_avg_sq".
  void save_state(const std::vector<std::string>& names, StateDict& out) const override;
  /// Reads what save_state writes.
  void load_state(const std::vector<std::string>& names, const StateDict& state,
                  const std::function<void(const std::string&)>& take, bool apply) override;

 private:
  AdamOptions options_;
  bool decoupled_;
  std::vector<std::int64_t> steps_;
  std::vector<std::vector<T>> exp_avg_, exp_avg_sq_;  // empty until the parameter's first step
};

/// AdamW as torch.optim.AdamW: Adam with decoupled weight decay (p *= 1 - lr * weight_decay
/// before the Adam update).
template <class T>
class AdamW : public Adam<T> {
 public:
  /// Raises ValueError as Adam does.
  AdamW(std::vector<Tensor<T>> params, AdamWOptions options = {});
};

extern template class Optimizer<float>;
extern template class Optimizer<double>;
extern template class SGD<float>;
extern template class SGD<double>;
extern template class Adam<float>;
extern template class Adam<double>;
extern template class AdamW<float>;
extern template class AdamW<double>;

}  // namespace xgrad::optim
