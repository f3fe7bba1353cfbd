// Normalisation: batch_norm and layer_norm, written with the reduction and elementwise ops so
// that their derivatives (and every higher one) are those ops' own. The running statistics of
// batch_norm are state, not graph: they are updated in place with grad mode off.

#include <string>

#include <xgrad/autograd.hpp>

#include "common.hpp"

namespace xgrad {

namespace {

// (x - mean) / sqrt(var + eps) with mean and var of the `dims` of x (kept as size-1 dims); the
// variance is the biased one, as the normalisation uses it.
template <class T>
struct Moments {
  Tensor<T> mean;
  Tensor<T> centered;
  Tensor<T> var;
};

template <class T>
Moments<T> moments(const Tensor<T>& x, const std::vector<int>& dims, Location loc) {
  Moments<T> m;
  m.mean = mean(x, dims, true, loc);
  m.centered = sub(x, m.mean, loc);
  m.var = mean(mul(m.centered, m.centered, loc), dims, true, loc);
  return m;
}

std::string shape_or_none(const Shape& s, bool defined) {
  return defined ? shape_str(s) : std::string("(none)");
}

}  // namespace

template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, const Tensor<T>& running_mean,
                     const Tensor<T>& running_var, const Tensor<T>& weight, const Tensor<T>& bias,
                     bool training, double momentum, double eps, Location loc) {
  const ops::Entry op{"batch_norm", loc};
  const Shape s = x.shape();
  const auto fail = [&](const std::string& why) {
    throw ShapeError(
        "xgrad::batch_norm: input " + shape_str(s) + ", running_mean " +
        shape_or_none(running_mean.defined() ? running_mean.shape() : Shape{},
                      running_mean.defined()) +
        ", running_var " +
        shape_or_none(running_var.defined() ? running_var.shape() : Shape{},
                      running_var.defined()) +
        ", weight " + shape_or_none(weight.defined() ? weight.shape() : Shape{}, weight.defined()) +
        ", bias " + shape_or_none(bias.defined() ? bias.shape() : Shape{}, bias.defined()) + ": " +
        why);
  };
  if (s.size() < 2) fail("input must be [N, C, ...]");
  const std::size_t c = s[1];
  for (const Tensor<T>* t : {&running_mean, &running_var, &weight, &bias}) {
    if (t->defined() && !(t->dim() == 1 && t->size(0) == c)) {
      fail("statistics, weight and bias must be [C] with C = " + std::to_string(c));
    }
  }
  if (!(eps >= 0) || !(momentum >= 0 && momentum <= 1)) {
    throw ValueError("xgrad::batch_norm: eps " + std::to_string(eps) +
                     " must be >= 0 and momentum " + std::to_string(momentum) +
                     " in [0, 1] (input " + shape_str(s) + ")");
  }
  if (!training && !(running_mean.defined() && running_var.defined())) {
    fail("evaluation (training = false) needs running_mean and running_var");
  }
  std::vector<int> dims;
  for (std::size_t d = 0; d < s.size(); ++d) {
    if (d != 1) dims.push_back(static_cast<int>(d));
  }
  Dims channel(s.size(), 1);  // [1, C, 1, ...]: a per-channel vector broadcast over x
  channel[1] = static_cast<std::int64_t>(c);
  const T e = static_cast<T>(eps);

  Tensor<T> y;
  if (training) {
    const std::size_t count = c == 0 ? 0 : x.numel() / c;
    if (count <= 1) {
      throw ValueError("xgrad::batch_norm: training needs more than one value per channel (input " +
                       shape_str(s) + ")");
    }
    const Moments<T> m = moments(x, dims, loc);
    y = div(m.centered, sqrt(add(m.var, e, loc), loc), loc);
    const NoGradGuard no_grad;
    const T keep = static_cast<T>(1 - momentum);
    const T take = static_cast<T>(momentum);
    // The running variance is the unbiased one, as PyTorch keeps it.
    const T unbias = static_cast<T>(count) / static_cast<T>(count - 1);
    if (running_mean.defined()) {
      Tensor<T> handle = running_mean;  // shares the caller's state
      Array<T>& r = handle.mutable_value();
      r = keep * r + take * xt::flatten(m.mean.value());
    }
    if (running_var.defined()) {
      Tensor<T> handle = running_var;
      Array<T>& r = handle.mutable_value();
      r = keep * r + (take * unbias) * xt::flatten(m.var.value());
    }
  } else {
    const Tensor<T> mu = reshape(running_mean.detach(), channel, loc);
    const Tensor<T> var = reshape(running_var.detach(), channel, loc);
    y = div(sub(x, mu, loc), sqrt(add(var, e, loc), loc), loc);
  }
  if (weight.defined()) y = mul(y, reshape(weight, channel, loc), loc);
  if (bias.defined()) y = add(y, reshape(bias, channel, loc), loc);
  return y;
}

template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Shape& normalized_shape, const Tensor<T>& weight,
                     const Tensor<T>& bias, double eps, Location loc) {
  const ops::Entry op{"layer_norm", loc};
  const Shape s = x.shape();
  const std::size_t k = normalized_shape.size();
  bool fits = k >= 1 && k <= s.size();
  for (std::size_t i = 0; fits && i < k; ++i) fits = s[s.size() - k + i] == normalized_shape[i];
  const auto fail = [&](const std::string& why) {
    throw ShapeError(
        "xgrad::layer_norm: input " + shape_str(s) + ", normalized_shape " +
        shape_str(normalized_shape) + ", weight " +
        shape_or_none(weight.defined() ? weight.shape() : Shape{}, weight.defined()) + ", bias " +
        shape_or_none(bias.defined() ? bias.shape() : Shape{}, bias.defined()) + ": " + why);
  };
  if (!fits) fail("normalized_shape must be the input's trailing dims (at least one)");
  if (weight.defined() && weight.shape() != normalized_shape)
    fail("weight must be normalized_shape");
  if (bias.defined() && bias.shape() != normalized_shape) fail("bias must be normalized_shape");
  if (!(eps >= 0)) {
    throw ValueError("xgrad::layer_norm: eps " + std::to_string(eps) + " must be >= 0 (input " +
                     shape_str(s) + ")");
  }
  std::size_t count = 1;
  for (std::size_t e : normalized_shape) count *= e;
  if (count == 0) fail("normalized_shape must not be empty");
  std::vector<int> dims;
  for (std::size_t i = 0; i < k; ++i) dims.push_back(static_cast<int>(s.size() - k + i));
  const Moments<T> m = moments(x, dims, loc);
  Tensor<T> y = div(m.centered, sqrt(add(m.var, static_cast<T>(eps), loc), loc), loc);
  if (weight.defined()) y = mul(y, weight, loc);
  if (bias.defined()) y = add(y, bias, loc);
  return y;
}

#define XGRAD_INSTANTIATE_NORMALIZATION(T)                                                   \
  template Tensor<T> batch_norm<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,     \
                                   const Tensor<T>&, const Tensor<T>&, bool, double, double, \
                                   Location);                                                \
  template Tensor<T> layer_norm<T>(const Tensor<T>&, const Shape&, const Tensor<T>&,         \
                                   const Tensor<T>&, double, Location);

XGRAD_INSTANTIATE_NORMALIZATION(float)
XGRAD_INSTANTIATE_NORMALIZATION(double)

}  // namespace xgrad
