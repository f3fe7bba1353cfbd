// Losses: each one is a single fused node whose forward is a plain loop over contiguous row-major
// data and whose derivative is written with xgrad ops (so it is differentiable again; constant
// one-hot masks are built as arrays). Formulas in the comments use PyTorch's derivatives.yaml
// vocabulary; `grad` there is the incoming gradient of the per-element (or per-sample) loss, i.e.
// the output's gradient for Reduction::None, the scalar gradient for Sum, and it divided by the
// element count for Mean.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
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

/// The gradient of each item's loss, broadcastable against the items: the output's gradient for
/// Reduction::None, its single (0-d) value for Sum, and that divided by n for Mean.
template <class T>
Tensor<T> item_grad(const Tensor<T>& grad, Reduction reduction, std::size_t n, Location loc) {
  if (reduction == Reduction::Mean) return div(grad, static_cast<T>(n), loc);
  return grad;
}

/// max(log p, threshold) as ops, differentiable twice even where the clamp is active: the log
/// only ever sees entries where it is taken (a constant mask selects them; the others read 1), so
/// neither its value nor its derivative can turn into inf or NaN there.
template <class T>
Tensor<T> clamped_log_op(const Tensor<T>& p, T threshold, Location loc) {
  const Array<T>& pv = p.value();
  Array<T> keep = Array<T>::from_shape(pv.shape());
  const T* pp = pv.data();
  T* kp = keep.data();
  for (std::size_t i = 0; i < pv.size(); ++i) kp[i] = std::log(pp[i]) >= threshold ? T(1) : T(0);
  const Tensor<T> mask(std::move(keep));
  const Tensor<T> safe = where(mask, p, Tensor<T>::scalar(T(1)), loc);
  return where(mask, log(safe, loc), Tensor<T>::scalar(threshold), loc);
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

/// A constant [rows, classes] tensor holding `value` at [r, labels[r]] and 0 elsewhere.
template <class T>
Tensor<T> one_hot(const std::vector<std::size_t>& labels, std::size_t classes, T value) {
  Array<T> m(Shape{labels.size(), classes}, T(0));
  T* mp = m.data();
  for (std::size_t r = 0; r < labels.size(); ++r) mp[r * classes + labels[r]] = value;
  return Tensor<T>(std::move(m));
}

/// The per-row gradient of a per-sample loss as a column ([N, 1]) for Reduction::None, so that
/// it broadcasts over the classes; 0-d otherwise (item_grad).
template <class T>
Tensor<T> row_grad(const Tensor<T>& grad, Reduction reduction, std::size_t rows, Location loc) {
  if (reduction == Reduction::None)
    return reshape(grad, Dims{static_cast<std::int64_t>(rows), 1}, loc);
  return item_grad(grad, reduction, rows, loc);
}

}  // namespace

namespace {
/// A loss of equally shaped input and target, item by item: loss(a_i, b_i), reduced as asked,
/// in one node and one pass forward. Its derivative is derivative(gi, g), with gi the gradient
/// of each item's loss (item_grad); it reads what `saves` names.
template <class T, class Loss, class Derivative>
Tensor<T> elementwise_loss(OpName op, const Tensor<T>& input, const Tensor<T>& target,
                           Reduction reduction, Loss loss, Derivative derivative, Saves saves) {
  check_same_shape(op.name, input, target);
  const Array<T>& x = input.value();
  const std::size_t n = x.size();
  check_mean(op.name, reduction, n, "elements", ops::shape_of(x));
  const T* xp = x.data();
  const T* yp = target.value().data();
  Array<T> value =
      reduce_losses<T>(x.shape(), n, reduction, [&](std::size_t i) { return loss(xp[i], yp[i]); });
  const Location loc = op.where;
  return record<T>(
      op, std::move(value), {input, target},
      [reduction, n, loc, derivative](const Tensor<T>& grad, Grads<T>& g) {
        derivative(item_grad(grad, reduction, n, loc), g, loc);
      },
      saves);
}
}  // namespace

template <class T>
Tensor<T> mse(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction, Location loc) {
  const ops::Entry op{"mse", loc};
  // mse_loss: (self - target)^2
  //   self: 2 * (self - target) * grad
  //   target: -2 * (self - target) * grad
  return elementwise_loss<T>(
      op, input, target, reduction, [](T u, T v) { return (u - v) * (u - v); },
      [](const Tensor<T>& gi, Grads<T>& g, Location at) {
        const Tensor<T> d = mul(mul(gi, sub(g.in(0), g.in(1), at), at), T(2), at);
        if (g.needs(0)) g.to(0, d);
        if (g.needs(1)) g.to(1, neg(d, at));
      },
      Saves::in({0, 1}));
}

template <class T>
Tensor<T> bce(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction, Location loc) {
  const ops::Entry op{"bce", loc};
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
      op, input, target, reduction,
      [](T q, T v) { return -(v * clamped_log(q) + (T(1) - v) * clamped_log1m(q)); },
      [](const Tensor<T>& gi, Grads<T>& g, Location at) {
        const Tensor<T> q = g.in(0);
        if (g.needs(0)) {
          const Tensor<T> denom = clamp(mul(rsub(T(1), q, at), q, at), T(1e-12),
                                        std::numeric_limits<T>::infinity(), at);
          g.to(0, div(mul(gi, sub(q, g.in(1), at), at), denom, at));
        }
        if (g.needs(1)) {
          g.to(1, mul(gi,
                      sub(clamped_log_op(rsub(T(1), q, at), T(-100), at),
                          clamped_log_op(q, T(-100), at), at),
                      at));
        }
      },
      Saves::in({0, 1}));
}

template <class T>
Tensor<T> bce_with_logits(const Tensor<T>& input, const Tensor<T>& target, Reduction reduction,
                          Location loc) {
  const ops::Entry op{"bce_with_logits", loc};
  // binary_cross_entropy_with_logits: max(self, 0) - self * target + log1p(exp(-|self|))
  //   self: grad * (sigmoid(self) - target)
  //   target: -grad * self
  return elementwise_loss<T>(
      op, input, target, reduction,
      [](T u, T v) {
        // NOTE: at u = +-inf, max(u, 0) - u v is inf - inf = NaN even when the target agrees;
        // the limit is |u| times the target's disagreement (1 - v, or v for u < 0), 0 if none.
        if (std::isinf(u)) {
          const T disagree = u > 0 ? T(1) - v : v;
          return disagree == T(0) ? T(0) : std::abs(u) * disagree;
        }
        return std::max(u, T(0)) - u * v + std::log1p(std::exp(-std::abs(u)));
      },
      [](const Tensor<T>& gi, Grads<T>& g, Location at) {
        const Tensor<T> u = g.in(0);
        if (g.needs(0)) g.to(0, mul(gi, sub(sigmoid(u, at), g.in(1), at), at));
        if (g.needs(1)) g.to(1, neg(mul(gi, u, at), at));
      },
      Saves::in({0, 1}));
}

template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<std::int64_t>& target,
                        Reduction reduction, Location loc) {
  const ops::Entry op{"cross_entropy", loc};
  const Array<T>& x = logits.value();
  check_class_input("cross_entropy", "logits", x, target.size());
  const std::size_t rows = x.shape()[0];
  const std::size_t classes = x.shape()[1];
  std::vector<std::size_t> labels = checked_labels("cross_entropy", target, classes);
  check_mean("cross_entropy", reduction, rows, "samples", ops::shape_of(x));

  // Per row: m = max(row), loss = (m - row[label]) + log(sum(exp(row - m))). Keeping the two
  // terms apart (rather than forming logsumexp - row[label]) avoids cancellation at large
  // logits. Entries at -inf add exp(-inf) = 0, so a row with -inf logits stays finite as long as
  // its label's logit (hence m) is finite.
  const T* xp = x.data();
  Array<T> value = reduce_losses<T>(Shape{rows}, rows, reduction, [&](std::size_t r) {
    const T* row = xp + r * classes;
    const T m = *std::max_element(row, row + classes);
    double s = 0.0;
    for (std::size_t c = 0; c < classes; ++c) s += static_cast<double>(std::exp(row[c] - m));
    return (m - row[labels[r]]) + static_cast<T>(std::log(s));
  });
  return record<T>(
      op, std::move(value), {logits},
      [reduction, rows, classes, loc, labels = std::move(labels)](const Tensor<T>& grad,
                                                                  Grads<T>& g) {
        // cross_entropy: logsumexp(self[n]) - self[n, target[n]]
        //   self: grad[n] * (softmax(self[n]) - one_hot(target[n]))
        // softmax is the op (shifted by the row max, so it never overflows) and the one-hot a
        // constant, so this gradient is differentiable again.
        if (!g.needs(0)) return;
        if (g.create_graph()) {
          const Tensor<T> p = softmax(g.in(0), 1, loc);
          g.to(0, mul(row_grad(grad, reduction, rows, loc),
                      sub(p, one_hot(labels, classes, T(1)), loc), loc));
          return;
        }
        // The same arithmetic in one pass over the logits instead of four over broadcast
        // expressions: softmax()'s shift by the row maximum (0 when it is not finite), its exp,
        // its sum from the first class to the last and its division, then the one-hot and the
        // incoming gradient.
        const T* xv = g.value(0).data();
        const T* gv = grad.value().data();
        Array<T> dx = Array<T>::from_shape({rows, classes});
        T* dp = dx.data();
        const T mean_scale = reduction == Reduction::Mean ? gv[0] / static_cast<T>(rows) : T(0);
        for (std::size_t r = 0; r < rows; ++r) {
          const T* row = xv + r * classes;
          T* out = dp + r * classes;
          T top = *std::max_element(row, row + classes);
          if (!std::isfinite(top)) top = T(0);
          T total = T(0);
          for (std::size_t c = 0; c < classes; ++c) {
            out[c] = std::exp(row[c] - top);
            total += out[c];
          }
          const T scale = reduction == Reduction::None   ? gv[r]
                          : reduction == Reduction::Mean ? mean_scale
                                                         : gv[0];
          for (std::size_t c = 0; c < classes; ++c) {
            out[c] = scale * (out[c] / total - (c == labels[r] ? T(1) : T(0)));
          }
        }
        g.to(0, std::move(dx));
      },
      Saves::in({0}));
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
  const ops::Entry op{"nll", loc};
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
      op, std::move(value), {log_probs},
      [reduction, rows, classes, loc, labels = std::move(labels)](const Tensor<T>& grad,
                                                                  Grads<T>& g) {
        // nll_loss: -self[n, target[n]]
        //   self: -grad[n] at [n, target[n]], 0 elsewhere (grad times a constant -one_hot)
        if (!g.needs(0)) return;
        g.to(0, mul(row_grad(grad, reduction, rows, loc), one_hot(labels, classes, T(-1)), loc));
      },
      Saves::none());
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
