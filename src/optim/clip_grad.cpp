#include <xgrad/optim/clip_grad.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "common.hpp"

namespace xgrad::optim {

using internal::num;

template <class T>
T clip_grad_norm_(const std::vector<Tensor<T>>& params, double max_norm, double norm_type) {
  const std::string pre = "xgrad::clip_grad_norm_: ";
  if (std::isnan(max_norm) || max_norm < 0) {
    throw ValueError(pre + "max_norm must be >= 0, got " + num(max_norm));
  }
  if (std::isnan(norm_type) || norm_type <= 0) {
    throw ValueError(pre + "norm_type must be > 0 or infinity, got " + num(norm_type));
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!params[i].defined()) {
      throw ValueError(pre + "parameter " + std::to_string(i) + " is an undefined tensor");
    }
  }
  const bool inf_norm = std::isinf(norm_type);
  double acc = 0;
  for (const auto& p : params) {
    if (!p.has_grad()) continue;
    const Array<T>& grad = p.grad().value();
    const T* g = grad.data();
    const std::size_t n = grad.size();
    if (inf_norm) {
      for (std::size_t k = 0; k < n; ++k) acc = std::max(acc, std::abs(double(g[k])));
      // std::max drops NaN whichever side it is on, so look for it separately.
      for (std::size_t k = 0; k < n; ++k) acc += std::isnan(g[k]) ? double(g[k]) : 0.0;
    } else if (norm_type == 2) {
      for (std::size_t k = 0; k < n; ++k) acc += double(g[k]) * double(g[k]);
    } else if (norm_type == 1) {
      for (std::size_t k = 0; k < n; ++k) acc += std::abs(double(g[k]));
    } else {
      for (std::size_t k = 0; k < n; ++k) acc += std::pow(std::abs(double(g[k])), norm_type);
    }
  }
  const double total = inf_norm         ? acc
                       : norm_type == 2 ? std::sqrt(acc)
                       : norm_type == 1 ? acc
                                        : std::pow(acc, 1 / norm_type);
  if (!std::isfinite(total)) {
    std::string where;
    for (std::size_t i = 0; i < params.size() && where.empty(); ++i) {
      if (!params[i].has_grad()) continue;
      const Array<T>& g = params[i].grad().value();
      if (std::any_of(g.begin(), g.end(), [](T v) { return !std::isfinite(v); })) {
        where = "; parameter " + std::to_string(i) + " (shape " + shape_str(params[i].shape()) +
                ") has a non-finite gradient";
      }
    }
    throw ValueError(pre + "the total norm of order " + num(norm_type) +
                     " of the gradients is non-finite (" + num(total) +
                     "), so they cannot be clipped" + where + "; gradients left unchanged");
  }
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    const T c = static_cast<T>(coef);
    for (auto p : params) {
      if (!p.has_grad()) continue;
      Array<T>& grad = p.mutable_grad();
      T* g = grad.data();
      for (std::size_t k = 0, n = grad.size(); k < n; ++k) g[k] *= c;
    }
  }
  return static_cast<T>(total);
}

template float clip_grad_norm_<float>(const std::vector<Tensor<float>>&, double, double);
template double clip_grad_norm_<double>(const std::vector<Tensor<double>>&, double, double);

}  // namespace xgrad::optim
