// Adam and AdamW, line for line torch.optim.Adam's single-tensor update (_single_tensor_adam,
// amsgrad off), AdamW being its decoupled-weight-decay variant.

#include <cmath>
#include <utility>

#include <xgrad/autograd.hpp>
#include <xgrad/optim/optimizer.hpp>

#include "common.hpp"

namespace xgrad::optim {

using internal::num;

template <class T>
Adam<T>::Adam(std::vector<Tensor<T>> params, AdamOptions options)
    : Adam(std::move(params), options, /*decoupled=*/false, "Adam") {}

template <class T>
Adam<T>::Adam(std::vector<Tensor<T>> params, AdamOptions options, bool decoupled, std::string name)
    : Optimizer<T>(std::move(params), options.lr, std::move(name)),
      options_(options),
      decoupled_(decoupled) {
  const std::pair<const char*, double> betas[] = {{"beta1", options.beta1},
                                                  {"beta2", options.beta2}};
  for (const auto& [option, beta] : betas) {
    if (!(beta >= 0 && beta < 1)) {
      throw ValueError(this->prefix() + option + " must be in [0, 1), got " + num(beta));
    }
  }
  this->check_option("eps", options.eps);
  this->check_option("weight_decay", options.weight_decay);
  const std::size_t n = this->params().size();
  steps_.assign(n, 0);
  exp_avg_.resize(n);
  exp_avg_sq_.resize(n);
}

template <class T>
void Adam<T>::step() {
  NoGradGuard no_grad;
  const double lr = this->lr();
  const T beta2 = static_cast<T>(options_.beta2);
  const T one_m_beta1 = static_cast<T>(1 - options_.beta1);
  const T one_m_beta2 = static_cast<T>(1 - options_.beta2);
  const T eps = static_cast<T>(options_.eps);
  const T wd = static_cast<T>(options_.weight_decay);
  const T shrink = static_cast<T>(1 - lr * options_.weight_decay);
  const bool decay = options_.weight_decay != 0;
  auto& params = this->mutable_params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Array<T>* grad = this->grad_for_step(i);
    if (grad == nullptr) continue;
    const T* g = grad->data();
    T* p = params[i].mutable_value().data();
    const std::size_t n = grad->size();
    std::vector<T>& m_buf = exp_avg_[i];
    std::vector<T>& v_buf = exp_avg_sq_[i];
    if (steps_[i] == 0) {
      m_buf.assign(n, T(0));
      v_buf.assign(n, T(0));
    } else {
      this->check_state_size(i, m_buf.size());
    }
    const auto t = static_cast<double>(++steps_[i]);
    // Bias corrections in double, as torch computes them in Python floats.
    const T step_size = static_cast<T>(lr / (1 - std::pow(options_.beta1, t)));
    const T bc2_sqrt = static_cast<T>(std::sqrt(1 - std::pow(options_.beta2, t)));
    T* m = m_buf.data();
    T* v = v_buf.data();
    for (std::size_t k = 0; k < n; ++k) {
      T gk = g[k];
      if (decay) {
        if (decoupled_) {
          p[k] *= shrink;
        } else {
          gk += wd * p[k];
        }
      }
      m[k] += one_m_beta1 * (gk - m[k]);  // torch's lerp_(grad, 1 - beta1)
      v[k] = v[k] * beta2 + one_m_beta2 * gk * gk;
      const T denom = std::sqrt(v[k]) / bc2_sqrt + eps;
      p[k] -= step_size * (m[k] / denom);
    }
  }
}

template <class T>
AdamW<T>::AdamW(std::vector<Tensor<T>> params, AdamWOptions options)
    : Adam<T>(
          std::move(params),
          AdamOptions{options.lr, options.beta1, options.beta2, options.eps, options.weight_decay},
          /*decoupled=*/true, "AdamW") {}

template class Adam<float>;
template class Adam<double>;
template class AdamW<float>;
template class AdamW<double>;

}  // namespace xgrad::optim
