// Activations: sigmoid, tanh, the ReLU family, GELU, SiLU, softplus, softmax and log_softmax, and
// the zero-gradient step functions used by perceptrons.

#include <cmath>
#include <memory>
#include <numbers>
#include <random>
#include <string>

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

// The logistic function in a formula: the op on tensors (so that a recorded derivative is
// differentiable again), the overflow-free form on batches.
template <class X>
X logistic(const X& x) {
  if constexpr (ops::is_tensor_v<X>) {
    return sigmoid(x);
  } else {
    return ops::simd::sigmoid(x);
  }
}

// GELU's constants: sqrt(2 / pi) and the cubic coefficient of the tanh form, 1 / sqrt(2) and
// 1 / sqrt(2 pi) of the normal distribution.
template <class T>
constexpr T gelu_k = std::numbers::sqrt2_v<T>* std::numbers::inv_sqrtpi_v<T>;
template <class T>
constexpr T gelu_c = T(0.044715);
template <class T>
constexpr T inv_sqrt2 = std::numbers::sqrt2_v<T> / T(2);
template <class T>
constexpr T inv_sqrt_2pi = inv_sqrt2<T>* std::numbers::inv_sqrtpi_v<T>;

template <class T>
void check_not_nan(const char* op, const char* what, T value) {
  if (std::isnan(value)) throw ValueError(std::string("xgrad::") + op + ": " + what + " is NaN");
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
Tensor<T> gelu(const Tensor<T>& a, bool approximate, Location loc) {
  const ops::Entry op{"gelu", loc};
  if (approximate) {
    return unary<T>(
        op, a,
        [](const auto& x) {
          const auto u = (x + x * x * x * gelu_c<T>)*gelu_k<T>;
          return x * ((T(1) + tanh(u)) * T(0.5));
        },
        // gelu (tanh): grad * (0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)),
        // t = tanh(k (x + c x^3)), k = sqrt(2 / pi), c = 0.044715
        [](const auto& d, const auto& x) {
          const auto x2 = x * x;
          const auto t = tanh((x + x2 * x * gelu_c<T>)*gelu_k<T>);
          const auto du = (T(1) + x2 * (T(3) * gelu_c<T>)) * (T(0.5) * gelu_k<T>);
          return d * ((T(1) + t) * T(0.5) + x * (T(1) - t * t) * du);
        },
        Reads::input);
  }
  // Phi(x) as erfc(-x / sqrt(2)) / 2 rather than (1 + erf(x / sqrt(2))) / 2: the sum cancels to
  // a few correct digits in the left tail, erfc stays accurate there. Phi is kept for the
  // derivative: erfc is most of the cost of either pass.
  const Array<T>& x = a.value();
  auto phi = std::make_shared<Array<T>>(Array<T>::from_shape(x.shape()));
  ops::simd::map(x.data(), phi->data(), x.size(),
                 [](const auto& v) { return T(0.5) * ops::simd::erfc(v * -inv_sqrt2<T>); });
  Array<T> out = ops::simd::map(x, *phi, [](const auto& v, const auto& p) { return v * p; });
  return record<T>(
      op, std::move(out), {a},
      [phi](const Tensor<T>& grad, Grads<T>& g) {
        if (!g.needs(0)) return;
        // gelu: grad * (Phi(x) + x phi(x)), phi(x) = e^(-x^2 / 2) / sqrt(2 pi)
        if (g.create_graph()) {
          // erfc is no op: Phi through erf keeps the recorded derivative differentiable.
          const Tensor<T> xin = g.in(0);
          const Tensor<T> x_phi = xin * exp(xin * xin * T(-0.5)) * inv_sqrt_2pi<T>;
          g.to(0, grad * (erf(xin * inv_sqrt2<T>) * T(0.5) + T(0.5) + x_phi));
          return;
        }
        const Array<T>& d = grad.value();
        const Array<T>& xv = g.value(0);
        ops::simd::check_sizes(d, xv);
        ops::simd::check_sizes(d, *phi);
        ops::give(g, 0, grad, g.owns_grad(grad), [&](T* o) {
          ops::simd::map(d.data(), xv.data(), phi->data(), o, d.size(),
                         [](const auto& dk, const auto& xk, const auto& pk) {
                           return dk * (pk + xk * exp(xk * xk * T(-0.5)) * inv_sqrt_2pi<T>);
                         });
        });
      },
      Saves::in({0}));
}

template <class T>
Tensor<T> gelu(const Tensor<T>& a, const char* approximate, Location loc) {
  const std::string form = approximate ? approximate : "(null)";
  if (form != "none" && form != "tanh") {
    throw ValueError("xgrad::gelu: approximate must be \"none\" or \"tanh\", got \"" + form + "\"");
  }
  return gelu(a, form == "tanh", loc);
}

template <class T>
Tensor<T> silu(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"silu", loc};
  return unary<T>(
      op, a, [](const auto& x) { return x * ops::simd::sigmoid(x); },
      // silu: grad * s (1 + x (1 - s)), s = sigmoid(x)
      [](const auto& d, const auto& x) {
        const auto s = logistic(x);
        return d * (s * (T(1) + x * (T(1) - s)));
      },
      Reads::input);
}

template <class T>
Tensor<T> softplus(const Tensor<T>& a, Scalar<T> beta, Scalar<T> threshold, Location loc) {
  const ops::Entry op{"softplus", loc};
  check_not_nan("softplus", "beta", beta);
  check_not_nan("softplus", "threshold", threshold);
  if (beta == T(0)) throw ValueError("xgrad::softplus: beta must be nonzero, got 0");
  return unary<T>(
      op, a,
      [beta, threshold](const auto& x) {
        using B = std::decay_t<decltype(x)>;
        const B z = x * beta;
        // log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no exponent is positive, so nothing
        // overflows whatever beta and threshold are.
        const B soft = (xsimd::max(z, B(T(0))) + xsimd::log1p(xsimd::exp(-xsimd::abs(z)))) / beta;
        return xsimd::select(z > B(threshold), x, soft);
      },
      // softplus: grad where beta x > threshold, else grad * sigmoid(beta x)
      [beta, threshold](const auto& d, const auto& x) {
        const auto z = x * beta;
        return where_pos(z - threshold, d, d * logistic(z));
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

template <class T>
Tensor<T> dropout(const Tensor<T>& a, double p, bool training, Generator& gen, Location loc) {
  const ops::Entry op{"dropout", loc};
  if (!(p >= 0 && p < 1)) {
    throw ValueError("xgrad::dropout: probability " + std::to_string(p) +
                     " must be in [0, 1) (input " + shape_str(a.shape()) + ")");
  }
  if (!training || p == 0) return a;
  // Inverted dropout: survivors are scaled at training time so evaluation needs no rescaling.
  Array<T> mask = Array<T>::from_shape(a.value().shape());
  std::bernoulli_distribution keep(1.0 - p);
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  auto& engine = gen.engine();
  for (auto& m : mask) m = keep(engine) ? scale : T(0);
  return mul(a, Tensor<T>(std::move(mask)), loc);
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

#define XGRAD_INSTANTIATE_ACTIVATION(T)                                                \
  template Tensor<T> sigmoid<T>(const Tensor<T>&, Location);                           \
  template Tensor<T> tanh<T>(const Tensor<T>&, Location);                              \
  template Tensor<T> relu<T>(const Tensor<T>&, Location);                              \
  template Tensor<T> leaky_relu<T>(const Tensor<T>&, Scalar<T>, Location);             \
  template Tensor<T> softmax<T>(const Tensor<T>&, int, Location);                      \
  template Tensor<T> log_softmax<T>(const Tensor<T>&, int, Location);                  \
  template Tensor<T> gelu<T>(const Tensor<T>&, bool, Location);                        \
  template Tensor<T> gelu<T>(const Tensor<T>&, const char*, Location);                 \
  template Tensor<T> silu<T>(const Tensor<T>&, Location);                              \
  template Tensor<T> softplus<T>(const Tensor<T>&, Scalar<T>, Scalar<T>, Location);    \
  template Tensor<T> step<T>(const Tensor<T>&, Scalar<T>, Location);                   \
  template Tensor<T> dropout<T>(const Tensor<T>&, double, bool, Generator&, Location); \
  template Tensor<T> heaviside<T>(const Tensor<T>&, Scalar<T>, Location);

XGRAD_INSTANTIATE_ACTIVATION(float)
XGRAD_INSTANTIATE_ACTIVATION(double)

}  // namespace xgrad
