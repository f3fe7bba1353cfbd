// Losses: each one is a single fused node with its own backward, written as plain loops over
// contiguous row-major data. Formulas in the comments use PyTorch's derivatives.yaml vocabulary;
// `grad` there is the incoming gradient of the per-element (or per-sample) loss, i.e. the
// output's gradient for Reduction::None, the scalar gradient for Sum, and it divided by the
// element count for Mean.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"

namespace xgrad {

namespace {

/// Shortest text that reads back as `value` ("7", "0.1", "nan", "-inf").
template <class T>
std::string format_value(T value) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, res.ptr);
}

std::string op_prefix(const char* op) {
  return std::string("xgrad::") + op + ": ";
}

/// Prediction and target of an elementwise loss must have equal shapes (no broadcasting).
template <class T>
void check_same_shape(const char* op, const Tensor<T>& input, const Tensor<T>& target) {
  const auto& si = input.value().shape();
  const auto& st = target.value().shape();
  if (!std::equal(si.begin(), si.end(), st.begin(), st.end())) {
    throw ShapeError(op_prefix(op) + "input shape " + ops::shape_of(input.value()) +
                     " and target shape " + ops::shape_of(target.value()) +
                     " must be equal (losses do not broadcast)");
  }
}

/// Reduction::Mean over nothing has no value: raise instead of returning NaN.
inline void check_mean(const char* op, Reduction reduction, std::size_t count, const char* what,
                       const std::string& shape) {
  if (reduction == Reduction::Mean && count == 0) {
    throw ValueError(op_prefix(op) + "mean reduction over 0 " + what + " (input shape " + shape +
                     "); use Reduction::Sum or Reduction::None");
  }
}

/// The loss of items 0..n-1 (loss_at(i)), kept as an array of `shape` for Reduction::None or
/// reduced to a 0-d array (accumulated in double) for Sum and Mean.
template <class T, class S, class LossAt>
Array<T> reduce_losses(const S& shape, std::size_t n, Reduction reduction, LossAt&& loss_at) {
  if (reduction == Reduction::None) {
    Array<T> out = Array<T>::from_shape(shape);
    T* o = out.data();
    for (std::size_t i = 0; i < n; ++i) o[i] = loss_at(i);
    return out;
  }
  double acc = 0.0;
  for (std::size_t i = 0; i < n; ++i) acc += static_cast<double>(loss_at(i));
  if (reduction == Reduction::Mean) acc /= static_cast<double>(n);
  Array<T> out = Array<T>::from_shape({});
  out() = static_cast<T>(acc);
  return out;
}

/// Calls body(i, grad_i) for items 0..n-1, where grad_i is the gradient of item i's loss: the
/// output gradient's element i for Reduction::None, its single value for Sum, and that divided
/// by n for Mean.
template <class T, class Body>
void for_each_grad(const Array<T>& grad, Reduction reduction, std::size_t n, Body&& body) {
  if (reduction == Reduction::None) {
    const T* gp = grad.data();
    for (std::size_t i = 0; i < n; ++i) body(i, gp[i]);
    return;
  }
  T s = grad.data()[0];
  if (reduction == Reduction::Mean) s /= static_cast<T>(n);
  for (std::size_t i = 0; i < n; ++i) body(i, s);
}

/// Backward of an elementwise loss of (input, target): writes item i's incoming gradient times
/// d_input(a_i, b_i) to the input and times d_target(a_i, b_i) to the target, for those that
/// need a gradient.
template <class T, class DInput, class DTarget>
void elementwise_loss_backward(const Array<T>& grad, Grads<T>& g, Reduction reduction,
                               std::size_t n, DInput d_input, DTarget d_target) {
  const bool need_a = g.needs(0);
  const bool need_b = g.needs(1);
  const T* a = g.in(0).data();
  const T* b = g.in(1).data();
  Array<T> ga = need_a ? Array<T>::from_shape(g.in(0).shape()) : Array<T>();
  Array<T> gb = need_b ? Array<T>::from_shape(g.in(1).shape()) : Array<T>();
  T* gap = ga.data();
  T* gbp = gb.data();
  for_each_grad(grad, reduction, n, [&](std::size_t i, T gi) {
    if (need_a) gap[i] = gi * d_input(a[i], b[i]);
    if (need_b) gbp[i] = gi * d_target(a[i], b[i]);
  });
  if (need_a) g.to(0, std::move(ga));
  if (need_b) g.to(1, std::move(gb));
}

/// 1 / (1 + e^-x) without overflow for any x.
template <class T>
T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

/// max(log p, -100) and max(log(1 - p), -100), as PyTorch clamps them in binary_cross_entropy.
template <class T>
T clamped_log(T p) {
  return std::max(std::log(p), T(-100));
}
template <class T>
T clamped_log1m(T p) {
  return std::max(std::log1p(-p), T(-100));
}

/// Rows and classes of a [N, C] class-score input; ShapeError unless it is 2-D with one label
/// per row.
template <class T>
void check_class_input(const char* op, const char* what, const Array<T>& x,
                       std::size_t label_count) {
  if (x.dimension() != 2) {
    throw ShapeError(op_prefix(op) + what + " must be 2-D [N, C], got shape " + ops::shape_of(x));
  }
  if (label_count != x.shape()[0]) {
    throw ShapeError(op_prefix(op) + std::to_string(label_count) + " labels for " + what +
                     " of shape " + ops::shape_of(x) + "; need one label per row (" +
                     std::to_string(x.shape()[0]) + ")");
  }
}

/// Class indices checked against [0, classes), as offsets.
std::vector<std::size_t> checked_labels(const char* op, const std::vector<std::int64_t>& labels,
                                        std::size_t classes) {
  std::vector<std::size_t> out(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::int64_t l = labels[i];
    if (l < 0 || static_cast<std::uint64_t>(l) >= classes) {
      throw ValueError(op_prefix(op) + "label " + std::to_string(l) + " at position " +
                       std::to_string(i) + " is out of range for " + std::to_string(classes) +
                       " classes");
    }
    out[i] = static_cast<std::size_t>(l);
  }
  return out;
}

}  // namespace

namespace {
/// A loss of equally shaped input and target, item by item: loss(a_i, b_i) with derivatives
/// d_input and d_target, reduced as asked. One node, one pass forward and one backward.
template <class T, class Loss, class DInput, class DTarget>
Tensor<T> elementwise_loss(OpName op, const Tensor<T>& input, const Tensor<T>& target,
                           Reduction reduction, Loss loss, DInput d_input, DTarget d_target) {
  check_same_shape(op.name, input, target);
  const Array<T>& x = input.value();
  const std::size_t n = x.size();
  check_mean(op.name, reduction, n, "elements", ops::shape_of(x));
  const T* xp = x.data();
  const T* yp = target.value().data();
  Array<T> value =
      reduce_losses<T>(x.shape(), n, reduction, [&](std::size_t i) { return loss(xp[i], yp[i]); });
  return record<T>(op, std::move(value), {input, target},
                   [reduction, n, d_input, d_target](const Array<T>& grad, Grads<T>& g) {
                     elementwise_loss_backward(grad, g, reduction, n, d_input, d_target);
                   });
}
}  // namespace

template <class T>
Tensor<T> mse(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction, Location loc) {
  // mse_loss: (self - target)^2
  //   self: 2 * (self - target) * grad
  //   target: -2 * (self - target) * grad
  return elementwise_loss<T>(
      {"mse", loc}, input, target, reduction, [](T u, T v) { return (u - v) * (u - v); },
      [](T u, T v) { return T(2) * (u - v); }, [](T u, T v) { return T(2) * (v - u); });
}

template <class T>
Tensor<T> bce(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction, Location loc) {
  const Array<T>& p = input.value();
  const T* pp = p.data();
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!(pp[i] >= T(0) && pp[i] <= T(1))) {
      throw ValueError("xgrad::bce: input " + format_value(pp[i]) + " at flat index " +
                       std::to_string(i) + " is not a probability in [0, 1] (input shape " +
                       ops::shape_of(p) + ")");
    }
  }
  // binary_cross_entropy:
  //   -(target max(log(self), -100) + (1 - target) max(log(1 - self), -100))
  //   self: grad * (self - target) / max((1 - self) * self, 1e-12)
  //   target: grad * (max(log(1 - self), -100) - max(log(self), -100))
  return elementwise_loss<T>(
      {"bce", loc}, input, target, reduction,
      [](T q, T v) { return -(v * clamped_log(q) + (T(1) - v) * clamped_log1m(q)); },
      [](T q, T v) { return (q - v) / std::max((T(1) - q) * q, T(1e-12)); },
      [](T q, T) { return clamped_log1m(q) - clamped_log(q); });
}

template <class T>
Tensor<T> bce_with_logits(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction,
                          Location loc) {
  // binary_cross_entropy_with_logits: max(self, 0) - self * target + log1p(exp(-|self|))
  //   self: grad * (sigmoid(self) - target)
  //   target: -grad * self
  return elementwise_loss<T>(
      {"bce_with_logits", loc}, input, target, reduction,
      [](T u, T v) {
        // NOTE: at u = +-inf, max(u, 0) - u v is inf - inf = NaN even when the target agrees;
        // the limit is |u| times the target's disagreement (1 - v, or v for u < 0), 0 if none.
        if (std::isinf(u)) {
          const T disagree = u > 0 ? T(1) - v : v;
          return disagree == T(0) ? T(0) : std::abs(u) * disagree;
        }
        return std::max(u, T(0)) - u * v + std::log1p(std::exp(-std::abs(u)));
      },
      [](T u, T v) { return stable_sigmoid(u) - v; }, [](T u, T) { return -u; });
}

template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<std::int64_t>& target,
                        Reduction reduction, Location loc) {
  const Array<T>& x = logits.value();
  check_class_input("cross_entropy", "logits", x, target.size());
  const std::size_t rows = x.shape()[0];
  const std::size_t classes = x.shape()[1];
  std::vector<std::size_t> labels = checked_labels("cross_entropy", target, classes);
  check_mean("cross_entropy", reduction, rows, "samples", ops::shape_of(x));

  // Per row: m = max(row), loss = (m - row[label]) + log(sum(exp(row - m))). Keeping the two
  // terms apart (rather than forming logsumexp - row[label]) avoids cancellation at large
  // logits. Entries at -inf add exp(-inf) = 0, so a row with -inf logits stays finite as long as
  // its label's logit (hence m) is finite. m and the log-sum are kept for backward, which then
  // needs one exp per element and no second reduction.
  std::vector<T> shift(rows);
  std::vector<T> log_sum(rows);
  const T* xp = x.data();
  for (std::size_t r = 0; r < rows; ++r) {
    const T* row = xp + r * classes;
    const T m = *std::max_element(row, row + classes);
    double s = 0.0;
    for (std::size_t c = 0; c < classes; ++c) s += static_cast<double>(std::exp(row[c] - m));
    shift[r] = m;
    log_sum[r] = static_cast<T>(std::log(s));
  }
  Array<T> value = reduce_losses<T>(Shape{rows}, rows, reduction, [&](std::size_t r) {
    return (shift[r] - xp[r * classes + labels[r]]) + log_sum[r];
  });
  return record<T>({"cross_entropy", loc}, std::move(value), {logits},
                   [reduction, rows, classes, labels = std::move(labels), shift = std::move(shift),
                    log_sum = std::move(log_sum)](const Array<T>& grad, Grads<T>& g) {
                     // cross_entropy: logsumexp(self[n]) - self[n, target[n]]
                     //   self: grad[n] * (softmax(self[n]) - one_hot(target[n]))
                     //   with softmax(self[n]) = exp((self[n] - max(self[n])) - log(sum(exp(self[n]
                     //   - max))))
                     if (!g.needs(0)) return;
                     const T* a = g.in(0).data();
                     Array<T> gx = Array<T>::from_shape(Shape{rows, classes});
                     T* gxp = gx.data();
                     for_each_grad(grad, reduction, rows, [&](std::size_t r, T gr) {
                       const T* row = a + r * classes;
                       T* out = gxp + r * classes;
                       const T m = shift[r];
                       const T ls = log_sum[r];
                       for (std::size_t c = 0; c < classes; ++c)
                         out[c] = gr * std::exp((row[c] - m) - ls);
                       out[labels[r]] -= gr;
                     });
                     g.to(0, std::move(gx));
                   });
}

template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<T>& target, Reduction reduction,
                        Location loc) {
  const Array<T>& x = logits.value();
  const Array<T>& t = target.value();
  if (x.dimension() != 2) {
    throw ShapeError("xgrad::cross_entropy: logits must be 2-D [N, C], got shape " +
                     ops::shape_of(x));
  }
  if (t.dimension() != 1 || t.shape()[0] != x.shape()[0]) {
    throw ShapeError("xgrad::cross_entropy: labels must have shape [" +
                     std::to_string(x.shape()[0]) + "] for logits of shape " + ops::shape_of(x) +
                     ", got " + ops::shape_of(t));
  }
  const std::size_t classes = x.shape()[1];
  std::vector<std::int64_t> labels(t.size());
  const T* tp = t.data();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const T v = tp[i];
    if (!std::isfinite(v) || std::trunc(v) != v) {
      throw ValueError("xgrad::cross_entropy: label " + format_value(v) + " at position " +
                       std::to_string(i) + " is not a whole number");
    }
    // Range-checked here, before the conversion to an integer, so that huge values are named
    // as they are instead of overflowing.
    if (v < T(0) || v >= static_cast<T>(classes)) {
      throw ValueError("xgrad::cross_entropy: label " + format_value(v) + " at position " +
                       std::to_string(i) + " is out of range for " + std::to_string(classes) +
                       " classes");
    }
    labels[i] = static_cast<std::int64_t>(v);
  }
  return cross_entropy(logits, labels, reduction, loc);
}

template <class T>
Tensor<T> nll(const Tensor<T>& log_probs, const std::vector<std::int64_t>& target,
              Reduction reduction, Location loc) {
  const Array<T>& x = log_probs.value();
  check_class_input("nll", "log_probs", x, target.size());
  const std::size_t rows = x.shape()[0];
  const std::size_t classes = x.shape()[1];
  std::vector<std::size_t> labels = checked_labels("nll", target, classes);
  check_mean("nll", reduction, rows, "samples", ops::shape_of(x));
  const T* xp = x.data();
  Array<T> value = reduce_losses<T>(Shape{rows}, rows, reduction,
                                    [&](std::size_t r) { return -xp[r * classes + labels[r]]; });
  return record<T>(
      {"nll", loc}, std::move(value), {log_probs},
      [reduction, rows, classes, labels = std::move(labels)](const Array<T>& grad, Grads<T>& g) {
        // nll_loss: -self[n, target[n]]
        //   self: -grad[n] at [n, target[n]], 0 elsewhere
        if (!g.needs(0)) return;
        Array<T> gx(Shape{rows, classes}, T(0));
        T* gxp = gx.data();
        for_each_grad(grad, reduction, rows,
                      [&](std::size_t r, T gr) { gxp[r * classes + labels[r]] = -gr; });
        g.to(0, std::move(gx));
      });
}

#define XGRAD_INSTANTIATE_LOSS(T)                                                                 \
  template Tensor<T> mse<T>(const Tensor<T>&, const Tensor<T>&, Reduction, Location);             \
  template Tensor<T> bce<T>(const Tensor<T>&, const Tensor<T>&, Reduction, Location);             \
  template Tensor<T> bce_with_logits<T>(const Tensor<T>&, const Tensor<T>&, Reduction, Location); \
  template Tensor<T> cross_entropy<T>(const Tensor<T>&, const std::vector<std::int64_t>&,         \
                                      Reduction, Location);                                       \
  template Tensor<T> cross_entropy<T>(const Tensor<T>&, const Tensor<T>&, Reduction, Location);   \
  template Tensor<T> nll<T>(const Tensor<T>&, const std::vector<std::int64_t>&, Reduction,        \
                            Location);

XGRAD_INSTANTIATE_LOSS(float)
XGRAD_INSTANTIATE_LOSS(double)

}  // namespace xgrad
