// SGD, line for line torch.optim.SGD's single-tensor update (_single_tensor_sgd).

#include <algorithm>
#include <cmath>

#include <xgrad/autograd.hpp>
#include <xgrad/optim/optimizer.hpp>
#include <xgrad/profiler.hpp>

#include "common.hpp"

namespace xgrad::optim {

using internal::for_elements;
using internal::num;

template <class T>
SGD<T>::SGD(std::vector<Tensor<T>> params, SGDOptions options)
    : Optimizer<T>(std::move(params), options.lr, "SGD"), options_(options) {
  this->check_option("momentum", options.momentum);
  this->check_option("weight_decay", options.weight_decay);
  if (!std::isfinite(options.dampening)) {
    throw ValueError(this->prefix() + "dampening must be finite, got " + num(options.dampening));
  }
  if (options.nesterov && (options.momentum <= 0 || options.dampening != 0)) {
    throw ValueError(this->prefix() +
                     "Nesterov momentum requires momentum > 0 and dampening == 0, got momentum " +
                     num(options.momentum) + " and dampening " + num(options.dampening));
  }
  momentum_.resize(this->params().size());
}

template <class T>
void SGD<T>::step() {
  const profiler::record_function region("SGD.step");
  NoGradGuard no_grad;
  const T lr = static_cast<T>(this->lr());
  const T momentum = static_cast<T>(options_.momentum);
  const T damp = static_cast<T>(1 - options_.dampening);
  const T wd = static_cast<T>(options_.weight_decay);
  const bool decay = options_.weight_decay != 0;  // g + 0 * p is not g when p is inf or NaN
  auto& params = this->mutable_params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Array<T>* grad = this->grad_for_step(i);
    if (grad == nullptr) continue;
    const T* g = grad->data();
    T* p = params[i].mutable_value().data();
    const std::size_t n = grad->size();
    if (options_.momentum == 0) {
      for_elements(n, [=](std::size_t lo, std::size_t hi) {
        for (std::size_t k = lo; k < hi; ++k) p[k] -= lr * (decay ? g[k] + wd * p[k] : g[k]);
      });
      continue;
    }
    std::vector<T>& buf = momentum_[i];
    // torch starts the buffer at the first (undampened) gradient.
    const bool first = buf.empty();
    if (first) {
      buf.resize(n);
    } else {
      this->check_state_size(i, buf.size());
    }
    T* b = buf.data();
    // One loop per case, so that each compiles to straight vector code.
    const bool nesterov = options_.nesterov;
    if (!decay && !first && !nesterov) {
      for_elements(n, [=](std::size_t lo, std::size_t hi) {
        for (std::size_t k = lo; k < hi; ++k) {
          b[k] = momentum * b[k] + damp * g[k];
          p[k] -= lr * b[k];
        }
      });
      continue;
    }
    for_elements(n, [=](std::size_t lo, std::size_t hi) {
      for (std::size_t k = lo; k < hi; ++k) {
        const T d = decay ? g[k] + wd * p[k] : g[k];
        b[k] = first ? d : momentum * b[k] + damp * d;
        p[k] -= lr * (nesterov ? d + momentum * b[k] : b[k]);
      }
    });
  }
}

template <class T>
void SGD<T>::save_state(const std::vector<std::string>& names, StateDict& out) const {
  for (std::size_t i = 0; i < momentum_.size(); ++i) {
    if (momentum_[i].empty()) continue;
    Array<double> buf = Array<double>::from_shape(this->params()[i].shape());
    std::copy(momentum_[i].begin(), momentum_[i].end(), buf.data());
    out.tensors[names[i] + ".momentum_buffer"] = std::move(buf);
  }
}

template <class T>
void SGD<T>::load_state(const std::vector<std::string>& names, const StateDict& state,
                        const std::function<void(const std::string&)>& take, bool apply) {
  for (std::size_t i = 0; i < momentum_.size(); ++i) {
    const std::string key = names[i] + ".momentum_buffer";
    const Array<double>* buf = this->state_buffer(state, key, i);
    if (buf) take(key);
    if (!apply) continue;
    // A parameter without a buffer starts it afresh at its next step, as torch does.
    momentum_[i].clear();
    if (buf) momentum_[i].assign(buf->begin(), buf->end());
  }
}

template class SGD<float>;
template class SGD<double>;

}  // namespace xgrad::optim
