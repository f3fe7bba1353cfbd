#include <xgrad/optim/optimizer.hpp>
#include <xgrad/profiler.hpp>

#include <algorithm>
#include <cmath>
#include <type_traits>
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
  const profiler::record_function region("Optimizer.zero_grad");
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

// ---- state ----

namespace {
/// names, or the positions "0", "1", ... when empty; ValueError unless one distinct name per
/// parameter.
std::vector<std::string> keys_for(const std::string& prefix, const std::vector<std::string>& names,
                                  std::size_t n) {
  if (names.empty()) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
    return out;
  }
  if (names.size() != n) {
    throw ValueError(prefix + "got " + std::to_string(names.size()) + " names for " +
                     std::to_string(n) + " parameters");
  }
  std::unordered_map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < n; ++i) {
    const auto [it, inserted] = seen.emplace(names[i], i);
    if (!inserted) {
      throw ValueError(prefix + "parameters " + std::to_string(it->second) + " and " +
                       std::to_string(i) + " are both named '" + names[i] + "'");
    }
  }
  return names;
}
}  // namespace

template <class T>
StateDict Optimizer<T>::state_dict(const std::vector<std::string>& names) const {
  StateDict out;
  out.type = name_;
  out.scalars["lr"] = lr_;
  save_state(keys_for(prefix() + "state_dict: ", names, params_.size()), out);
  return out;
}

template <class T>
void Optimizer<T>::load_state_dict(const StateDict& state, const std::vector<std::string>& names) {
  const auto keys = keys_for(prefix() + "load_state_dict: ", names, params_.size());
  if (state.type != name_) {
    state_error("the state is of " + (state.type.empty() ? "no optimiser" : "a " + state.type) +
                ", not of this " + name_);
  }
  const auto lr = state.scalars.find("lr");
  if (lr == state.scalars.end()) state_error("the state has no \"lr\"");
  if (!(std::isfinite(lr->second) && lr->second >= 0)) {
    state_error("the state's lr " + num(lr->second) + " is not finite and >= 0");
  }
  // Every key must be read by the derived class: anything else is another model's state, or
  // another optimiser's, and would otherwise be dropped unnoticed.
  std::unordered_map<std::string, bool> used;
  for (const auto& [key, value] : state.tensors) used.emplace(key, false);
  for (const auto& [key, value] : state.scalars) used.emplace(key, false);
  used["lr"] = true;
  const auto take = [&](const std::string& key) { used[key] = true; };
  // A dry run reads and checks everything; the second call, which cannot fail, applies it.
  load_state(keys, state, take, false);
  std::vector<std::string> unknown;
  for (const auto& [key, was_used] : used) {
    if (!was_used) unknown.push_back(key);
  }
  if (!unknown.empty()) {
    std::sort(unknown.begin(), unknown.end());
    std::string list;
    for (std::size_t i = 0; i < unknown.size() && i < 8; ++i)
      list += (i ? ", '" : "'") + unknown[i] + "'";
    if (unknown.size() > 8) list += " and " + std::to_string(unknown.size() - 8) + " more";
    state_error("the state's " + list + " match" + (unknown.size() == 1 ? "es" : "") +
                " no parameter or buffer of this " + name_);
  }
  load_state(
      keys, state, [](const std::string&) {}, true);
  lr_ = lr->second;
}

template <class T>
void Optimizer<T>::state_error(const std::string& what) const {
  throw IoError("xgrad::" + name_ + "::load_state_dict: " + what);
}

template <class T>
const Array<double>* Optimizer<T>::state_buffer(const StateDict& state, const std::string& key,
                                                std::size_t i, const Shape& lead, bool in_T) const {
  const auto it = state.tensors.find(key);
  if (it == state.tensors.end()) return nullptr;
  Shape want = lead;
  const Shape shape = params_[i].shape();
  want.insert(want.end(), shape.begin(), shape.end());
  const Shape got(it->second.shape().begin(), it->second.shape().end());
  if (got != want) {
    state_error("the state's '" + key + "' has shape " + shape_str(got) + " but parameter " +
                std::to_string(i) + " needs " + shape_str(want));
  }
  if (std::is_same_v<T, float> && in_T) {
    const double* v = it->second.data();
    for (std::size_t k = 0; k < it->second.size(); ++k) {
      if (std::isfinite(v[k]) && std::isinf(static_cast<float>(v[k]))) {
        state_error("the state's '" + key + "' holds " + num(v[k]) + " at element " +
                    std::to_string(k) + ", beyond the range of float");
      }
    }
  }
  return &it->second;
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace xgrad::optim
