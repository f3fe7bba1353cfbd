// Reductions: sum, mean, max, min, logsumexp, var and std over all dims or a list of dims, with
// keepdim.

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "common.hpp"
#include "simd.hpp"

namespace xgrad {

namespace {

// The reduced dims seen as one block of the row-major buffer [outer, count, inner]: when they
// are the trailing dims (inner == 1: each output element sums a contiguous run) or the leading
// ones (outer == 1: the output row is the sum of `count` contiguous rows). A full reduction is
// both, taken as one run. Other dim sets have no such block (ok == false).
struct Block {
  bool ok = false;
  std::size_t outer = 1;
  std::size_t inner = 1;
};

Block block_of(const Shape& in, const std::vector<std::size_t>& dims) {
  const std::size_t r = in.size();
  const std::size_t k = dims.size();
  bool trailing = true;
  bool leading = true;
  for (std::size_t i = 0; i < k; ++i) {
    trailing = trailing && dims[i] == r - k + i;
    leading = leading && dims[i] == i;
  }
  std::size_t rest = 1;  // product of the kept extents (not size / count: count may be 0)
  for (std::size_t i = 0; i < r; ++i) {
    if (std::find(dims.begin(), dims.end(), i) == dims.end()) rest *= in[i];
  }
  if (trailing || rest == 1) return {true, rest, 1};
  if (leading) return {true, 1, rest};
  return {};
}

struct Plan {
  std::vector<std::size_t> dims;
  Shape in;               // input shape
  Shape keep;             // output shape with keepdim (reduced extents are 1)
  Shape out;              // output shape as returned
  std::size_t count = 1;  // elements folded into each output element
  Block block;            // the reduced dims as one block of the buffer, if they are one
  bool keepdim = false;   // as asked (the reduction that undoes a spread needs it)
};

template <class T>
Plan plan(const char* op, const Tensor<T>& a, const std::vector<int>& dims, bool keepdim) {
  Plan p;
  p.in = a.shape();
  p.dims = ops::normalize_dims(op, dims, p.in);
  p.keep = ops::keepdim_shape(p.in, p.dims);
  p.out = ops::reduced_shape(p.in, p.dims, keepdim);
  for (std::size_t d : p.dims) p.count *= p.in[d];
  p.block = block_of(p.in, p.dims);
  p.keepdim = keepdim;
  return p;
}

// NOTE: xtensor's reducers do pointer arithmetic on the null data of an empty array (undefined
// behaviour), so empty inputs are handled here before they reach it.
template <class T>
Array<T> reduce_sum(const Array<T>& x, const Plan& p) {
  if (x.size() == 0) return Array<T>(p.out, T(0));
  const Block& b = p.block;
  if (!b.ok) {
    Array<T> r = xt::sum(x, p.dims);
    r.reshape(p.out);
    return r;
  }
  Array<T> r = Array<T>::from_shape(p.out);
  T* out = r.data();
  if (b.inner == 1) {
    for (std::size_t i = 0; i < b.outer; ++i)
      out[i] = ops::simd::sum(x.data() + i * p.count, p.count);
  } else {
    const T* row = x.data();
    std::copy(row, row + b.inner, out);
    for (std::size_t k = 1; k < p.count; ++k) {
      row += b.inner;
      ops::simd::map(out, row, out, b.inner, [](const auto& s, const auto& v) { return s + v; });
    }
  }
  return r;
}

// Gradient of an output of shape `keep` spread back over the input shape, times `scale`.
template <class T>
Array<T> spread(const Array<T>& grad, const Plan& p, T scale) {
  if (grad.size() == 0 || p.count == 0) return Array<T>(p.in, T(0));
  const Block& b = p.block;
  if (!b.ok) return xt::broadcast(xt::reshape_view(grad, p.keep), p.in) * scale;
  Array<T> r = Array<T>::from_shape(p.in);
  T* out = r.data();
  const T* g = grad.data();
  if (b.inner == 1) {
    for (std::size_t i = 0; i < b.outer; ++i) {
      std::fill(out + i * p.count, out + (i + 1) * p.count, g[i] * scale);
    }
  } else {
    for (std::size_t k = 0; k < p.count; ++k) {
      ops::simd::map(g, out + k * b.inner, b.inner, [scale](const auto& v) { return v * scale; });
    }
  }
  return r;
}

// The reduced dims as xgrad dims (for the sum that is a spread's derivative).
inline std::vector<int> int_dims(const Plan& p) {
  return std::vector<int>(p.dims.begin(), p.dims.end());
}

/// Internal op: `grad` (of the reduction's output shape p.out) spread back over the input shape
/// p.in, times `scale`; sum's and mean's derivative, recorded so that it is differentiable again.
/// Its own derivative is the reduction it undoes.
template <class T>
Tensor<T> spread_op(OpName op, const Tensor<T>& grad, const Plan& p, T scale) {
  // Without a graph (a plain backward) the plan is not copied into a derivative.
  if (!needs_graph<T>({grad})) return Tensor<T>(spread(grad.value(), p, scale));
  return record<T>(
      op, spread(grad.value(), p, scale), {grad},
      [p, scale, at = op.where](const Tensor<T>& gg, Grads<T>& g) {
        // expand: gg.sum(dims, keepdim) * scale
        if (!g.needs(0)) return;
        Tensor<T> s = sum<T>(gg, int_dims(p), p.keepdim, at);
        g.to(0, scale == T(1) ? s : mul<T>(s, scale, at));
      },
      Saves::none());
}

// "dims {0,-1}" as the caller wrote them, or "all dims".
inline std::string dims_text(const std::vector<int>& dims) {
  if (dims.empty()) return "all dims";
  std::string d = "dims {";
  for (std::size_t i = 0; i < dims.size(); ++i) d += (i ? "," : "") + std::to_string(dims[i]);
  return d + "}";
}

template <class T>
void check_not_empty(const char* op, const Plan& p, const std::vector<int>& dims) {
  if (p.count != 0) return;
  throw ValueError(std::string("xgrad::") + op + ": reduction over " + dims_text(dims) +
                   " of a tensor of shape " + shape_str(p.in) + " has no elements");
}

// max/min over `p.dims` with a plain loop: the reduced dims are moved last, so each output
// element folds one contiguous run. NOTE: xtensor's amax starts from the lowest finite value
// (max of {-inf} is -DBL_MAX) and lets NaN win or lose by position; here NaN always wins, as in
// PyTorch, and infinities are exact.
template <class T, class Better>
Tensor<T> extremum(OpName op, const Tensor<T>& a, const std::vector<int>& dims, bool keepdim,
                   Better better) {
  Plan p = plan(op.name, a, dims, keepdim);
  check_not_empty<T>(op.name, p, dims);
  std::vector<std::size_t> perm;
  for (std::size_t i = 0; i < p.in.size(); ++i) {
    if (std::find(p.dims.begin(), p.dims.end(), i) == p.dims.end()) perm.push_back(i);
  }
  perm.insert(perm.end(), p.dims.begin(), p.dims.end());
  // Reduced dims that are already the trailing ones (a row max, a full max) need no copy.
  const bool in_place = std::is_sorted(perm.begin(), perm.end());
  const Array<T> moved = in_place ? Array<T>() : Array<T>(xt::transpose(a.value(), perm));
  Array<T> out = Array<T>::from_shape(p.out);
  const std::size_t run = p.count;
  const T* x = in_place ? a.value().data() : moved.data();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const T* r = x + i * run;
    T best = r[0];
    for (std::size_t k = 1; k < run && !std::isnan(best); ++k) {
      if (std::isnan(r[k]) || better(r[k], best)) best = r[k];
    }
    out.data()[i] = best;
  }
  return record<T>(
      op, std::move(out), {a},
      [p = std::move(p), at = op.where](const Tensor<T>& grad, Grads<T>& g) {
        // amax/amin: grad shared equally among the elements equal to the result (NaN matches
        // NaN). The share (mask / ties) is piecewise constant in self: built as a constant
        // array, so the derivative of this derivative is right (zero through the mask).
        if (!g.needs(0)) return;
        const Array<T>& in = g.value(0);
        Array<T> share = Array<T>::from_shape(p.in);
        if (in.size() != 0) {  // (xtensor's reducers on an empty array: see reduce_sum)
          const auto result = xt::broadcast(xt::reshape_view(g.out_value(), p.keep), p.in);
          const Array<T> hit =
              xt::cast<T>(xt::equal(in, result) || (xt::isnan(in) && xt::isnan(result)));
          const Array<T> ties = xt::sum(hit, p.dims, xt::keep_dims);
          share = hit / ties;
        }
        g.to(0,
             mul<T>(Tensor<T>(std::move(share)), spread_op<T>({"expand", at}, grad, p, T(1)), at));
      },
      Saves::in({0}, true));
}

}  // namespace

template <class T>
Tensor<T> sum(const Tensor<T>& a, const std::vector<int>& dims, bool keepdim, Location loc) {
  const ops::Entry op{"sum", loc};
  Plan p = plan("sum", a, dims, keepdim);
  Array<T> out = reduce_sum<T>(a.value(), p);
  // The plan moves into the derivative (its shapes are not copied again).
  return record<T>(
      op, std::move(out), {a},
      [p = std::move(p), loc](const Tensor<T>& grad, Grads<T>& g) {
        // sum: grad expanded to self's shape
        if (g.needs(0)) g.to(0, spread_op<T>({"sum_backward", loc}, grad, p, T(1)));
      },
      Saves::none());
}

template <class T>
Tensor<T> mean(const Tensor<T>& a, const std::vector<int>& dims, bool keepdim, Location loc) {
  const ops::Entry op{"mean", loc};
  Plan p = plan("mean", a, dims, keepdim);
  check_not_empty<T>("mean", p, dims);
  const T scale = T(1) / static_cast<T>(p.count);
  Array<T> out = reduce_sum<T>(a.value(), p) * scale;
  return record<T>(
      op, std::move(out), {a},
      [p = std::move(p), scale, loc](const Tensor<T>& grad, Grads<T>& g) {
        // mean: grad expanded to self's shape / count
        if (g.needs(0)) g.to(0, spread_op<T>({"mean_backward", loc}, grad, p, scale));
      },
      Saves::none());
}

template <class T>
Tensor<T> max(const Tensor<T>& a, const std::vector<int>& dims, bool keepdim, Location loc) {
  const ops::Entry op{"max", loc};
  return extremum<T>(op, a, dims, keepdim, [](T x, T best) { return x > best; });
}

template <class T>
Tensor<T> min(const Tensor<T>& a, const std::vector<int>& dims, bool keepdim, Location loc) {
  const ops::Entry op{"min", loc};
  return extremum<T>(op, a, dims, keepdim, [](T x, T best) { return x < best; });
}

namespace {

// x with the dims of p.dims moved last, so that each output element folds one contiguous run of
// p.count elements; no copy when they already are last (a row or a full reduction).
template <class T>
struct Runs {
  Array<T> moved;         // the copy with the dims moved, when one was needed
  const T* in = nullptr;  // else the input's own buffer
  const T* data() const { return in ? in : moved.data(); }
};

template <class T>
Runs<T> runs_of(const Array<T>& x, const Plan& p) {
  std::vector<std::size_t> perm;
  for (std::size_t i = 0; i < p.in.size(); ++i) {
    if (std::find(p.dims.begin(), p.dims.end(), i) == p.dims.end()) perm.push_back(i);
  }
  perm.insert(perm.end(), p.dims.begin(), p.dims.end());
  if (std::is_sorted(perm.begin(), perm.end())) return {Array<T>(), x.data()};
  return {Array<T>(xt::transpose(x, perm)), nullptr};
}

// A tensor of the reduction's output shape p.out seen in the keepdim shape p.keep, so that it
// broadcasts against the input.
template <class T>
Tensor<T> kept(const Tensor<T>& t, const Plan& p, Location at) {
  if (p.keepdim) return t;
  return reshape<T>(t, Dims(p.keep.begin(), p.keep.end()), at);
}

// 1 where `value` (of shape p.out) equals `target`, else 0, in the keepdim shape: a constant
// mask for where().
template <class T>
Tensor<T> mask_where(const Array<T>& value, T target, const Plan& p) {
  Array<T> m = xt::cast<T>(xt::equal(value, target));
  m.reshape(p.keep);
  return Tensor<T>(std::move(m));
}

// N - correction, or a ValueError naming the op when it is not positive (a variance from no
// degrees of freedom would be a silent NaN or inf).
template <class T>
T degrees_of_freedom(const char* op, const Plan& p, T correction, const std::vector<int>& dims) {
  if (std::isnan(correction)) {
    throw ValueError(std::string("xgrad::") + op + ": correction is NaN");
  }
  const T dof = static_cast<T>(p.count) - correction;
  if (!(dof > T(0))) {
    std::ostringstream c;
    c << correction;
    throw ValueError(std::string("xgrad::") + op + ": correction " + c.str() +
                     " leaves no degrees of freedom: the reduction over " + dims_text(dims) +
                     " of a tensor of shape " + shape_str(p.in) + " has N = " +
                     std::to_string(p.count) + " elements per result, and N - correction <= 0");
  }
  return dof;
}

// Mean over p.dims in the keepdim shape, and sum((x - mean)^2) / dof in the output shape. Two
// passes: the one-pass sum of squares minus the squared sum cancels catastrophically when the
// mean is large against the spread.
template <class T>
Array<T> variance(const Array<T>& x, const Plan& p, T dof) {
  Array<T> mu = reduce_sum<T>(x, p) * (T(1) / static_cast<T>(p.count));
  mu.reshape(p.keep);
  const Array<T> dev = x - mu;
  return reduce_sum<T>(Array<T>(dev * dev), p) / dof;
}

// (self - mean(self)) over the reduced dims, as ops so that a recorded derivative that holds it
// is differentiable again.
template <class T>
Tensor<T> deviation(const Tensor<T>& x, const Plan& p, Location at) {
  return sub<T>(x, mean<T>(x, int_dims(p), true, at), at);
}

}  // namespace

template <class T>
Tensor<T> logsumexp(const Tensor<T>& a, const std::vector<int>& dims, bool keepdim, Location loc) {
  const ops::Entry op{"logsumexp", loc};
  Plan p = plan("logsumexp", a, dims, keepdim);
  static constexpr T neg_inf = -std::numeric_limits<T>::infinity();
  // A sum over no elements is 0, and its log -inf (as torch.logsumexp).
  Array<T> out(p.out, neg_inf);
  if (a.numel() != 0) {
    const Runs<T> runs = runs_of(a.value(), p);
    std::vector<T> shifted(p.count);
    for (std::size_t i = 0; i < out.size(); ++i) {
      const T* r = runs.data() + i * p.count;
      T m = neg_inf;
      for (std::size_t k = 0; k < p.count; ++k) m = r[k] > m ? r[k] : m;
      // NOTE: shifting by the max keeps every exponent <= 0. An infinite max is replaced by 0:
      // -inf - (-inf) for a row of -inf (and inf - inf) would be NaN; unshifted, such a row sums
      // to 0 (log: -inf) or to inf, which are the right results. A NaN makes the sum NaN.
      if (!std::isfinite(m)) m = T(0);
      ops::simd::map(r, shifted.data(), p.count, [m](const auto& v) { return exp(v - m); });
      out.data()[i] = m + std::log(ops::simd::sum(shifted.data(), p.count));
    }
  }
  return record<T>(
      op, std::move(out), {a},
      [p = std::move(p), at = op.where](const Tensor<T>& grad, Grads<T>& g) {
        // logsumexp: grad * exp(self - result), i.e. grad times softmax(self) over dims
        if (!g.needs(0)) return;
        Tensor<T> r = kept<T>(g.out(), p, at);
        // (xtensor's iterators must not see an empty array: they offset its null data.)
        const auto& result = g.out_value();
        if (result.size() != 0 && xt::any(xt::equal(result, neg_inf))) {
          // A row of -inf (or an empty one) has no softmax; its gradient is taken as 0 rather
          // than the NaN of -inf - (-inf).
          const Tensor<T> zero = Tensor<T>::scalar(T(0));
          r = where<T>(mask_where<T>(g.out_value(), neg_inf, p), zero, r, at);
        }
        g.to(0, mul<T>(kept<T>(grad, p, at), exp<T>(sub<T>(g.in(0), r, at), at), at));
      },
      Saves::in({0}, true));
}

template <class T>
Tensor<T> var(const Tensor<T>& a, const std::vector<int>& dims, Scalar<T> correction, bool keepdim,
              Location loc) {
  const ops::Entry op{"var", loc};
  Plan p = plan("var", a, dims, keepdim);
  check_not_empty<T>("var", p, dims);
  const T dof = degrees_of_freedom("var", p, correction, dims);
  return record<T>(
      op, variance<T>(a.value(), p, dof), {a},
      [p, dof, at = op.where](const Tensor<T>& grad, Grads<T>& g) {
        // var: grad * 2 (self - mean(self)) / (N - correction)
        if (!g.needs(0)) return;
        const Tensor<T> dev = deviation<T>(g.in(0), p, at);
        g.to(0, mul<T>(mul<T>(kept<T>(grad, p, at), dev, at), T(2) / dof, at));
      },
      Saves::in({0}));
}

template <class T>
Tensor<T> std(const Tensor<T>& a, const std::vector<int>& dims, Scalar<T> correction, bool keepdim,
              Location loc) {
  const ops::Entry op{"std", loc};
  Plan p = plan("std", a, dims, keepdim);
  check_not_empty<T>("std", p, dims);
  const T dof = degrees_of_freedom("std", p, correction, dims);
  Array<T> out = variance<T>(a.value(), p, dof);
  ops::simd::map(out.data(), out.data(), out.size(), [](const auto& v) { return sqrt(v); });
  return record<T>(
      op, std::move(out), {a},
      [p = std::move(p), dof, at = op.where](const Tensor<T>& grad, Grads<T>& g) {
        // std: grad * (self - mean(self)) / ((N - correction) result)
        if (!g.needs(0)) return;
        const Tensor<T> r = kept<T>(g.out(), p, at);
        Tensor<T> scale = div<T>(kept<T>(grad, p, at), r, at);
        if (xt::any(xt::equal(g.out_value(), T(0)))) {
          // NOTE: a constant row has std 0, where std is not differentiable; its gradient is
          // taken as 0 (as PyTorch does) instead of 0 / 0.
          const Tensor<T> zero = Tensor<T>::scalar(T(0));
          scale = where<T>(mask_where<T>(g.out_value(), T(0), p), zero, scale, at);
        }
        const Tensor<T> dev = deviation<T>(g.in(0), p, at);
        g.to(0, mul<T>(mul<T>(scale, dev, at), T(1) / dof, at));
      },
      Saves::in({0}, true));
}

namespace {
// Index of the winner of `better` along one dim, walking the row-major buffer as
// [outer, extent, inner] (xtensor's argmax trips GCC 12's array-bounds analysis).
template <class T, class Better>
Tensor<T> arg_extremum(const char* op, const Tensor<T>& a, int dim, bool keepdim, Better better) {
  const profiler::record_function region(op);
  const Shape s = a.shape();
  const std::size_t d = ops::normalize_dim(op, dim, s.size(), s);
  const std::size_t extent = s[d];
  if (extent == 0) {
    throw ValueError(std::string("xgrad::") + op + ": dim " + std::to_string(dim) +
                     " of a tensor of shape " + shape_str(s) + " is empty");
  }
  std::size_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < d; ++i) outer *= s[i];
  for (std::size_t i = d + 1; i < s.size(); ++i) inner *= s[i];
  Array<T> out = Array<T>::from_shape(ops::reduced_shape(s, {d}, keepdim));
  const T* x = a.value().data();
  T* o = out.data();
  for (std::size_t i = 0; i < outer; ++i) {
    for (std::size_t j = 0; j < inner; ++j) {
      const T* base = x + i * extent * inner + j;
      std::size_t best = 0;
      for (std::size_t k = 1; k < extent && !std::isnan(base[best * inner]); ++k) {
        const T v = base[k * inner];
        if (std::isnan(v) || better(v, base[best * inner])) best = k;  // NaN wins, as in PyTorch
      }
      o[i * inner + j] = static_cast<T>(best);
    }
  }
  return Tensor<T>(std::move(out));
}
}  // namespace

template <class T>
Tensor<T> argmax(const Tensor<T>& a, int dim, bool keepdim) {
  return arg_extremum("argmax", a, dim, keepdim, [](T x, T best) { return x > best; });
}

template <class T>
Tensor<T> argmin(const Tensor<T>& a, int dim, bool keepdim) {
  return arg_extremum("argmin", a, dim, keepdim, [](T x, T best) { return x < best; });
}

#define XGRAD_INSTANTIATE_REDUCE(T)                                                                \
  template Tensor<T> sum<T>(const Tensor<T>&, const std::vector<int>&, bool, Location);            \
  template Tensor<T> mean<T>(const Tensor<T>&, const std::vector<int>&, bool, Location);           \
  template Tensor<T> max<T>(const Tensor<T>&, const std::vector<int>&, bool, Location);            \
  template Tensor<T> min<T>(const Tensor<T>&, const std::vector<int>&, bool, Location);            \
  template Tensor<T> logsumexp<T>(const Tensor<T>&, const std::vector<int>&, bool, Location);      \
  template Tensor<T> var<T>(const Tensor<T>&, const std::vector<int>&, Scalar<T>, bool, Location); \
  template Tensor<T> std<T>(const Tensor<T>&, const std::vector<int>&, Scalar<T>, bool, Location); \
  template Tensor<T> argmax<T>(const Tensor<T>&, int, bool);                                       \
  template Tensor<T> argmin<T>(const Tensor<T>&, int, bool);

XGRAD_INSTANTIATE_REDUCE(float)
XGRAD_INSTANTIATE_REDUCE(double)

}  // namespace xgrad
