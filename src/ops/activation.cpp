// Activations: sigmoid, tanh, the ReLU family, softmax and log_softmax, and the zero-gradient
// step functions used by perceptrons.

#include <cmath>

#include "common.hpp"
#include "elementwise.hpp"
#include "simd.hpp"

namespace xgrad {

namespace {
using ops::Reads;
using ops::unary;
using ops::where_pos;

// Row maxima along dim with keepdim, with -inf replaced by 0: a row of all -inf must not turn
// into NaN through -inf - (-inf) when it is shifted.
template <class T>
Array<T> finite_max(const Array<T>& x, std::size_t dim) {
  Array<T> m = xt::amax(x, {dim}, xt::keep_dims);
  return xt::where(xt::isfinite(m), m, T(0));
}

// An op over an empty tensor: an empty result and an empty gradient. (xtensor's reducers must
// not see empty arrays: they do pointer arithmetic on null data.)
template <class T>
Tensor<T> empty_like_op(OpName name, const Tensor<T>& a) {
  return record<T>(
      name, Array<T>(a.value()), {a}, [](const Tensor<T>& grad, Grads<T>& g) { g.to(0, grad); },
      Saves::none());
}

template <class T, class E>
Array<T> sum_keep(E&& e, std::size_t dim) {
  return xt::sum(std::forward<E>(e), {dim}, xt::keep_dims);
}
}  // namespace

template <class T>
Tensor<T> sigmoid(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"sigmoid", loc};
  // NOTE: 1 / (1 + e^-x) overflows e^-x for x << 0; ops::simd::sigmoid takes e^-|x| so that
  // every exponent is <= 0.
  return unary<T>(
      op, a, [](const auto& x) { return ops::simd::sigmoid(x); },
      // sigmoid: grad * result * (1 - result)
      [](const auto& d, const auto& r) { return d * (r * (T(1) - r)); }, Reads::output);
}

template <class T>
Tensor<T> tanh(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"tanh", loc};
  return unary<T>(
      op, a, [](const auto& x) { return tanh(x); },
      [](const auto& d, const auto& r) {
        return d * (T(1) - r * r);
      },  // tanh: grad * (1 - result^2)
      Reads::output);
}

template <class T>
Tensor<T> relu(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"relu", loc};
  return unary<T>(
      op, a,
      // x <= 0 rather than x > 0 selects the zeros, so that NaN passes through as in PyTorch.
      [](const auto& x) {
        using B = std::decay_t<decltype(x)>;
        return xsimd::select(x <= B(T(0)), B(T(0)), x);
      },
      // relu: grad where result > 0. NOTE: the subgradient at 0 is taken as 0, as PyTorch does,
      // so a unit that is exactly 0 stays dead.
      [](const auto& d, const auto& r) { return where_pos(r, d, T(0)); }, Reads::output);
}

template <class T>
Tensor<T> leaky_relu(const Tensor<T>& a, Scalar<T> negative_slope, Location loc) {
  const ops::Entry op{"leaky_relu", loc};
  return unary<T>(
      op, a,
      [negative_slope](const auto& x) {
        using B = std::decay_t<decltype(x)>;
        return xsimd::select(x > B(T(0)), x, x * negative_slope);
      },
      // leaky_relu: grad where self > 0, else grad * negative_slope
      [negative_slope](const auto& d, const auto& x) {
        return where_pos(x, d, d * negative_slope);
      },
      Reads::input);
}

template <class T>
Tensor<T> softmax(const Tensor<T>& a, int dim, Location loc) {
  const ops::Entry op{"softmax", loc};
  const auto& x = a.value();
  const std::size_t d = ops::normalize_dim("softmax", dim, x.dimension(), a.shape());
  if (x.size() == 0) return empty_like_op(op, a);
  Array<T> e = xt::exp(x - finite_max(x, d));
  Array<T> out = e / sum_keep<T>(e, d);
  const int dd = static_cast<int>(d);
  return record<T>(
      op, std::move(out), {a},
      [dd](const Tensor<T>& grad, Grads<T>& g) {
        if (!g.needs(0)) return;
        const Tensor<T> y = g.out();
        // softmax: result * (grad - sum(grad * result, dim))
        g.to(0, y * (grad - sum(grad * y, {dd}, true)));
      },
      Saves::result());
}

template <class T>
Tensor<T> log_softmax(const Tensor<T>& a, int dim, Location loc) {
  const ops::Entry op{"log_softmax", loc};
  const auto& x = a.value();
  const std::size_t d = ops::normalize_dim("log_softmax", dim, x.dimension(), a.shape());
  if (x.size() == 0) return empty_like_op(op, a);
  // NOTE: log(sum(exp(x))) overflows at x = 1000; shifting by the max keeps exp in (0, 1].
  const Array<T> shifted = x - finite_max(x, d);
  Array<T> out = shifted - xt::log(sum_keep<T>(xt::exp(shifted), d));
  const int dd = static_cast<int>(d);
  return record<T>(
      op, std::move(out), {a},
      [dd](const Tensor<T>& grad, Grads<T>& g) {
        if (!g.needs(0)) return;
        // log_softmax: grad - exp(result) * sum(grad, dim)
        g.to(0, grad - exp(g.out()) * sum(grad, {dd}, true));
      },
      Saves::result());
}

namespace {
// The derivative of a piecewise-constant op: 0 everywhere (and so is every higher one).
template <class T>
void zero_derivative(const Tensor<T>& grad, Grads<T>& g) {
  if (g.needs(0)) g.to(0, Tensor<T>(Array<T>(grad.value().shape(), T(0))));
}
}  // namespace

template <class T>
Tensor<T> step(const Tensor<T>& a, Scalar<T> threshold, Location loc) {
  const ops::Entry op{"step", loc};
  const auto& x = a.value();
  Array<T> out = xt::where(xt::isnan(x), x, xt::where(x > threshold, T(1), T(0)));
  // step: 0 (piecewise constant)
  return record<T>(op, std::move(out), {a}, zero_derivative<T>, Saves::none());
}

template <class T>
Tensor<T> heaviside(const Tensor<T>& a, Scalar<T> value_at_zero, Location loc) {
  const ops::Entry op{"heaviside", loc};
  const auto& x = a.value();
  Array<T> out =
      xt::where(xt::isnan(x), x,
                xt::where(x < T(0), T(0), xt::where(xt::equal(x, T(0)), value_at_zero, T(1))));
  // heaviside: 0 (piecewise constant)
  return record<T>(op, std::move(out), {a}, zero_derivative<T>, Saves::none());
}

#define XGRAD_INSTANTIATE_ACTIVATION(T)                                    \
  template Tensor<T> sigmoid<T>(const Tensor<T>&, Location);               \
  template Tensor<T> tanh<T>(const Tensor<T>&, Location);                  \
  template Tensor<T> relu<T>(const Tensor<T>&, Location);                  \
  template Tensor<T> leaky_relu<T>(const Tensor<T>&, Scalar<T>, Location); \
  template Tensor<T> softmax<T>(const Tensor<T>&, int, Location);          \
  template Tensor<T> log_softmax<T>(const Tensor<T>&, int, Location);      \
  template Tensor<T> step<T>(const Tensor<T>&, Scalar<T>, Location);       \
  template Tensor<T> heaviside<T>(const Tensor<T>&, Scalar<T>, Location);

XGRAD_INSTANTIATE_ACTIVATION(float)
XGRAD_INSTANTIATE_ACTIVATION(double)

}  // namespace xgrad
