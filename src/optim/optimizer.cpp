#include <xgrad/optim/optimizer.hpp>

#include <cmath>
#include <unordered_map>

#include "common.hpp"

namespace xgrad::optim {

using internal::num;

template <class T>
Optimizer<T>::Optimizer(std::vector<Tensor<T>> params, double lr, std::string name)
    : params_(std::move(params)), lr_(lr), name_(std::move(name)) {
  check_option("learning rate", lr, /*positive=*/true);
  if (params_.empty()) throw ValueError(prefix() + "no parameters to optimise");
  // A parameter listed twice would be updated twice per step.
  std::unordered_map<const void*, std::size_t> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor<T>& p = params_[i];
    const std::string which = "parameter " + std::to_string(i);
    if (!p.defined()) throw ValueError(prefix() + which + " is an undefined tensor");
    const std::string shape = " (shape " + shape_str(p.shape()) + ")";
    if (!p.requires_grad()) {
      throw ValueError(prefix() + which + shape +
                       " does not require grad; call requires_grad_() on it or leave it out");
    }
    if (!p.is_leaf()) {
      throw ValueError(prefix() + which + shape + " is not a leaf (it is the output of '" +
                       p.op_name() + "'); optimise the leaf tensors it is computed from");
    }
    const auto [it, inserted] = seen.emplace(p.impl().get(), i);
    if (!inserted) {
      throw ValueError(prefix() + which + shape + " is the same tensor as parameter " +
                       std::to_string(it->second));
    }
  }
}

template <class T>
void Optimizer<T>::zero_grad(bool set_to_none) {
  for (auto& p : params_) {
    if (set_to_none) {
      p.clear_grad();
    } else {
      p.zero_grad();
    }
  }
}

template <class T>
void Optimizer<T>::set_lr(double lr) {
  check_option("learning rate", lr);
  lr_ = lr;
}

template <class T>
std::string Optimizer<T>::prefix() const {
  return "xgrad::" + name_ + ": ";
}

template <class T>
const Array<T>* Optimizer<T>::grad_for_step(std::size_t i) const {
  const Tensor<T>& p = params_[i];
  if (!p.has_grad()) return nullptr;
  // The buffer is owned by p's gradient tensor, so the reference outlives the handle.
  const Array<T>& g = p.grad().value();
  if (g.size() != p.value().size()) {
    throw ShapeError(prefix() + "parameter " + std::to_string(i) + " has value shape " +
                     shape_str(p.shape()) + " but gradient shape " +
                     shape_str(Shape(g.shape().begin(), g.shape().end())));
  }
  return &g;
}

template <class T>
void Optimizer<T>::check_state_size(std::size_t i, std::size_t state_size) const {
  const std::size_t n = params_[i].numel();
  if (n != state_size) {
    throw ValueError(prefix() + "parameter " + std::to_string(i) + " now has " + std::to_string(n) +
                     " elements but its optimiser state was built for " +
                     std::to_string(state_size) + "; build a new optimiser after resizing");
  }
}

template <class T>
void Optimizer<T>::check_option(const char* option, double value, bool positive) const {
  const bool ok = std::isfinite(value) && (positive ? value > 0 : value >= 0);
  if (!ok) {
    throw ValueError(prefix() + option + " must be finite and " + (positive ? "> 0" : ">= 0") +
                     ", got " + num(value));
  }
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace xgrad::optim
