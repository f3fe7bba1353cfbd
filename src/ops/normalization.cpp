// Normalisation: batch_norm (layer_norm is in layer_norm.cpp). batch_norm runs as one op
// (per-channel sums in two passes, the derivative in two more); under create_graph its derivative
// is the same formula written with ops, so it is differentiable again. The running statistics of
// batch_norm are state, not graph: they are updated in place with grad mode off.

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <xgrad/autograd.hpp>

#include "common.hpp"
#include "core/parallel.hpp"
#include "simd.hpp"

namespace xgrad {

namespace {

// (x - mean) / sqrt(var + eps) with mean and var of the `dims` of x (kept as size-1 dims); the
// variance is the biased one, as the normalisation uses it.
template <class T>
struct Moments {
  Tensor<T> mean;
  Tensor<T> centered;
  Tensor<T> var;
};

template <class T>
Moments<T> moments(const Tensor<T>& x, const std::vector<int>& dims, Location loc) {
  Moments<T> m;
  m.mean = mean(x, dims, true, loc);
  m.centered = sub(x, m.mean, loc);
  m.var = mean(mul(m.centered, m.centered, loc), dims, true, loc);
  return m;
}

// x as [n, c, inner] (inner: the product of the dims after the channels).
struct BnLayout {
  std::size_t n, c, inner;
  // f(i) for every flat index i of channel k.
  template <class F>
  void visit(std::size_t k, F&& f) const {
    for (std::size_t b = 0; b < n; ++b) {
      const std::size_t base = (b * c + k) * inner;
      for (std::size_t i = base; i < base + inner; ++i) f(i);
    }
  }
  // f(offset, length) over channel k's runs in pieces of at most 4096 elements: a sum adds each
  // piece in T lanes and the pieces in double, so that rounding grows with a piece, not with the
  // channel's length.
  template <class F>
  void pieces(std::size_t k, F&& f) const {
    constexpr std::size_t kPiece = 4096;
    for (std::size_t b = 0; b < n; ++b) {
      const std::size_t base = (b * c + k) * inner;
      for (std::size_t i = 0; i < inner; i += kPiece) f(base + i, std::min(kPiece, inner - i));
    }
  }
};

// fn(k) for every channel, over xgrad's threads when the channels hold enough values.
template <class F>
void for_channels(const BnLayout& lay, F&& fn) {
  const std::size_t per = lay.n * lay.inner;
  const std::size_t grain =
      std::max<std::size_t>(1, (std::size_t{1} << 15) / std::max<std::size_t>(per, 1));
  detail::parallel_for(lay.c, grain, 1, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t k = lo; k < hi; ++k) fn(k);
  });
}

}  // namespace

template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, const Tensor<T>& running_mean,
                     const Tensor<T>& running_var, const Tensor<T>& weight, const Tensor<T>& bias,
                     bool training, double momentum, double eps, Location loc) {
  const ops::Entry op{"batch_norm", loc};
  const Shape s = x.shape();
  const auto fail = [&](const std::string& why) {
    throw ShapeError("xgrad::batch_norm: input " + shape_str(s) + ", running_mean " +
                     ops::shape_or_none(running_mean) + ", running_var " +
                     ops::shape_or_none(running_var) + ", weight " + ops::shape_or_none(weight) +
                     ", bias " + ops::shape_or_none(bias) + ": " + why);
  };
  if (s.size() < 2) fail("input must be [N, C, ...]");
  const std::size_t c = s[1];
  for (const Tensor<T>* t : {&running_mean, &running_var, &weight, &bias}) {
    if (t->defined() && !(t->dim() == 1 && t->size(0) == c)) {
      fail("statistics, weight and bias must be [C] with C = " + std::to_string(c));
    }
  }
  if (!(eps >= 0) || !(momentum >= 0 && momentum <= 1)) {
    throw ValueError("xgrad::batch_norm: eps " + std::to_string(eps) +
                     " must be >= 0 and momentum " + std::to_string(momentum) +
                     " in [0, 1] (input " + shape_str(s) + ")");
  }
  if (!training && !(running_mean.defined() && running_var.defined())) {
    fail("evaluation (training = false) needs running_mean and running_var");
  }
  std::vector<int> dims;
  for (std::size_t d = 0; d < s.size(); ++d) {
    if (d != 1) dims.push_back(static_cast<int>(d));
  }
  Dims channel(s.size(), 1);  // [1, C, 1, ...]: a per-channel vector broadcast over x
  channel[1] = static_cast<std::int64_t>(c);
  const std::size_t count = c == 0 ? 0 : x.numel() / c;  // values per channel
  if (training && count <= 1) {
    throw ValueError("xgrad::batch_norm: training needs more than one value per channel (input " +
                     shape_str(s) + ")");
  }
  // x as [n, c, inner]: channel k's values are n runs of `inner` contiguous elements.
  const BnLayout lay{s[0], c, s[0] * c == 0 ? 0 : x.numel() / (s[0] * c)};
  const T* xp = x.value().data();

  // Per channel: the mean and 1 / sqrt(var + eps), from the batch (two passes, in double) or
  // from the running statistics.
  auto mu_c = std::make_shared<std::vector<T>>(c);
  auto inv_c = std::make_shared<std::vector<T>>(c);
  std::vector<double> batch_var(training ? c : 0);
  for_channels(lay, [&](std::size_t k) {
    if (training) {
      double sum = 0;
      lay.pieces(k, [&](std::size_t i, std::size_t len) { sum += ops::simd::sum(xp + i, len); });
      const double mu = sum / static_cast<double>(count);
      // Squares about the mean rounded to T, then moved to the mean itself.
      const T centre = static_cast<T>(mu);
      double sq = 0;
      lay.pieces(k, [&](std::size_t i, std::size_t len) {
        sq += ops::simd::sum_sq_dev(xp + i, len, centre);
      });
      const double shift = mu - static_cast<double>(centre);
      batch_var[k] = std::max(0.0, sq / static_cast<double>(count) - shift * shift);
      (*mu_c)[k] = static_cast<T>(mu);
      (*inv_c)[k] = static_cast<T>(1.0 / std::sqrt(batch_var[k] + eps));
    } else {
      (*mu_c)[k] = running_mean.value().data()[k];
      (*inv_c)[k] =
          static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var.value().data()[k]) + eps));
    }
  });
  const bool has_w = weight.defined();
  const bool has_b = bias.defined();
  Array<T> out = Array<T>::from_shape(x.value().shape());
  T* yp = out.data();
  for_channels(lay, [&](std::size_t k) {
    const T scale = (*inv_c)[k] * (has_w ? weight.value().data()[k] : T(1));
    const T shift = (has_b ? bias.value().data()[k] : T(0)) - (*mu_c)[k] * scale;
    lay.visit(k, [&](std::size_t i) { yp[i] = xp[i] * scale + shift; });
  });
  if (training) {
    const NoGradGuard no_grad;
    const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
    if (running_mean.defined()) {
      Tensor<T> handle = running_mean;  // shares the caller's state
      T* r = handle.mutable_value().data();
      for (std::size_t k = 0; k < c; ++k) {
        r[k] = static_cast<T>((1 - momentum) * r[k] + momentum * (*mu_c)[k]);
      }
    }
    if (running_var.defined()) {
      Tensor<T> handle = running_var;
      T* r = handle.mutable_value().data();
      for (std::size_t k = 0; k < c; ++k) {
        r[k] = static_cast<T>((1 - momentum) * r[k] + momentum * unbias * batch_var[k]);
      }
    }
  }

  std::vector<Tensor<T>> inputs{x};
  if (has_w) inputs.push_back(weight);
  if (has_b) inputs.push_back(bias);
  const std::size_t iw = has_w ? 1 : 0;  // input positions (0: absent)
  const std::size_t ib = has_b ? inputs.size() - 1 : 0;
  const T e = static_cast<T>(eps);
  std::uint32_t reads = 1u;  // x (for xhat), and the weight for the input's gradient
  if (has_w) reads |= 1u << iw;
  return record<T>(
      op, std::move(out), inputs,
      [=](const Tensor<T>& grad, Grads<T>& g) {
        const bool need_x = g.needs(0);
        const bool need_w = has_w && g.needs(iw);
        const bool need_b = has_b && g.needs(ib);
        if (g.create_graph()) {
          // batch_norm, as ops: gw = grad * w; training: dx = invstd (gw - mean(gw) - xhat
          // mean(gw xhat)) with invstd and xhat functions of x; evaluation: dx = gw invstd.
          // dw = sum(grad xhat), db = sum(grad) over every dim but the channels.
          const Tensor<T> xin = g.in(0);
          Tensor<T> inv, xhat;
          if (training) {
            const Moments<T> m = moments(xin, dims, loc);
            inv = pow(add(m.var, e, loc), T(-0.5), loc);
            xhat = mul(m.centered, inv, loc);
          } else {
            inv = reshape(Tensor<T>(Array<T>(xt::adapt(*inv_c))), channel, loc);
            xhat = mul(sub(xin, reshape(Tensor<T>(Array<T>(xt::adapt(*mu_c))), channel, loc), loc),
                       inv, loc);
          }
          const Tensor<T> gw = has_w ? mul(grad, reshape(g.in(iw), channel, loc), loc) : grad;
          const Dims flat{static_cast<std::int64_t>(lay.c)};
          if (need_x) {
            g.to(0, training
                        ? mul(inv,
                              sub(sub(gw, mean(gw, dims, true, loc), loc),
                                  mul(xhat, mean(mul(gw, xhat, loc), dims, true, loc), loc), loc),
                              loc)
                        : mul(gw, inv, loc));
          }
          if (need_w) g.to(iw, reshape(sum(mul(grad, xhat, loc), dims, false, loc), flat, loc));
          if (need_b) g.to(ib, reshape(sum(grad, dims, false, loc), flat, loc));
          return;
        }
        // The same formulas in one pass for the sums and one for dx.
        const T* dy = grad.value().data();
        const T* xv = g.value(0).data();
        const T* wv = has_w ? g.value(iw).data() : nullptr;
        std::vector<T> sum_dy(lay.c), sum_dy_xhat(lay.c);
        for_channels(lay, [&](std::size_t k) {
          double a = 0, b = 0;
          lay.pieces(k, [&](std::size_t i, std::size_t len) {
            a += ops::simd::sum(dy + i, len);
            b += ops::simd::sum_prod_dev(dy + i, xv + i, len, (*mu_c)[k]);
          });
          sum_dy[k] = static_cast<T>(a);
          sum_dy_xhat[k] = static_cast<T>(b * (*inv_c)[k]);
        });
        if (need_x) {
          Tensor<T> dx(Array<T>::from_shape(grad.value().shape()));
          T* dxp = dx.mutable_value().data();
          const T n = static_cast<T>(count);
          for_channels(lay, [&](std::size_t k) {
            const T mu = (*mu_c)[k], is = (*inv_c)[k];
            const T scale = is * (wv ? wv[k] : T(1));
            if (!training) {
              lay.visit(k, [&](std::size_t i) { dxp[i] = dy[i] * scale; });
              return;
            }
            const T mdy = sum_dy[k] / n;
            const T mdyx = sum_dy_xhat[k] / n;
            lay.visit(k, [&](std::size_t i) {
              dxp[i] = scale * (dy[i] - mdy - (xv[i] - mu) * is * mdyx);
            });
          });
          g.to(0, std::move(dx));
        }
        if (need_w) g.to(iw, Tensor<T>(Array<T>(xt::adapt(sum_dy_xhat))));
        if (need_b) g.to(ib, Tensor<T>(Array<T>(xt::adapt(sum_dy))));
      },
      Saves{reads, false});
}

#define XGRAD_INSTANTIATE_NORMALIZATION(T)                                                   \
  template Tensor<T> batch_norm<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,     \
                                   const Tensor<T>&, const Tensor<T>&, bool, double, double, \
                                   Location);

XGRAD_INSTANTIATE_NORMALIZATION(float)
XGRAD_INSTANTIATE_NORMALIZATION(double)

}  // namespace xgrad
