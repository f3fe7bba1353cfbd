#pragma once
// One elementwise op = one row: its forward and its derivative, each a formula written once as a
// generic lambda (unary() for one operand, binary() for two). The formulas run on xsimd batches in
// the flat loops (the forward, and the derivative of a plain backward, fused into one pass over
// memory) and on tensors under create_graph, where the same formula records a differentiable graph.
// The primitives below give both spellings of what a formula needs beyond arithmetic; exp, log,
// sin, tanh, ... are found by argument-dependent lookup (xsimd's for batches, xgrad's for tensors).

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

/// Hands input i, in a plain pass, the gradient `fill` writes through a pointer to as many
/// elements as grad has: into grad's own array when `overwrite` (Grads::owns_grad said the pass
/// alone holds grad; element k of the result may then read element k of grad only), else into a
/// new one.
template <class T, class Fill>
void give(Grads<T>& g, std::size_t i, const Tensor<T>& grad, bool overwrite, Fill fill) {
  Tensor<T> out = overwrite ? grad : Tensor<T>(Array<T>::from_shape(grad.value().shape()));
  fill(out.mutable_value().data());
  g.to(i, std::move(out));
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
          simd::check_sizes(d, v);
          give(g, 0, grad, g.owns_grad(grad),
               [&](T* o) { simd::map(d.data(), v.data(), o, d.size(), df); });
        }
      },
      saves);
}

/// Records f(a, b) elementwise with broadcasting, and the derivatives da(grad, x, y) and
/// db(grad, x, y), x and y the inputs (a formula reads only those `saves` names). f runs on
/// batches when the shapes agree and on xtensor expressions otherwise; the derivatives run on
/// batches when the gradient and what they read share one shape, and on tensors otherwise (grad
/// mode off, so ops broadcast without recording; on under create_graph).
template <class T, class F, class DA, class DB>
Tensor<T> binary(OpName op, const Tensor<T>& a, const Tensor<T>& b, F f, DA da, DB db,
                 Saves saves) {
  const auto& x = a.value();
  const auto& y = b.value();
  Array<T> out = simd::same_shape(x, y) ? simd::map(x, y, f) : Array<T>(f(x, y));
  return record<T>(
      op, std::move(out), {a, b},
      [da, db, saves](const Tensor<T>& grad, Grads<T>& g) {
        const bool need_a = g.needs(0);
        const bool need_b = g.needs(1);
        const Array<T>& d = grad.value();
        const Array<T>& xv = saves.reads(0) ? g.value(0) : d;
        const Array<T>& yv = saves.reads(1) ? g.value(1) : d;
        if (!g.create_graph() && simd::same_shape(d, xv) && simd::same_shape(d, yv)) {
          // Only the last gradient computed may be written over grad.
          const bool reuse = g.owns_grad(grad);
          const auto with = [&](const auto& formula) {
            return [&](T* o) { simd::map(d.data(), xv.data(), yv.data(), o, d.size(), formula); };
          };
          if (need_a) give(g, 0, grad, reuse && !need_b, with(da));
          if (need_b) give(g, 1, grad, reuse, with(db));
          return;
        }
        const Tensor<T> xt_ = saves.reads(0) ? g.in(0) : grad;
        const Tensor<T> yt_ = saves.reads(1) ? g.in(1) : grad;
        if (need_a) g.to(0, da(grad, xt_, yt_));
        if (need_b) g.to(1, db(grad, xt_, yt_));
      },
      saves);
}

}  // namespace xgrad::ops
