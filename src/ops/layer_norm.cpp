// layer_norm as one op: each row (the trailing normalized_shape dims, flattened) is normalised
// in two passes over memory, and its derivative takes one pass for the input and one for the
// weight and bias. Written with the reduction and elementwise ops instead, a transformer's
// layer norm records a dozen nodes whose broadcasting passes cost more than its arithmetic.
// Under create_graph the derivative is the same formula written with ops, so it is
// differentiable again.

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/autograd.hpp>

#include "common.hpp"
#include "core/parallel.hpp"
#include "simd.hpp"

namespace xgrad {

namespace {

template <class T>
using Batch = ops::simd::Batch<T>;

// The sums of g and of g xhat over a row, g = dy w (dy without a weight).
template <class T>
std::pair<T, T> grad_sums(const T* dy, const T* w, const T* xhat, std::size_t n) {
  if (w == nullptr) return {ops::simd::sum(dy, n), ops::simd::dot(dy, xhat, n)};
  constexpr std::size_t L = Batch<T>::size;
  Batch<T> sg(T(0)), sgx(T(0));
  std::size_t i = 0;
  for (; i + L <= n; i += L) {
    const Batch<T> gi = Batch<T>::load_unaligned(dy + i) * Batch<T>::load_unaligned(w + i);
    sg += gi;
    sgx = xsimd::fma(gi, Batch<T>::load_unaligned(xhat + i), sgx);
  }
  T a = xsimd::hadd(sg), b = xsimd::hadd(sgx);
  for (; i < n; ++i) {
    a += dy[i] * w[i];
    b += dy[i] * w[i] * xhat[i];
  }
  return {a, b};
}

// fn(row) for rows [0, rows) of `cols` values each, over xgrad's threads when each thread gets
// 16k values or more: a few microseconds of these loops, and the rows a product split by rows
// wrote on each thread, which its cache holds.
template <class F>
void for_rows(std::size_t rows, std::size_t cols, F&& fn) {
  const std::size_t grain =
      std::max<std::size_t>(1, (std::size_t{1} << 14) / std::max<std::size_t>(cols, 1));
  detail::parallel_for(rows, grain, 1, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t r = lo; r < hi; ++r) fn(r);
  });
}

}  // namespace

template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Shape& normalized_shape, const Tensor<T>& weight,
                     const Tensor<T>& bias, double eps, Location loc) {
  const ops::Entry op{"layer_norm", loc};
  const Shape s = x.shape();
  const std::size_t k = normalized_shape.size();
  bool fits = k >= 1 && k <= s.size();
  for (std::size_t i = 0; fits && i < k; ++i) fits = s[s.size() - k + i] == normalized_shape[i];
  const auto fail = [&](const std::string& why) {
    throw ShapeError("xgrad::layer_norm: input " + shape_str(s) + ", normalized_shape " +
                     shape_str(normalized_shape) + ", weight " + ops::shape_or_none(weight) +
                     ", bias " + ops::shape_or_none(bias) + ": " + why);
  };
  if (!fits) fail("normalized_shape must be the input's trailing dims (at least one)");
  if (weight.defined() && weight.shape() != normalized_shape)
    fail("weight must be normalized_shape");
  if (bias.defined() && bias.shape() != normalized_shape) fail("bias must be normalized_shape");
  if (!(eps >= 0)) {
    throw ValueError("xgrad::layer_norm: eps " + std::to_string(eps) + " must be >= 0 (input " +
                     shape_str(s) + ")");
  }
  std::size_t cols = 1;
  for (std::size_t e : normalized_shape) cols *= e;
  if (cols == 0) fail("normalized_shape must not be empty");
  const std::size_t rows = x.numel() / cols;
  const bool has_w = weight.defined();
  const bool has_b = bias.defined();
  const T e = static_cast<T>(eps);
  const T n = static_cast<T>(cols);

  // Per row: the mean and 1 / sqrt(var + eps), kept for the derivative.
  auto mu_r = std::make_shared<std::vector<T>>(rows);
  auto inv_r = std::make_shared<std::vector<T>>(rows);
  Array<T> out = Array<T>::from_shape(x.value().shape());
  {
    const T* xp = x.value().data();
    const T* wp = has_w ? weight.value().data() : nullptr;
    const T* bp = has_b ? bias.value().data() : nullptr;
    T* yp = out.data();
    for_rows(rows, cols, [&](std::size_t r) {
      const T* xr = xp + r * cols;
      T* yr = yp + r * cols;
      const T mu = ops::simd::sum(xr, cols) / n;
      const T inv = T(1) / std::sqrt(ops::simd::sum_sq_dev(xr, cols, mu) / n + e);
      (*mu_r)[r] = mu;
      (*inv_r)[r] = inv;
      if (wp && bp) {
        for (std::size_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mu) * inv * wp[j] + bp[j];
      } else if (wp) {
        for (std::size_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mu) * inv * wp[j];
      } else if (bp) {
        for (std::size_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mu) * inv + bp[j];
      } else {
        for (std::size_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mu) * inv;
      }
    });
  }

  std::vector<Tensor<T>> inputs{x};
  if (has_w) inputs.push_back(weight);
  if (has_b) inputs.push_back(bias);
  const std::size_t iw = has_w ? 1 : 0;  // input positions (0: absent)
  const std::size_t ib = has_b ? inputs.size() - 1 : 0;
  std::uint32_t reads = 1u;  // x (for xhat), and the weight for the input's gradient
  if (has_w) reads |= 1u << iw;
  std::vector<int> dims;  // the normalised dims, for the derivative written with ops
  for (std::size_t i = 0; i < k; ++i) dims.push_back(static_cast<int>(s.size() - k + i));
  return record<T>(
      op, std::move(out), inputs,
      [=](const Tensor<T>& grad, Grads<T>& g) {
        const bool need_x = g.needs(0);
        const bool need_w = has_w && g.needs(iw);
        const bool need_b = has_b && g.needs(ib);
        if (g.create_graph()) {
          // layer_norm, as ops: gw = grad * w, xhat and invstd functions of x;
          // dx = invstd (gw - mean(gw) - xhat mean(gw xhat)) over the normalised dims;
          // dw = grad xhat and db = grad, which the engine sums over the leading dims.
          const Tensor<T> xin = g.in(0);
          const Tensor<T> mu = mean(xin, dims, true, loc);
          const Tensor<T> centered = sub(xin, mu, loc);
          const Tensor<T> var = mean(mul(centered, centered, loc), dims, true, loc);
          const Tensor<T> inv = pow(add(var, e, loc), T(-0.5), loc);
          const Tensor<T> xhat = mul(centered, inv, loc);
          const Tensor<T> gw = has_w ? mul(grad, g.in(iw), loc) : grad;
          if (need_x) {
            g.to(0, mul(inv,
                        sub(sub(gw, mean(gw, dims, true, loc), loc),
                            mul(xhat, mean(mul(gw, xhat, loc), dims, true, loc), loc), loc),
                        loc));
          }
          if (need_w) g.to(iw, mul(grad, xhat, loc));
          if (need_b) g.to(ib, grad);
          return;
        }
        const T* dy = grad.value().data();
        const T* xv = g.value(0).data();
        const T* wv = has_w ? g.value(iw).data() : nullptr;
        if (need_x) {
          Tensor<T> dx(Array<T>::from_shape(grad.value().shape()));
          T* dxp = dx.mutable_value().data();
          for_rows(rows, cols, [&](std::size_t r) {
            const T* dyr = dy + r * cols;
            const T* xr = xv + r * cols;
            T* dxr = dxp + r * cols;
            const T mu = (*mu_r)[r], inv = (*inv_r)[r];
            // dx holds xhat until the sums are taken.
            for (std::size_t j = 0; j < cols; ++j) dxr[j] = (xr[j] - mu) * inv;
            const auto [sum_g, sum_gx] = grad_sums(dyr, wv, dxr, cols);
            const T mg = sum_g / n, mgx = sum_gx / n;
            if (wv) {
              for (std::size_t j = 0; j < cols; ++j)
                dxr[j] = inv * (dyr[j] * wv[j] - mg - dxr[j] * mgx);
            } else {
              for (std::size_t j = 0; j < cols; ++j) dxr[j] = inv * (dyr[j] - mg - dxr[j] * mgx);
            }
          });
          g.to(0, std::move(dx));
        }
        if (need_w || need_b) {
          // Row after row into one accumulator per column: the same order on any thread count.
          Array<T> dw = Array<T>(normalized_shape, T(0));
          Array<T> db = Array<T>(normalized_shape, T(0));
          T* dwp = dw.data();
          T* dbp = db.data();
          for (std::size_t r = 0; r < rows; ++r) {
            const T* dyr = dy + r * cols;
            const T* xr = xv + r * cols;
            const T mu = (*mu_r)[r], inv = (*inv_r)[r];
            if (need_w) {
              for (std::size_t j = 0; j < cols; ++j) dwp[j] += dyr[j] * ((xr[j] - mu) * inv);
            }
            if (need_b) {
              for (std::size_t j = 0; j < cols; ++j) dbp[j] += dyr[j];
            }
          }
          if (need_w) g.to(iw, std::move(dw));
          if (need_b) g.to(ib, std::move(db));
        }
      },
      Saves{reads, false});
}

#define XGRAD_INSTANTIATE_LAYER_NORM(T)                                              \
  template Tensor<T> layer_norm<T>(const Tensor<T>&, const Shape&, const Tensor<T>&, \
                                   const Tensor<T>&, double, Location);

XGRAD_INSTANTIATE_LAYER_NORM(float)
XGRAD_INSTANTIATE_LAYER_NORM(double)

}  // namespace xgrad
