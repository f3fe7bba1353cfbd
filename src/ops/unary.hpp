#pragma once
// One elementwise op = one row: its forward and its derivative, each a formula written once as a
// generic lambda. The formulas run on xsimd batches in the flat loops (the forward, and the
// derivative of a plain backward, fused into one pass over memory) and on tensors under
// create_graph, where the same formula records a differentiable graph. The primitives below give
// both spellings of what a formula needs beyond arithmetic; exp, log, sin, tanh, ... are found by
// argument-dependent lookup (xsimd's for batches, xgrad's for tensors).

#include <type_traits>

#include "common.hpp"
#include "simd.hpp"

namespace xgrad::ops {

template <class X>
inline constexpr bool is_tensor_v = false;
template <class T>
inline constexpr bool is_tensor_v<Tensor<T>> = true;

/// c > 0 ? a : b (b a scalar or like a).
template <class X, class Y>
X where_pos(const X& c, const X& a, const Y& b) {
  if constexpr (is_tensor_v<X>) {
    using T = typename X::value_type;
    const auto zero = X::scalar(T(0));
    if constexpr (std::is_arithmetic_v<Y>) {
      return where(gt(c, zero), a, X::scalar(T(b)));
    } else {
      return where(gt(c, zero), a, b);
    }
  } else {
    using T = typename X::value_type;
    return xsimd::select(c > X(T(0)), a, X(b));
  }
}

/// `product` (grad times a local derivative), except an exact 0 where grad is exactly 0.
/// NOTE: where the incoming gradient is 0 the result is 0 even if the local derivative is
/// infinite (log at 0, 1/b at b = 0). Without this, where(x > 0, log(x), 0) would send
/// 0 * inf = NaN back to x through the branch that was not taken.
template <class X>
X masked(const X& grad, const X& product) {
  if constexpr (is_tensor_v<X>) {
    using T = typename X::value_type;
    const auto zero = X::scalar(T(0));
    return where(eq(grad, zero), zero, product);
  } else {
    return simd::masked(grad, product);
  }
}

/// What an elementwise derivative reads besides the incoming gradient.
enum class Reads { nothing, input, output };

/// Records y = f(a) elementwise with derivative df(grad, v), v the input or the output as
/// `reads` says (or grad again when it reads nothing).
template <class T, class F, class D>
Tensor<T> unary(OpName op, const Tensor<T>& a, F f, D df, Reads reads) {
  const Saves saves = reads == Reads::input    ? Saves::in({0})
                      : reads == Reads::output ? Saves::result()
                                               : Saves::none();
  return record<T>(
      op, simd::map(a.value(), f), {a},
      [df, reads](const Tensor<T>& grad, Grads<T>& g) {
        if (!g.needs(0)) return;
        if (g.create_graph()) {
          const Tensor<T> v = reads == Reads::input    ? g.in(0)
                              : reads == Reads::output ? g.out()
                                                       : grad;
          g.to(0, df(grad, v));
        } else {
          const Array<T>& d = grad.value();
          const Array<T>& v = reads == Reads::input    ? g.value(0)
                              : reads == Reads::output ? g.out_value()
                                                       : d;
          g.to(0, Tensor<T>(simd::map(d, v, df)));
        }
      },
      saves);
}

}  // namespace xgrad::ops
