// Arithmetic, powers, exp/log and friends, comparisons and where: forward and backward side by
// side. Formulas in the comments use PyTorch's derivatives.yaml vocabulary.

#include <cmath>

#include "common.hpp"
#include "simd.hpp"

namespace xgrad {

namespace {

template <class T>
void check_binary(const char* op, const Tensor<T>& a, const Tensor<T>& b) {
  const auto& sa = a.value().shape();
  const auto& sb = b.value().shape();
  if (!std::equal(sa.begin(), sa.end(), sb.begin(), sb.end())) {
    ops::broadcast_shapes(op, sa, sb);
  }
}

// NOTE: where the incoming gradient is exactly zero the result is zero, even if the local
// derivative is infinite (log at 0, 1/b at b = 0). Without this, where(x > 0, log(x), 0) would
// send 0 * inf = NaN back to x through the branch that was not taken.
template <class T, class E>
Array<T> masked(const Array<T>& grad, E&& local) {
  return xt::where(xt::equal(grad, T(0)), T(0), grad * std::forward<E>(local));
}

// The elementwise forms, written once for xsimd batches.
constexpr auto plus_f = [](const auto& x, const auto& y) { return x + y; };
constexpr auto minus_f = [](const auto& x, const auto& y) { return x - y; };
constexpr auto times_f = [](const auto& x, const auto& y) { return x * y; };
constexpr auto over_f = [](const auto& x, const auto& y) { return x / y; };
constexpr auto neg_f = [](const auto& x) { return -x; };

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

}  // namespace

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  check_binary("add", a, b);
  const auto& x = a.value();
  const auto& y = b.value();
  return record<T>({"add", loc}, binary<T>(x, y, plus_f, x + y), {a, b},
                   [](const Array<T>& grad, Grads<T>& g) {
                     g.to(0, grad);  // add: grad
                     g.to(1, grad);  // add: grad
                   });
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  check_binary("sub", a, b);
  const auto& x = a.value();
  const auto& y = b.value();
  return record<T>({"sub", loc}, binary<T>(x, y, minus_f, x - y), {a, b},
                   [](const Array<T>& grad, Grads<T>& g) {
                     g.to(0, grad);                                         // sub: grad
                     if (g.needs(1)) g.to(1, ops::simd::map(grad, neg_f));  // sub: -grad
                   });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  check_binary("mul", a, b);
  const auto& x = a.value();
  const auto& y = b.value();
  return record<T>({"mul", loc}, binary<T>(x, y, times_f, x * y), {a, b},
                   [](const Array<T>& grad, Grads<T>& g) {
                     if (g.needs(0)) {
                       const auto& other = g.in(1);
                       g.to(0, binary<T>(grad, other, times_f, grad * other));  // mul: grad * other
                     }
                     if (g.needs(1)) {
                       const auto& self = g.in(0);
                       g.to(1, binary<T>(grad, self, times_f, grad * self));  // mul: grad * self
                     }
                   });
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  check_binary("div", a, b);
  const auto& x = a.value();
  const auto& y = b.value();
  return record<T>({"div", loc}, binary<T>(x, y, over_f, x / y), {a, b},
                   [](const Array<T>& grad, Grads<T>& g) {
                     const auto& other = g.in(1);
                     const bool flat = ops::simd::same_shape(grad, other);
                     if (g.needs(0)) {
                       // div: grad / other
                       if (flat) {
                         g.to(0, ops::simd::map(grad, other, [](const auto& d, const auto& o) {
                                return ops::simd::masked(d, d / o);
                              }));
                       } else {
                         g.to(0, masked(grad, T(1) / other));
                       }
                     }
                     if (g.needs(1)) {
                       // div: -grad * result / other
                       const auto& result = g.out();
                       if (flat) {
                         g.to(1, ops::simd::map(grad, result, other,
                                                [](const auto& d, const auto& r, const auto& o) {
                                                  return ops::simd::masked(d, d * -(r / o));
                                                }));
                       } else {
                         g.to(1, masked(grad, -result / other));
                       }
                     }
                   });
}

template <class T>
Tensor<T> add(const Tensor<T>& a, Scalar<T> s, Location loc) {
  const auto shift = [s](const auto& x) { return x + s; };
  return record<T>({"add", loc}, ops::simd::map(a.value(), shift), {a},
                   [](const Array<T>& grad, Grads<T>& g) {
                     g.to(0, grad);  // add: grad
                   });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, Scalar<T> s, Location loc) {
  const auto scale = [s](const auto& x) { return x * s; };
  return record<T>({"mul", loc}, ops::simd::map(a.value(), scale), {a},
                   [scale](const Array<T>& grad, Grads<T>& g) {
                     if (g.needs(0)) g.to(0, ops::simd::map(grad, scale));  // mul: grad * other
                   });
}

template <class T>
Tensor<T> div(const Tensor<T>& a, Scalar<T> s, Location loc) {
  const auto shrink = [s](const auto& x) { return x / s; };
  return record<T>({"div", loc}, ops::simd::map(a.value(), shrink), {a},
                   [shrink](const Array<T>& grad, Grads<T>& g) {
                     if (g.needs(0)) g.to(0, ops::simd::map(grad, shrink));  // div: grad / other
                   });
}

template <class T>
Tensor<T> rsub(Scalar<T> s, const Tensor<T>& a, Location loc) {
  const auto from = [s](const auto& x) { return s - x; };
  return record<T>({"rsub", loc}, ops::simd::map(a.value(), from), {a},
                   [](const Array<T>& grad, Grads<T>& g) {
                     if (g.needs(0)) g.to(0, ops::simd::map(grad, neg_f));  // rsub: -grad
                   });
}

template <class T>
Tensor<T> rdiv(Scalar<T> s, const Tensor<T>& a, Location loc) {
  return record<T>({"rdiv", loc}, s / a.value(), {a}, [](const Array<T>& grad, Grads<T>& g) {
    g.to(0, masked(grad, -g.out() / g.in(0)));  // rdiv: -grad * result / self
  });
}

template <class T>
Tensor<T> neg(const Tensor<T>& a, Location loc) {
  return record<T>({"neg", loc}, ops::simd::map(a.value(), neg_f), {a},
                   [](const Array<T>& grad, Grads<T>& g) {
                     if (g.needs(0)) g.to(0, ops::simd::map(grad, neg_f));  // neg: -grad
                   });
}

template <class T>
Tensor<T> pow(const Tensor<T>& a, Scalar<T> p, Location loc) {
  check_finite_scalar("pow", "the exponent", p);
  // Common exponents exactly: a vectorised pow is accurate to an ulp or so, a product is exact.
  const auto& x = a.value();
  Array<T> out = p == T(2)     ? ops::simd::map(x, [](const auto& v) { return v * v; })
                 : p == T(1)   ? Array<T>(x)
                 : p == T(0.5) ? Array<T>(xt::sqrt(x))
                 : p == T(-1)  ? Array<T>(T(1) / x)
                               : Array<T>(xt::pow(x, p));
  return record<T>({"pow", loc}, std::move(out), {a}, [p](const Array<T>& grad, Grads<T>& g) {
    // pow: grad * exponent * self^(exponent - 1); exactly 0 for exponent 0
    if (p == T(0)) {
      g.to(0, xt::zeros_like(grad));
    } else {
      const auto& base = g.in(0);
      if (p == T(2)) {
        const auto twice = [](const auto& d, const auto& b) { return d * (T(2) * b); };
        g.to(0, ops::simd::map(grad, base, twice));
      } else if (p == T(1)) {
        g.to(0, grad);
      } else {
        g.to(0, masked(grad, p * xt::pow(base, p - T(1))));
      }
    }
  });
}

template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  check_binary("pow", a, b);
  return record<T>(
      {"pow", loc}, xt::pow(a.value(), b.value()), {a, b}, [](const Array<T>& grad, Grads<T>& g) {
        const auto& base = g.in(0);
        const auto& e = g.in(1);
        // pow: grad * exponent * self^(exponent - 1)
        // NOTE: exactly 0 where the exponent is 0, or 0 * 0^-1 = NaN at a zero base.
        if (g.needs(0)) {
          g.to(0, xt::where(xt::equal(e, T(0)), T(0), masked(grad, e * xt::pow(base, e - T(1)))));
        }
        // pow: grad * result * log(self), taken as 0 where self == 0 and exponent >= 0
        // (the limit from the right), as PyTorch does.
        if (g.needs(1)) {
          const Array<T> local = g.out() * xt::log(base);
          g.to(1, masked(grad, xt::where(xt::equal(base, T(0)) && (e >= T(0)), T(0), local)));
        }
      });
}

template <class T>
Tensor<T> exp(const Tensor<T>& a, Location loc) {
  const auto exp_f = [](const auto& x) { return xsimd::exp(x); };
  return record<T>({"exp", loc}, ops::simd::map(a.value(), exp_f), {a},
                   [](const Array<T>& grad, Grads<T>& g) {
                     if (!g.needs(0)) return;
                     const auto& result = g.out();
                     g.to(0, ops::simd::map(grad, result, times_f));  // exp: grad * result
                   });
}

template <class T>
Tensor<T> log(const Tensor<T>& a, Location loc) {
  const auto log_f = [](const auto& x) { return xsimd::log(x); };
  return record<T>({"log", loc}, ops::simd::map(a.value(), log_f), {a},
                   [](const Array<T>& grad, Grads<T>& g) {
                     if (!g.needs(0)) return;
                     // log: grad / self
                     const auto& self = g.in(0);
                     g.to(0, ops::simd::map(grad, self, [](const auto& d, const auto& x) {
                            return ops::simd::masked(d, d / x);
                          }));
                   });
}

template <class T>
Tensor<T> sqrt(const Tensor<T>& a, Location loc) {
  const auto sqrt_f = [](const auto& x) { return xsimd::sqrt(x); };
  return record<T>({"sqrt", loc}, ops::simd::map(a.value(), sqrt_f), {a},
                   [](const Array<T>& grad, Grads<T>& g) {
                     if (!g.needs(0)) return;
                     // sqrt: grad / (2 * result)
                     const auto& result = g.out();
                     g.to(0, ops::simd::map(grad, result, [](const auto& d, const auto& r) {
                            return ops::simd::masked(d, d * (T(0.5) / r));
                          }));
                   });
}

template <class T>
Tensor<T> abs(const Tensor<T>& a, Location loc) {
  return record<T>({"abs", loc}, xt::abs(a.value()), {a}, [](const Array<T>& grad, Grads<T>& g) {
    g.to(0, grad * xt::sign(g.in(0)));  // abs: grad * sign(self), 0 at 0
  });
}

template <class T>
Tensor<T> clamp(const Tensor<T>& a, Scalar<T> lo, Scalar<T> hi, Location loc) {
  check_finite_scalar("clamp", "the lower bound", lo);
  check_finite_scalar("clamp", "the upper bound", hi);
  if (lo > hi) {
    throw ValueError("xgrad::clamp: lower bound " + std::to_string(lo) +
                     " is greater than upper bound " + std::to_string(hi));
  }
  return record<T>({"clamp", loc}, xt::clip(a.value(), lo, hi), {a},
                   [lo, hi](const Array<T>& grad, Grads<T>& g) {
                     // clamp: grad where lo <= self <= hi, else 0
                     const auto& x = g.in(0);
                     g.to(0, xt::where((x >= lo) && (x <= hi), grad, T(0)));
                   });
}

template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  check_binary("maximum", a, b);
  const auto& av = a.value();
  const auto& bv = b.value();
  // NaN propagates, as in numpy.maximum and torch.maximum.
  Array<T> out = xt::where(xt::isnan(av), av, xt::where(xt::isnan(bv), bv, xt::maximum(av, bv)));
  return record<T>({"maximum", loc}, std::move(out), {a, b}, [](const Array<T>& grad, Grads<T>& g) {
    const auto& x = g.in(0);
    const auto& y = g.in(1);
    // maximum: grad to the larger side (or the NaN one); a tie splits it
    const auto half = grad * T(0.5);
    const auto a_wins = xt::isnan(x) || (x > y);
    const auto b_wins = !xt::isnan(x) && (xt::isnan(y) || (y > x));
    if (g.needs(0)) {
      g.to(0, xt::where(a_wins, grad, xt::where(xt::equal(x, y), half, T(0))));
    }
    if (g.needs(1)) {
      g.to(1, xt::where(b_wins, grad, xt::where(xt::equal(x, y), half, T(0))));
    }
  });
}

template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  check_binary("minimum", a, b);
  const auto& av = a.value();
  const auto& bv = b.value();
  Array<T> out = xt::where(xt::isnan(av), av, xt::where(xt::isnan(bv), bv, xt::minimum(av, bv)));
  return record<T>({"minimum", loc}, std::move(out), {a, b}, [](const Array<T>& grad, Grads<T>& g) {
    const auto& x = g.in(0);
    const auto& y = g.in(1);
    // minimum: grad to the smaller side (or the NaN one); a tie splits it
    const auto half = grad * T(0.5);
    const auto a_wins = xt::isnan(x) || (x < y);
    const auto b_wins = !xt::isnan(x) && (xt::isnan(y) || (y < x));
    if (g.needs(0)) {
      g.to(0, xt::where(a_wins, grad, xt::where(xt::equal(x, y), half, T(0))));
    }
    if (g.needs(1)) {
      g.to(1, xt::where(b_wins, grad, xt::where(xt::equal(x, y), half, T(0))));
    }
  });
}

template <class T>
Tensor<T> where(const Tensor<T>& cond, const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const auto& sc = cond.value().shape();
  ops::broadcast_shapes("where", ops::broadcast_shapes("where", sc, a.value().shape()),
                        b.value().shape());
  Array<T> out = xt::where(xt::not_equal(cond.value(), T(0)), a.value(), b.value());
  // cond is an input only so that backward can read it; it never receives a gradient.
  return record<T>({"where", loc}, std::move(out), {cond, a, b},
                   [](const Array<T>& grad, Grads<T>& g) {
                     const auto taken = xt::not_equal(g.in(0), T(0));
                     // where: grad where cond for self, grad where !cond for other; an exact 0
                     // elsewhere
                     if (g.needs(1)) g.to(1, xt::where(taken, grad, T(0)));
                     if (g.needs(2)) g.to(2, xt::where(taken, T(0), grad));
                   });
}

namespace {
template <class T, class F>
Tensor<T> compare(const char* op, const Tensor<T>& a, const Tensor<T>& b, F f) {
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
