#include <xgrad/optim/lr_scheduler.hpp>

#include <cmath>
#include <numbers>
#include <string>

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

template class LRScheduler<float>;
template class LRScheduler<double>;
template class StepLR<float>;
template class StepLR<double>;
template class CosineAnnealingLR<float>;
template class CosineAnnealingLR<double>;

}  // namespace xgrad::optim
