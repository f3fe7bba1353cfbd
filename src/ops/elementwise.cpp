// Arithmetic, powers, exp/log and friends, comparisons and where: forward and derivative side by
// side. Formulas in the comments use PyTorch's derivatives.yaml vocabulary. The unary ops are rows
// of ops::unary (unary.hpp); the binary ones write their derivatives with the ops themselves, whose
// forwards take the flat loop when shapes agree and xtensor's broadcasting otherwise.

#include <cmath>
#include <numbers>

#include "common.hpp"
#include "elementwise.hpp"
#include "simd.hpp"

namespace xgrad {

namespace {

using ops::masked;
using ops::Reads;
using ops::unary;
using ops::where_pos;

template <class T>
void check_binary(const char* op, const Tensor<T>& a, const Tensor<T>& b) {
  const auto& sa = a.value().shape();
  const auto& sb = b.value().shape();
  if (!std::equal(sa.begin(), sa.end(), sb.begin(), sb.end())) {
    ops::broadcast_shapes(op, sa, sb);
  }
}

// The elementwise forms, written once for xsimd batches.
constexpr auto plus_f = [](const auto& x, const auto& y) { return x + y; };
constexpr auto minus_f = [](const auto& x, const auto& y) { return x - y; };
constexpr auto times_f = [](const auto& x, const auto& y) { return x * y; };
constexpr auto over_f = [](const auto& x, const auto& y) { return x / y; };

// a (op) b: a flat loop when the shapes agree, xtensor's broadcasting otherwise.
template <class T, class F, class E>
Array<T> binary(const Array<T>& a, const Array<T>& b, F flat, E&& broadcast) {
  if (ops::simd::same_shape(a, b)) return ops::simd::map(a, b, flat);
  return Array<T>(std::forward<E>(broadcast));
}

template <class T>
void check_finite_scalar(const char* op, const char* what, T value) {
  if (std::isnan(value)) {
    throw ValueError(std::string("xgrad::") + op + ": " + what + " is NaN");
  }
}

// Saves of a product-like op: each input is read only for the other's gradient.
template <class T>
Saves cross_saves(const Tensor<T>& a, const Tensor<T>& b, bool output = false) {
  std::uint32_t bits = 0;
  if (b.requires_grad()) bits |= 1u;
  if (a.requires_grad()) bits |= 2u;
  return {bits, output};
}

template <class T>
Tensor<T> zero() {
  return Tensor<T>::scalar(T(0));
}

}  // namespace

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const ops::Entry op{"add", loc};
  check_binary("add", a, b);
  const auto& x = a.value();
  const auto& y = b.value();
  return record<T>(
      op, binary<T>(x, y, plus_f, x + y), {a, b},
      [](const Tensor<T>& grad, Grads<T>& g) {
        g.to(0, grad);  // add: grad
        g.to(1, grad);  // add: grad
      },
      Saves::none());
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const ops::Entry op{"sub", loc};
  check_binary("sub", a, b);
  const auto& x = a.value();
  const auto& y = b.value();
  return record<T>(
      op, binary<T>(x, y, minus_f, x - y), {a, b},
      [](const Tensor<T>& grad, Grads<T>& g) {
        g.to(0, grad);  // sub: grad
        if (!g.needs(1)) return;
        if (g.owns_grad(grad)) {  // input 0 took no share of it: negated where it is
          ops::give(g, 1, grad, true, [n = grad.numel()](T* v) {
            ops::simd::map(v, v, n, [](const auto& e) { return -e; });
          });
        } else {
          g.to(1, neg(grad));  // sub: -grad
        }
      },
      Saves::none());
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const ops::Entry op{"mul", loc};
  check_binary("mul", a, b);
  return ops::binary<T>(
      op, a, b, times_f,
      [](const auto& d, const auto&, const auto& y) { return d * y; },  // mul: grad * other
      [](const auto& d, const auto& x, const auto&) { return d * x; },  // mul: grad * self
      cross_saves(a, b));
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const ops::Entry op{"div", loc};
  check_binary("div", a, b);
  return ops::binary<T>(
      op, a, b, over_f,
      [](const auto& d, const auto&, const auto& y) {
        return masked(d, d / y);
      },  // div: grad / other
      // div: -grad * self / other^2
      [](const auto& d, const auto& x, const auto& y) { return masked(d, -(d * x) / (y * y)); },
      Saves::in({0, 1}));
}

template <class T>
Tensor<T> add(const Tensor<T>& a, Scalar<T> s, Location loc) {
  const ops::Entry op{"add", loc};
  return unary<T>(
      op, a, [s](const auto& x) { return x + s; },
      [](const auto& d, const auto&) { return d; },  // add: grad
      Reads::nothing);
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, Scalar<T> s, Location loc) {
  const ops::Entry op{"mul", loc};
  return unary<T>(
      op, a, [s](const auto& x) { return x * s; },
      [s](const auto& d, const auto&) { return d * s; },  // mul: grad * other
      Reads::nothing);
}

template <class T>
Tensor<T> div(const Tensor<T>& a, Scalar<T> s, Location loc) {
  const ops::Entry op{"div", loc};
  return unary<T>(
      op, a, [s](const auto& x) { return x / s; },
      [s](const auto& d, const auto&) { return d / s; },  // div: grad / other
      Reads::nothing);
}

template <class T>
Tensor<T> rsub(Scalar<T> s, const Tensor<T>& a, Location loc) {
  const ops::Entry op{"rsub", loc};
  return unary<T>(
      op, a, [s](const auto& x) { return s - x; },
      [](const auto& d, const auto&) { return -d; },  // rsub: -grad
      Reads::nothing);
}

template <class T>
Tensor<T> rdiv(Scalar<T> s, const Tensor<T>& a, Location loc) {
  const ops::Entry op{"rdiv", loc};
  return unary<T>(
      op, a, [s](const auto& x) { return s / x; },
      // rdiv: -grad * other / self^2
      [s](const auto& d, const auto& x) { return masked(d, d * (-s) / (x * x)); }, Reads::input);
}

template <class T>
Tensor<T> neg(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"neg", loc};
  return unary<T>(
      op, a, [](const auto& x) { return -x; },
      [](const auto& d, const auto&) { return -d; },  // neg: -grad
      Reads::nothing);
}

template <class T>
Tensor<T> pow(const Tensor<T>& a, Scalar<T> p, Location loc) {
  const ops::Entry op{"pow", loc};
  check_finite_scalar("pow", "the exponent", p);
  // Common exponents exactly: a vectorised pow is accurate to an ulp or so, a product is exact.
  // pow: grad * exponent * self^(exponent - 1); exactly 0 for exponent 0
  if (p == T(2)) {
    return unary<T>(
        op, a, [](const auto& x) { return x * x; },
        [](const auto& d, const auto& x) { return d * (x * T(2)); }, Reads::input);
  }
  if (p == T(1)) {
    return unary<T>(
        op, a, [](const auto& x) { return x * T(1); },
        [](const auto& d, const auto&) { return d * T(1); }, Reads::nothing);
  }
  if (p == T(0)) {
    return unary<T>(
        op, a,
        [](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          return X(T(1));
        },
        [](const auto& d, const auto&) { return d * T(0); }, Reads::nothing);
  }
  if (p == T(-1)) {
    return unary<T>(
        op, a, [](const auto& x) { return T(1) / x; },
        [](const auto& d, const auto& x) { return masked(d, -(d / (x * x))); }, Reads::input);
  }
  if (p == T(0.5)) {
    return unary<T>(
        op, a, [](const auto& x) { return sqrt(x); },
        [](const auto& d, const auto& r) { return masked(d, d * (T(0.5) / r)); }, Reads::output);
  }
  return unary<T>(
      op, a,
      [p](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        return xsimd::pow(x, X(p));
      },
      [p](const auto& d, const auto& x) {
        if constexpr (ops::is_tensor_v<std::decay_t<decltype(x)>>) {
          return masked(d, d * (pow(x, p - T(1)) * p));
        } else {
          using X = std::decay_t<decltype(x)>;
          return masked(d, d * (xsimd::pow(x, X(p - T(1))) * p));
        }
      },
      Reads::input);
}

template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const ops::Entry op{"pow", loc};
  check_binary("pow", a, b);
  return record<T>(
      op, xt::pow(a.value(), b.value()), {a, b},
      [](const Tensor<T>& grad, Grads<T>& g) {
        const Tensor<T> base = g.in(0);
        const Tensor<T> e = g.in(1);
        // pow: grad * exponent * self^(exponent - 1)
        // NOTE: exactly 0 where the exponent is 0, or 0 * 0^-1 = NaN at a zero base.
        if (g.needs(0)) {
          const Tensor<T> local = mul(grad, mul(e, pow(base, sub(e, Tensor<T>::scalar(T(1))))));
          g.to(0, where(eq(e, zero<T>()), zero<T>(), masked(grad, local)));
        }
        // pow: grad * result * log(self), taken as 0 where self == 0 and exponent >= 0
        // (the limit from the right), as PyTorch does.
        if (g.needs(1)) {
          const Tensor<T> limit = mul(eq(base, zero<T>()), ge(e, zero<T>()));
          const Tensor<T> local = mul(grad, mul(g.out(), log(base)));
          g.to(1, where(limit, zero<T>(), masked(grad, local)));
        }
      },
      Saves::in({0, 1}, true));
}

template <class T>
Tensor<T> exp(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"exp", loc};
  return unary<T>(
      op, a, [](const auto& x) { return exp(x); },
      [](const auto& d, const auto& r) { return d * r; },  // exp: grad * result
      Reads::output);
}

template <class T>
Tensor<T> log(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"log", loc};
  return unary<T>(
      op, a, [](const auto& x) { return log(x); },
      [](const auto& d, const auto& x) { return masked(d, d / x); },  // log: grad / self
      Reads::input);
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"sqrt", loc};
  return unary<T>(
      op, a, [](const auto& x) { return sqrt(x); },
      // sqrt: grad / (2 * result)
      [](const auto& d, const auto& r) { return masked(d, d * (T(0.5) / r)); }, Reads::output);
}

template <class T>
Tensor<T> sin(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"sin", loc};
  return unary<T>(
      op, a, [](const auto& x) { return sin(x); },
      [](const auto& d, const auto& x) { return d * cos(x); },  // sin: grad * cos(self)
      Reads::input);
}

template <class T>
Tensor<T> cos(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"cos", loc};
  return unary<T>(
      op, a, [](const auto& x) { return cos(x); },
      [](const auto& d, const auto& x) { return -(d * sin(x)); },  // cos: -grad * sin(self)
      Reads::input);
}

template <class T>
Tensor<T> erf(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"erf", loc};
  return unary<T>(
      op, a, [](const auto& x) { return ops::simd::erf(x); },
      // erf: grad * 2 / sqrt(pi) * exp(-self^2)
      [](const auto& d, const auto& x) {
        return d * (exp(-(x * x)) * (T(2) * std::numbers::inv_sqrtpi_v<T>));
      },
      Reads::input);
}

template <class T>
Tensor<T> abs(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"abs", loc};
  return unary<T>(
      op, a, [](const auto& x) { return abs(x); },
      // abs: grad * sign(self), 0 at 0
      [](const auto& d, const auto& x) { return where_pos(x, d, where_pos(-x, -d, T(0))); },
      Reads::input);
}

template <class T>
Tensor<T> clamp(const Tensor<T>& a, Scalar<T> lo, Scalar<T> hi, Location loc) {
  const ops::Entry op{"clamp", loc};
  check_finite_scalar("clamp", "the lower bound", lo);
  check_finite_scalar("clamp", "the upper bound", hi);
  if (lo > hi) {
    throw ValueError("xgrad::clamp: lower bound " + std::to_string(lo) +
                     " is greater than upper bound " + std::to_string(hi));
  }
  return record<T>(
      op, xt::clip(a.value(), lo, hi), {a},
      [lo, hi](const Tensor<T>& grad, Grads<T>& g) {
        if (!g.needs(0)) return;
        // clamp: grad where lo <= self <= hi, else 0 (a constant mask: piecewise linear)
        const auto& x = g.value(0);
        g.to(0, mul(grad, Tensor<T>(Array<T>(xt::cast<T>((x >= lo) && (x <= hi))))));
      },
      Saves::in({0}));
}

namespace {
// The share of the gradient that goes to `a` in maximum (larger = true) or minimum: all of it
// where a wins (or is NaN), half on a tie, none elsewhere. Piecewise constant, so a constant mask.
template <class T>
Tensor<T> winner_share(const Array<T>& x, const Array<T>& y, bool larger, bool first) {
  const auto& a = first ? x : y;
  const auto& b = first ? y : x;
  Array<T> share = larger ? Array<T>(xt::where(xt::isnan(a) || (a > b), T(1), T(0)))
                          : Array<T>(xt::where(xt::isnan(a) || (a < b), T(1), T(0)));
  // NaN on the other side wins for it (the first operand's NaN wins over the second's).
  if (!first) share = xt::where(xt::isnan(b), T(0), share);
  share = xt::where(xt::equal(x, y), T(0.5), share);
  return Tensor<T>(std::move(share));
}

template <class T>
Tensor<T> extremum(const char* name, Location loc, const Tensor<T>& a, const Tensor<T>& b,
                   bool larger) {
  const ops::Entry op{name, loc};
  check_binary(name, a, b);
  const auto& av = a.value();
  const auto& bv = b.value();
  // NaN propagates, as in numpy.maximum and torch.maximum.
  Array<T> out = larger ? Array<T>(xt::where(xt::isnan(av), av,
                                             xt::where(xt::isnan(bv), bv, xt::maximum(av, bv))))
                        : Array<T>(xt::where(xt::isnan(av), av,
                                             xt::where(xt::isnan(bv), bv, xt::minimum(av, bv))));
  return record<T>(
      op, std::move(out), {a, b},
      [larger](const Tensor<T>& grad, Grads<T>& g) {
        // maximum: grad to the larger side (or the NaN one); a tie splits it (minimum alike)
        const auto& x = g.value(0);
        const auto& y = g.value(1);
        if (g.needs(0)) g.to(0, mul(grad, winner_share(x, y, larger, true)));
        if (g.needs(1)) g.to(1, mul(grad, winner_share(x, y, larger, false)));
      },
      Saves::in({0, 1}));
}
}  // namespace

template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  return extremum("maximum", loc, a, b, true);
}

template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  return extremum("minimum", loc, a, b, false);
}

template <class T>
Tensor<T> where(const Tensor<T>& cond, const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const ops::Entry op{"where", loc};
  const auto& sc = cond.value().shape();
  ops::broadcast_shapes("where", ops::broadcast_shapes("where", sc, a.value().shape()),
                        b.value().shape());
  Array<T> out = xt::where(xt::not_equal(cond.value(), T(0)), a.value(), b.value());
  // cond is an input only so that the derivative can read it; it never receives a gradient.
  return record<T>(
      op, std::move(out), {cond, a, b},
      [](const Tensor<T>& grad, Grads<T>& g) {
        // where: grad where cond for self, grad where !cond for other; an exact 0 elsewhere
        const Tensor<T> c = g.in(0).detach();
        if (g.needs(1)) g.to(1, where(c, grad, zero<T>()));
        if (g.needs(2)) g.to(2, where(c, zero<T>(), grad));
      },
      Saves::in({0}));
}

namespace {
template <class T, class F>
Tensor<T> compare(const char* op, const Tensor<T>& a, const Tensor<T>& b, F f) {
  const profiler::record_function region(op);
  check_binary(op, a, b);
  return Tensor<T>(Array<T>(xt::cast<T>(f(a.value(), b.value()))));
}
}  // namespace

template <class T>
Tensor<T> gt(const Tensor<T>& a, const Tensor<T>& b) {
  return compare("gt", a, b, [](const auto& x, const auto& y) { return xt::greater(x, y); });
}
template <class T>
Tensor<T> lt(const Tensor<T>& a, const Tensor<T>& b) {
  return compare("lt", a, b, [](const auto& x, const auto& y) { return xt::less(x, y); });
}
template <class T>
Tensor<T> ge(const Tensor<T>& a, const Tensor<T>& b) {
  return compare("ge", a, b, [](const auto& x, const auto& y) { return xt::greater_equal(x, y); });
}
template <class T>
Tensor<T> le(const Tensor<T>& a, const Tensor<T>& b) {
  return compare("le", a, b, [](const auto& x, const auto& y) { return xt::less_equal(x, y); });
}
template <class T>
Tensor<T> eq(const Tensor<T>& a, const Tensor<T>& b) {
  return compare("eq", a, b, [](const auto& x, const auto& y) { return xt::equal(x, y); });
}

#define XGRAD_INSTANTIATE_ELEMENTWISE(T)                                                       \
  template Tensor<T> add<T>(const Tensor<T>&, const Tensor<T>&, Location);                     \
  template Tensor<T> sub<T>(const Tensor<T>&, const Tensor<T>&, Location);                     \
  template Tensor<T> mul<T>(const Tensor<T>&, const Tensor<T>&, Location);                     \
  template Tensor<T> div<T>(const Tensor<T>&, const Tensor<T>&, Location);                     \
  template Tensor<T> add<T>(const Tensor<T>&, Scalar<T>, Location);                            \
  template Tensor<T> mul<T>(const Tensor<T>&, Scalar<T>, Location);                            \
  template Tensor<T> div<T>(const Tensor<T>&, Scalar<T>, Location);                            \
  template Tensor<T> rsub<T>(Scalar<T>, const Tensor<T>&, Location);                           \
  template Tensor<T> rdiv<T>(Scalar<T>, const Tensor<T>&, Location);                           \
  template Tensor<T> neg<T>(const Tensor<T>&, Location);                                       \
  template Tensor<T> pow<T>(const Tensor<T>&, Scalar<T>, Location);                            \
  template Tensor<T> pow<T>(const Tensor<T>&, const Tensor<T>&, Location);                     \
  template Tensor<T> exp<T>(const Tensor<T>&, Location);                                       \
  template Tensor<T> log<T>(const Tensor<T>&, Location);                                       \
  template Tensor<T> sqrt<T>(const Tensor<T>&, Location);                                      \
  template Tensor<T> sin<T>(const Tensor<T>&, Location);                                       \
  template Tensor<T> cos<T>(const Tensor<T>&, Location);                                       \
  template Tensor<T> erf<T>(const Tensor<T>&, Location);                                       \
  template Tensor<T> abs<T>(const Tensor<T>&, Location);                                       \
  template Tensor<T> clamp<T>(const Tensor<T>&, Scalar<T>, Scalar<T>, Location);               \
  template Tensor<T> maximum<T>(const Tensor<T>&, const Tensor<T>&, Location);                 \
  template Tensor<T> minimum<T>(const Tensor<T>&, const Tensor<T>&, Location);                 \
  template Tensor<T> where<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Location); \
  template Tensor<T> gt<T>(const Tensor<T>&, const Tensor<T>&);                                \
  template Tensor<T> lt<T>(const Tensor<T>&, const Tensor<T>&);                                \
  template Tensor<T> ge<T>(const Tensor<T>&, const Tensor<T>&);                                \
  template Tensor<T> le<T>(const Tensor<T>&, const Tensor<T>&);                                \
  template Tensor<T> eq<T>(const Tensor<T>&, const Tensor<T>&);

XGRAD_INSTANTIATE_ELEMENTWISE(float)
XGRAD_INSTANTIATE_ELEMENTWISE(double)

}  // namespace xgrad
