// Adam and AdamW, line for line torch.optim.Adam's single-tensor update (_single_tensor_adam,
// amsgrad off), AdamW being its decoupled-weight-decay variant.

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>

#include <xgrad/autograd.hpp>
#include <xgrad/optim/optimizer.hpp>
#include <xgrad/profiler.hpp>

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

namespace {

// One parameter's share of a step: its buffers and its bias-corrected constants.
template <class T>
struct AdamSlot {
  const T* g;
  T* p;
  T* m;
  T* v;
  std::size_t n;
  T step_size, bc2_sqrt;
};

// Elements [lo, hi) of one parameter, in vectors; the last partial vector goes through the same
// vector arithmetic on a padded copy, so that every element gets exactly the same operations
// wherever the threads' ranges cut the parameter.
template <class T>
void adam_update(const AdamSlot<T>& s, std::size_t lo, std::size_t hi, T beta2, T one_m_beta1,
                 T one_m_beta2, T eps, T shrink, bool decay, bool decoupled, T wd) {
  using B = xsimd::batch<T>;
  constexpr std::size_t L = B::size;
  const auto update = [&](const T* gi, T* pi, T* mi, T* vi) {
    B gk = B::load_unaligned(gi), pk = B::load_unaligned(pi);
    if (decay) {
      if (decoupled) {
        pk = pk * B(shrink);
      } else {
        gk = gk + B(wd) * pk;
      }
    }
    B mk = B::load_unaligned(mi);
    mk = mk + B(one_m_beta1) * (gk - mk);  // torch's lerp_(grad, 1 - beta1)
    const B vk = B::load_unaligned(vi) * B(beta2) + B(one_m_beta2) * gk * gk;
    const B denom = xsimd::sqrt(vk) / B(s.bc2_sqrt) + B(eps);
    pk = pk - B(s.step_size) * (mk / denom);
    mk.store_unaligned(mi);
    vk.store_unaligned(vi);
    pk.store_unaligned(pi);
  };
  std::size_t k = lo;
  for (; k + L <= hi; k += L) update(s.g + k, s.p + k, s.m + k, s.v + k);
  if (k < hi) {
    // Padding of ones: the lanes thrown away divide by nothing near 0 (eps may be 0).
    T gb[L], pb[L], mb[L], vb[L];
    for (T* buf : {gb, pb, mb, vb}) std::fill(buf, buf + L, T(1));
    const std::size_t r = hi - k;
    std::copy(s.g + k, s.g + hi, gb);
    std::copy(s.p + k, s.p + hi, pb);
    std::copy(s.m + k, s.m + hi, mb);
    std::copy(s.v + k, s.v + hi, vb);
    update(gb, pb, mb, vb);
    std::copy(pb, pb + r, s.p + k);
    std::copy(mb, mb + r, s.m + k);
    std::copy(vb, vb + r, s.v + k);
  }
}

}  // namespace

template <class T>
void Adam<T>::step() {
  const profiler::record_function region("Adam.step");
  NoGradGuard no_grad;
  const double lr = this->lr();
  const T beta2 = static_cast<T>(options_.beta2);
  const T one_m_beta1 = static_cast<T>(1 - options_.beta1);
  const T one_m_beta2 = static_cast<T>(1 - options_.beta2);
  const T eps = static_cast<T>(options_.eps);
  const T wd = static_cast<T>(options_.weight_decay);
  const T shrink = static_cast<T>(1 - lr * options_.weight_decay);
  const bool decay = options_.weight_decay != 0;
  const bool decoupled = decoupled_;
  auto& params = this->mutable_params();
  // Every parameter's elements laid end to end and cut into one range per thread: a model of
  // many small tensors is one round of the pool, not one per tensor.
  std::vector<AdamSlot<T>> slots;
  std::vector<std::size_t> starts{0};
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Array<T>* grad = this->grad_for_step(i);
    if (grad == nullptr) continue;
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
    slots.push_back({grad->data(), params[i].mutable_value().data(), m_buf.data(), v_buf.data(), n,
                     static_cast<T>(lr / (1 - std::pow(options_.beta1, t))),
                     static_cast<T>(std::sqrt(1 - std::pow(options_.beta2, t)))});
    starts.push_back(starts.back() + n);
  }
  internal::for_elements(starts.back(), [&](std::size_t lo, std::size_t hi) {
    std::size_t i = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), lo) -
                                             starts.begin() - 1);
    for (; i < slots.size() && starts[i] < hi; ++i) {
      const std::size_t a = std::max(lo, starts[i]) - starts[i];
      const std::size_t b = std::min(hi, starts[i + 1]) - starts[i];
      adam_update(slots[i], a, b, beta2, one_m_beta1, one_m_beta2, eps, shrink, decay, decoupled,
                  wd);
    }
  });
}

template <class T>
void Adam<T>::save_state(const std::vector<std::string>& names, StateDict& out) const {
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i] == 0) continue;
    out.scalars[names[i] + ".step"] = static_cast<double>(steps_[i]);
    for (const auto& [suffix, src] :
         {std::pair{".exp_avg", &exp_avg_[i]}, std::pair{".exp_avg_sq", &exp_avg_sq_[i]}}) {
      Array<double> buf = Array<double>::from_shape(this->params()[i].shape());
      std::copy(src->begin(), src->end(), buf.data());
      out.tensors[names[i] + suffix] = std::move(buf);
    }
  }
}

template <class T>
void Adam<T>::load_state(const std::vector<std::string>& names, const StateDict& state,
                         const std::function<void(const std::string&)>& take, bool apply) {
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const std::string step_key = names[i] + ".step";
    const auto step = state.scalars.find(step_key);
    std::int64_t t = 0;
    if (step != state.scalars.end()) {
      take(step_key);
      // Integral, and small enough that double held it exactly.
      if (!(step->second >= 0 && step->second <= 9007199254740992.0 &&
            step->second == std::floor(step->second))) {
        this->state_error("the state's '" + step_key + "' is " + num(step->second) +
                          ", not a step count");
      }
      t = static_cast<std::int64_t>(step->second);
    }
    const Array<double>* m = nullptr;
    const Array<double>* v = nullptr;
    for (const auto& [suffix, dst] : {std::pair{".exp_avg", &m}, std::pair{".exp_avg_sq", &v}}) {
      const std::string key = names[i] + suffix;
      *dst = this->state_buffer(state, key, i);
      if (*dst) {
        take(key);
      } else if (t > 0) {
        this->state_error("the state has '" + step_key + "' but no '" + key + "'");
      }
    }
    if (!apply) continue;
    steps_[i] = t;
    exp_avg_[i].clear();
    exp_avg_sq_[i].clear();
    if (t > 0) {
      exp_avg_[i].assign(m->begin(), m->end());
      exp_avg_sq_[i].assign(v->begin(), v->end());
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
