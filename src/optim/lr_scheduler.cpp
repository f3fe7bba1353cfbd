#include <xgrad/optim/lr_scheduler.hpp>

#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <utility>

#include "common.hpp"

namespace xgrad::optim {

using internal::num;

template <class T>
LRScheduler<T>::LRScheduler(Optimizer<T>& optimizer)
    : optimizer_(optimizer), base_lr_(optimizer.lr()), last_lr_(optimizer.lr()) {}

template <class T>
void LRScheduler<T>::step() {
  ++last_epoch_;
  apply();
}

template <class T>
void LRScheduler<T>::apply() {
  last_lr_ = lr_at(last_epoch_);
  optimizer_.set_lr(last_lr_);
}

// ---- state ----

template <class T>
StateDict LRScheduler<T>::state_dict() const {
  StateDict out;
  out.type = type();
  out.scalars = {{"last_epoch", static_cast<double>(last_epoch_)},
                 {"base_lr", base_lr_},
                 {"last_lr", last_lr_}};
  save_options(out);
  return out;
}

template <class T>
void LRScheduler<T>::state_error(const std::string& what) const {
  throw IoError(std::string("xgrad::") + type() + "::load_state_dict: " + what);
}

template <class T>
double LRScheduler<T>::state_scalar(const StateDict& state, const char* key) const {
  const auto it = state.scalars.find(key);
  if (it == state.scalars.end()) state_error(std::string("the state has no \"") + key + "\"");
  return it->second;
}

template <class T>
void LRScheduler<T>::load_state_dict(const StateDict& state) {
  if (state.type != type()) {
    state_error("the state is of " + (state.type.empty() ? "no scheduler" : "a " + state.type) +
                ", not of this " + type());
  }
  const double epoch = state_scalar(state, "last_epoch");
  if (!(epoch >= 0 && epoch <= std::numeric_limits<int>::max() && epoch == std::floor(epoch))) {
    state_error("the state's last_epoch " + num(epoch) + " is not an epoch count");
  }
  const double base = state_scalar(state, "base_lr");
  const double last = state_scalar(state, "last_lr");
  for (const auto& [key, v] : {std::pair{"base_lr", base}, std::pair{"last_lr", last}}) {
    if (!(std::isfinite(v) && v >= 0)) {
      state_error(std::string("the state's ") + key + " " + num(v) + " is not finite and >= 0");
    }
  }
  StateDict known;
  save_options(known);
  for (const auto& [key, v] : state.scalars) {
    if (!known.scalars.count(key) && key != "last_epoch" && key != "base_lr" && key != "last_lr") {
      state_error("the state's '" + key + "' is no entry of a " + type());
    }
  }
  if (!state.tensors.empty()) {
    state_error("the state has buffer '" + state.tensors.begin()->first + "'; a " + type() +
                " has none");
  }
  load_options(state, false);
  load_options(state, true);
  last_epoch_ = static_cast<int>(epoch);
  base_lr_ = base;
  last_lr_ = last;
}

template <class T>
StepLR<T>::StepLR(Optimizer<T>& optimizer, int step_size, double gamma)
    : LRScheduler<T>(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size < 1) {
    throw ValueError("xgrad::StepLR: step_size must be >= 1, got " + std::to_string(step_size));
  }
  if (!(std::isfinite(gamma) && gamma > 0)) {
    throw ValueError("xgrad::StepLR: gamma must be finite and > 0, got " + num(gamma));
  }
  this->apply();
}

template <class T>
double StepLR<T>::lr_at(int epoch) const {
  return this->base_lr() * std::pow(gamma_, epoch / step_size_);
}

template <class T>
void StepLR<T>::save_options(StateDict& out) const {
  out.scalars["step_size"] = step_size_;
  out.scalars["gamma"] = gamma_;
}

template <class T>
void StepLR<T>::load_options(const StateDict& state, bool apply) {
  const double step_size = this->state_scalar(state, "step_size");
  const double gamma = this->state_scalar(state, "gamma");
  if (!(step_size >= 1 && step_size <= std::numeric_limits<int>::max() &&
        step_size == std::floor(step_size))) {
    this->state_error("the state's step_size " + num(step_size) + " is not an integer >= 1");
  }
  if (!(std::isfinite(gamma) && gamma > 0)) {
    this->state_error("the state's gamma " + num(gamma) + " is not finite and > 0");
  }
  if (!apply) return;
  step_size_ = static_cast<int>(step_size);
  gamma_ = gamma;
}

template <class T>
CosineAnnealingLR<T>::CosineAnnealingLR(Optimizer<T>& optimizer, int T_max, double eta_min)
    : LRScheduler<T>(optimizer), t_max_(T_max), eta_min_(eta_min) {
  if (T_max < 1) {
    throw ValueError("xgrad::CosineAnnealingLR: T_max must be >= 1, got " + std::to_string(T_max));
  }
  if (!(std::isfinite(eta_min) && eta_min >= 0)) {
    throw ValueError("xgrad::CosineAnnealingLR: eta_min must be finite and >= 0, got " +
                     num(eta_min));
  }
  this->apply();
}

template <class T>
double CosineAnnealingLR<T>::lr_at(int epoch) const {
  const double phase = std::numbers::pi * epoch / t_max_;
  return eta_min_ + (this->base_lr() - eta_min_) * (1 + std::cos(phase)) / 2;
}

template <class T>
void CosineAnnealingLR<T>::save_options(StateDict& out) const {
  out.scalars["T_max"] = t_max_;
  out.scalars["eta_min"] = eta_min_;
}

template <class T>
void CosineAnnealingLR<T>::load_options(const StateDict& state, bool apply) {
  const double t_max = this->state_scalar(state, "T_max");
  const double eta_min = this->state_scalar(state, "eta_min");
  if (!(t_max >= 1 && t_max <= std::numeric_limits<int>::max() && t_max == std::floor(t_max))) {
    this->state_error("the state's T_max " + num(t_max) + " is not an integer >= 1");
  }
  if (!(std::isfinite(eta_min) && eta_min >= 0)) {
    this->state_error("the state's eta_min " + num(eta_min) + " is not finite and >= 0");
  }
  if (!apply) return;
  t_max_ = static_cast<int>(t_max);
  eta_min_ = eta_min;
}

template class LRScheduler<float>;
template class LRScheduler<double>;
template class StepLR<float>;
template class StepLR<double>;
template class CosineAnnealingLR<float>;
template class CosineAnnealingLR<double>;

}  // namespace xgrad::optim
