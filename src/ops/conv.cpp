// Convolution and pooling, lowered onto the matrix-product path. One pair of primitives does all
// the geometry: unfold (im2col: every kernel window of the image as one column) and fold
// (col2im: columns summed back into the image), each the other's derivative. conv2d is then the
// weight times the unfolded input, one product per image and group; the pools reduce over the
// window rows of an unfolded image with the reductions' own derivatives. Every derivative is
// made of ops, so convolutions are differentiable to any order.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <xgrad/autograd.hpp>

#include "common.hpp"
#include "core/parallel.hpp"

namespace xgrad {

namespace {

std::string pair_str(Size2 s) {
  return "(" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")";
}

// The windows of an unfold or fold: images [n, c, h, w], kernel kh x kw with dilation, padding
// and stride, giving oh x ow window positions.
struct Windows {
  std::size_t n = 0, c = 0, h = 0, w = 0;
  std::size_t kh = 1, kw = 1, dh = 1, dw = 1, ph = 0, pw = 0, sh = 1, sw = 1;
  std::size_t oh = 0, ow = 0;
  std::size_t rows() const { return c * kh * kw; }
  std::size_t positions() const { return oh * ow; }
};

// Checks the window arguments of `op` on an image of h x w and counts the positions; any
// failure names the op, the image shape and the argument at fault.
Windows windows(const char* op, const Shape& image, Size2 kernel, Size2 dilation, Size2 padding,
                Size2 stride) {
  const auto fail = [&](const std::string& why) {
    throw ValueError(std::string("xgrad::") + op + ": " + why + " (input " + shape_str(image) +
                     ", kernel_size " + pair_str(kernel) + ", dilation " + pair_str(dilation) +
                     ", padding " + pair_str(padding) + ", stride " + pair_str(stride) + ")");
  };
  if (kernel.h <= 0 || kernel.w <= 0) fail("kernel_size must be positive");
  if (dilation.h <= 0 || dilation.w <= 0) fail("dilation must be positive");
  if (stride.h <= 0 || stride.w <= 0) fail("stride must be positive");
  if (padding.h < 0 || padding.w < 0) fail("padding must not be negative");
  Windows g;
  g.n = image[0];
  g.c = image[1];
  g.h = image[2];
  g.w = image[3];
  g.kh = static_cast<std::size_t>(kernel.h);
  g.kw = static_cast<std::size_t>(kernel.w);
  g.dh = static_cast<std::size_t>(dilation.h);
  g.dw = static_cast<std::size_t>(dilation.w);
  g.ph = static_cast<std::size_t>(padding.h);
  g.pw = static_cast<std::size_t>(padding.w);
  g.sh = static_cast<std::size_t>(stride.h);
  g.sw = static_cast<std::size_t>(stride.w);
  const std::size_t span_h = g.dh * (g.kh - 1) + 1;
  const std::size_t span_w = g.dw * (g.kw - 1) + 1;
  if (g.h + 2 * g.ph < span_h || g.w + 2 * g.pw < span_w) {
    fail("the kernel (with dilation) is larger than the padded input");
  }
  g.oh = (g.h + 2 * g.ph - span_h) / g.sh + 1;
  g.ow = (g.w + 2 * g.pw - span_w) / g.sw + 1;
  return g;
}

// The window positions o whose tap at offset `off` (kernel index times dilation) lands inside
// [0, extent): lo <= o < hi. Outside that range the tap reads padding.
struct Span {
  std::size_t lo, hi;
};
Span inside(std::size_t positions, std::size_t stride, std::size_t pad, std::size_t off,
            std::size_t extent) {
  // o * stride + off - pad in [0, extent)  <=>  o in [ceil((pad - off) / stride),
  // floor((extent - 1 + pad - off) / stride)]
  const auto p = static_cast<std::int64_t>(pad) - static_cast<std::int64_t>(off);
  const auto s = static_cast<std::int64_t>(stride);
  const std::int64_t lo = p <= 0 ? 0 : (p + s - 1) / s;
  const std::int64_t last = static_cast<std::int64_t>(extent) - 1 + p;
  const std::int64_t hi = last < 0 ? 0 : last / s + 1;
  const auto clamp = [&](std::int64_t v) {
    return static_cast<std::size_t>(std::clamp<std::int64_t>(v, 0, std::int64_t(positions)));
  };
  return {clamp(lo), std::max(clamp(lo), clamp(hi))};
}

// Visits every (image, row of the column matrix, window row) with the matching image row (or
// none, for padding) and the columns [lo, hi) that land inside it: f(col_row_ptr_offset,
// image_row_offset or -1, span, kj offset). Shared by unfold and fold so that both read the same
// geometry.
template <class F>
void for_each_tap(const Windows& g, F f) {
  const std::size_t positions = g.positions();
  for (std::size_t img = 0; img < g.n * g.c; ++img) {
    for (std::size_t ki = 0; ki < g.kh; ++ki) {
      for (std::size_t kj = 0; kj < g.kw; ++kj) {
        const std::size_t row = ((img % g.c) * g.kh + ki) * g.kw + kj;
        const std::size_t col_base = ((img / g.c) * g.rows() + row) * positions;
        const Span cols = inside(g.ow, g.sw, g.pw, kj * g.dw, g.w);
        const Span rows = inside(g.oh, g.sh, g.ph, ki * g.dh, g.h);
        for (std::size_t oy = 0; oy < g.oh; ++oy) {
          const bool in = oy >= rows.lo && oy < rows.hi;
          const std::size_t iy = oy * g.sh + ki * g.dh - g.ph;  // valid only when `in`
          f(col_base + oy * g.ow, in, (img * g.h + iy) * g.w, cols, kj * g.dw);
        }
      }
    }
  }
}

template <class T>
Tensor<T> fold_windows(const Tensor<T>& cols, const Windows& g, Location loc);

// im2col: out[n, row, oy * ow + ox] = image tap or `pad`.
template <class T>
Tensor<T> unfold_windows(const Tensor<T>& x, const Windows& g, T pad, Location loc) {
  Array<T> out = Array<T>::from_shape({g.n, g.rows(), g.positions()});
  const T* src = x.value().data();
  T* dst = out.data();
  for_each_tap(g, [&](std::size_t o, bool in, std::size_t i, Span cols, std::size_t off) {
    T* row = dst + o;
    if (!in) {
      std::fill(row, row + g.ow, pad);
      return;
    }
    std::fill(row, row + cols.lo, pad);
    std::fill(row + cols.hi, row + g.ow, pad);
    if (cols.lo == cols.hi) return;
    const T* tap = src + i + (cols.lo * g.sw + off - g.pw);  // the tap of column cols.lo
    if (g.sw == 1) {
      std::copy(tap, tap + (cols.hi - cols.lo), row + cols.lo);
    } else {
      for (std::size_t ox = cols.lo; ox < cols.hi; ++ox, tap += g.sw) row[ox] = *tap;
    }
  });
  return record<T>(
      {"unfold", loc}, std::move(out), {x},
      [g, loc](const Tensor<T>& grad, Grads<T>& gr) {
        // unfold: fold(grad), padding taps dropped
        if (gr.needs(0)) gr.to(0, fold_windows(grad, g, loc));
      },
      Saves::none());
}

// col2im: image[tap] += cols[n, row, oy * ow + ox], padding taps dropped.
template <class T>
Tensor<T> fold_windows(const Tensor<T>& cols, const Windows& g, Location loc) {
  Array<T> out = Array<T>::from_shape({g.n, g.c, g.h, g.w});
  out.fill(T(0));
  const T* src = cols.value().data();
  T* dst = out.data();
  for_each_tap(g, [&](std::size_t o, bool in, std::size_t i, Span span, std::size_t off) {
    if (!in || span.lo == span.hi) return;
    const T* row = src + o;
    T* tap = dst + i + (span.lo * g.sw + off - g.pw);
    for (std::size_t ox = span.lo; ox < span.hi; ++ox, tap += g.sw) *tap += row[ox];
  });
  return record<T>(
      {"fold", loc}, std::move(out), {cols},
      [g, loc](const Tensor<T>& grad, Grads<T>& gr) {
        // fold: unfold(grad)
        if (gr.needs(0)) gr.to(0, unfold_windows(grad, g, T(0), loc));
      },
      Saves::none());
}

// Images as [N, C, H, W]: a 3-D [C, H, W] input is one unbatched image (as PyTorch takes it).
template <class T>
Tensor<T> batched(const char* op, const Tensor<T>& x, Location loc) {
  if (x.dim() == 4) return x;
  if (x.dim() == 3) return unsqueeze(x, 0, loc);
  throw ShapeError(std::string("xgrad::") + op + ": input must be [N, C, H, W] or [C, H, W], got " +
                   shape_str(x.shape()));
}

template <class T>
Tensor<T> unbatched_like(const Tensor<T>& y, const Tensor<T>& x, Location loc) {
  return x.dim() == 3 ? squeeze(y, 0, loc) : y;
}

// fn(lo, hi) over ranges of `count` independent planes of `work` element visits each, split over
// xgrad's threads when there is enough work to pay for it.
template <class F>
void for_planes(std::size_t count, std::size_t work, F&& fn) {
  const std::size_t grain =
      std::max<std::size_t>(1, (std::size_t{1} << 15) / std::max<std::size_t>(work, 1));
  detail::parallel_for(count, grain, 1, fn);
}

Dims dims_of(std::initializer_list<std::size_t> e) {
  Dims d;
  for (std::size_t v : e) d.push_back(static_cast<std::int64_t>(v));
  return d;
}

}  // namespace

template <class T>
Tensor<T> unfold(const Tensor<T>& x, Size2 kernel_size, Size2 dilation, Size2 padding, Size2 stride,
                 Location loc) {
  const ops::Entry op{"unfold", loc};
  if (x.dim() != 4) {
    throw ShapeError("xgrad::unfold: input must be [N, C, H, W], got " + shape_str(x.shape()));
  }
  const Windows g = windows("unfold", x.shape(), kernel_size, dilation, padding, stride);
  return unfold_windows(x, g, T(0), loc);
}

template <class T>
Tensor<T> fold(const Tensor<T>& cols, Size2 output_size, Size2 kernel_size, Size2 dilation,
               Size2 padding, Size2 stride, Location loc) {
  const ops::Entry op{"fold", loc};
  const Shape s = cols.shape();
  if (s.size() != 3) {
    throw ShapeError("xgrad::fold: input must be [N, C * kh * kw, L], got " + shape_str(s));
  }
  if (output_size.h <= 0 || output_size.w <= 0 || kernel_size.h <= 0 || kernel_size.w <= 0) {
    throw ValueError("xgrad::fold: output_size " + pair_str(output_size) + " and kernel_size " +
                     pair_str(kernel_size) + " must be positive (input " + shape_str(s) + ")");
  }
  const auto taps = static_cast<std::size_t>(kernel_size.h * kernel_size.w);
  if (s[1] % taps != 0) {
    throw ShapeError("xgrad::fold: dim 1 of the input " + shape_str(s) +
                     " is not a multiple of the kernel's " + std::to_string(taps) + " taps");
  }
  const Shape image{s[0], s[1] / taps, static_cast<std::size_t>(output_size.h),
                    static_cast<std::size_t>(output_size.w)};
  const Windows g = windows("fold", image, kernel_size, dilation, padding, stride);
  if (g.positions() != s[2]) {
    throw ShapeError("xgrad::fold: input " + shape_str(s) + " has " + std::to_string(s[2]) +
                     " columns but output_size " + pair_str(output_size) + " holds " +
                     std::to_string(g.positions()) + " window positions");
  }
  return fold_windows(cols, g, loc);
}

template <class T>
Tensor<T> conv2d(const Tensor<T>& input, const Tensor<T>& weight, const Tensor<T>& bias,
                 Size2 stride, Size2 padding, Size2 dilation, std::int64_t groups, Location loc) {
  const ops::Entry op{"conv2d", loc};
  const Tensor<T> x = batched("conv2d", input, loc);
  const Shape sx = x.shape();
  const Shape sw = weight.shape();
  const auto fail = [&](const std::string& why) {
    throw ShapeError("xgrad::conv2d: input " + shape_str(input.shape()) + ", weight " +
                     shape_str(sw) +
                     (bias.defined() ? ", bias " + shape_str(bias.shape()) : std::string()) +
                     ", groups " + std::to_string(groups) + ": " + why);
  };
  if (sw.size() != 4) fail("weight must be [out_channels, in_channels / groups, kh, kw]");
  if (groups <= 0) fail("groups must be positive");
  const auto G = static_cast<std::size_t>(groups);
  const std::size_t out_c = sw[0];
  if (sx[1] % G != 0 || out_c % G != 0) fail("groups must divide in_channels and out_channels");
  if (sw[1] * G != sx[1]) fail("the weight's dim 1 times groups must equal in_channels");
  if (bias.defined() && !(bias.dim() == 1 && bias.size(0) == out_c)) fail("bias must be [out]");
  const Windows g =
      windows("conv2d", sx, {static_cast<std::int64_t>(sw[2]), static_cast<std::int64_t>(sw[3])},
              dilation, padding, stride);

  const Tensor<T> cols = unfold_windows(x, g, T(0), loc);  // [N, C kh kw, L]
  const std::size_t k = sw[1] * sw[2] * sw[3];             // contraction per group
  const std::size_t L = g.positions();
  Tensor<T> y;
  if (G == 1) {
    y = matmul(reshape(weight, dims_of({out_c, k}), loc), cols, loc);  // [N, O, L]
  } else {
    // Channel groups are contiguous blocks of the unfolded rows and of the weight's rows.
    const Tensor<T> c4 = reshape(cols, dims_of({g.n, G, k, L}), loc);
    const Tensor<T> w3 = reshape(weight, dims_of({G, out_c / G, k}), loc);
    y = reshape(matmul(w3, c4, loc), dims_of({g.n, out_c, L}), loc);
  }
  if (bias.defined()) y = add(y, reshape(bias, dims_of({out_c, 1}), loc), loc);
  return unbatched_like(reshape(y, dims_of({g.n, out_c, g.oh, g.ow}), loc), input, loc);
}

namespace {
// The windows of a pool over each channel alone: the image seen as [N C, 1, H, W].
template <class T>
std::pair<Tensor<T>, Windows> pool_windows(const char* op, const Tensor<T>& x, Size2 kernel,
                                           Size2 stride, Size2 padding, Size2 dilation,
                                           Location loc) {
  const Shape s = x.shape();
  if (stride.h == 0 && stride.w == 0) stride = kernel;
  if (padding.h * 2 > kernel.h || padding.w * 2 > kernel.w) {
    throw ValueError(std::string("xgrad::") + op + ": padding " + pair_str(padding) +
                     " must be at most half of kernel_size " + pair_str(kernel) + " (input " +
                     shape_str(s) + ")");
  }
  if (s[2] == 0 || s[3] == 0) {
    throw ValueError(std::string("xgrad::") + op + ": the image " + shape_str(s) +
                     " has no height or width to pool over");
  }
  const Tensor<T> planes = reshape(x, dims_of({s[0] * s[1], 1, s[2], s[3]}), loc);
  Windows g = windows(op, planes.shape(), kernel, dilation, padding, stride);
  return {planes, g};
}
}  // namespace

namespace {
// Where each max-pool output took its value from: an element of its image plane (h * w), the
// same for every derivative of the pool.
using Picks = std::shared_ptr<const std::vector<std::uint32_t>>;

template <class T>
Tensor<T> gather_picks(const Tensor<T>& x, const Picks& picks, const Shape& out_shape,
                       Location loc);

// dx[plane, pick] += grad[plane, k]: the derivative of max_pool2d, linear in grad. Its own
// derivative is the gather of the same picks.
template <class T>
Tensor<T> scatter_picks(const Tensor<T>& grad, const Picks& picks, const Shape& in_shape,
                        Location loc) {
  Array<T> out = Array<T>::from_shape(in_shape);
  out.fill(T(0));
  const std::size_t plane = in_shape[2] * in_shape[3];
  const std::size_t per = grad.numel() / std::max<std::size_t>(in_shape[0] * in_shape[1], 1);
  const T* g = grad.value().data();
  T* o = out.data();
  const std::uint32_t* p = picks->data();
  const std::size_t planes = in_shape[0] * in_shape[1];
  for (std::size_t i = 0; i < planes; ++i) {
    for (std::size_t k = 0; k < per; ++k) o[i * plane + p[i * per + k]] += g[i * per + k];
  }
  const Shape grad_shape = grad.shape();
  return record<T>(
      {"max_pool2d_backward", loc}, std::move(out), {grad},
      [picks, grad_shape, loc](const Tensor<T>& gg, Grads<T>& gr) {
        if (gr.needs(0)) gr.to(0, gather_picks(gg, picks, grad_shape, loc));
      },
      Saves::none());
}

// y[plane, k] = x[plane, pick]: max_pool2d's forward once the picks are known.
template <class T>
Tensor<T> gather_picks(const Tensor<T>& x, const Picks& picks, const Shape& out_shape,
                       Location loc) {
  Array<T> out = Array<T>::from_shape(out_shape);
  const Shape in_shape = x.shape();
  const std::size_t plane = in_shape[2] * in_shape[3];
  const std::size_t planes = in_shape[0] * in_shape[1];
  const std::size_t per = out_shape[2] * out_shape[3];
  const T* src = x.value().data();
  T* o = out.data();
  const std::uint32_t* p = picks->data();
  for (std::size_t i = 0; i < planes; ++i) {
    for (std::size_t k = 0; k < per; ++k) o[i * per + k] = src[i * plane + p[i * per + k]];
  }
  return record<T>(
      {"max_pool2d", loc}, std::move(out), {x},
      [picks, in_shape, loc](const Tensor<T>& grad, Grads<T>& gr) {
        // max_pool2d: grad scattered to the element each window picked
        if (gr.needs(0)) gr.to(0, scatter_picks(grad, picks, in_shape, loc));
      },
      Saves::none());
}
}  // namespace

template <class T>
Tensor<T> max_pool2d(const Tensor<T>& input, Size2 kernel_size, Size2 stride, Size2 padding,
                     Size2 dilation, Location loc) {
  const ops::Entry op{"max_pool2d", loc};
  const Tensor<T> x = batched("max_pool2d", input, loc);
  const auto [planes, g] =
      pool_windows("max_pool2d", x, kernel_size, stride, padding, dilation, loc);
  const Shape s = x.shape();
  if (g.h * g.w > std::numeric_limits<std::uint32_t>::max()) {
    throw ValueError("xgrad::max_pool2d: image planes of " + std::to_string(g.h * g.w) +
                     " elements are too large (input " + shape_str(s) + ")");
  }
  // Each window's first largest element (NaN wins, as in PyTorch); padding never does.
  auto picks = std::make_shared<std::vector<std::uint32_t>>(g.n * g.positions());
  const T* src = x.value().data();
  std::uint32_t* pick = picks->data();
  const std::size_t plane = g.h * g.w;
  // The kernel taps inside the image, per output row and column: [lo, hi) of ki and kj.
  const auto tap_range = [](std::size_t o, std::size_t step, std::size_t pad, std::size_t dil,
                            std::size_t k, std::size_t extent) {
    std::size_t lo = 0, hi = k;
    while (lo < k && o * step + lo * dil < pad) ++lo;
    while (hi > lo && o * step + (hi - 1) * dil >= pad + extent) --hi;
    return Span{lo, hi};
  };
  std::vector<Span> rows(g.oh), cols(g.kw);
  for (std::size_t oy = 0; oy < g.oh; ++oy) rows[oy] = tap_range(oy, g.sh, g.ph, g.dh, g.kh, g.h);
  // For kernel column kj, the output columns whose tap lands inside the image.
  for (std::size_t kj = 0; kj < g.kw; ++kj) cols[kj] = inside(g.ow, g.sw, g.pw, kj * g.dw, g.w);
  constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  for_planes(g.n, g.positions() * g.kh * g.kw, [&](std::size_t lo, std::size_t hi) {
    std::vector<T> best_v(g.ow);
    std::vector<std::uint32_t> best_at(g.ow);
    for (std::size_t i = lo; i < hi; ++i) {
      const T* image = src + i * plane;
      std::uint32_t* out = pick + i * g.positions();
      for (std::size_t oy = 0; oy < g.oh; ++oy) {
        // One output row at a time, tap by tap: the inner loop runs along the row, without
        // branches, so that it vectorises. Taps come in the window's row-major order and only a
        // strictly larger value (or a NaN) takes over, so the first largest wins, or the last
        // NaN, as in PyTorch.
        std::fill(best_v.begin(), best_v.end(), -std::numeric_limits<T>::infinity());
        std::fill(best_at.begin(), best_at.end(), kNone);
        T* bv = best_v.data();
        std::uint32_t* ba = best_at.data();
        for (std::size_t ki = rows[oy].lo; ki < rows[oy].hi; ++ki) {
          const std::size_t iy = oy * g.sh + ki * g.dh - g.ph;
          for (std::size_t kj = 0; kj < g.kw; ++kj) {
            const Span c = cols[kj];
            if (c.lo >= c.hi) continue;
            const std::size_t first = iy * g.w + c.lo * g.sw + kj * g.dw - g.pw;
            const T* tap = image + first;
            // The usual strides as constants, so that the loads are a known pattern.
            const auto along = [&](auto step) {
              for (std::size_t ox = c.lo; ox < c.hi; ++ox) {
                const std::size_t k = (ox - c.lo) * step;
                const T v = tap[k];
                const bool take = v > bv[ox] || v != v || ba[ox] == kNone;
                bv[ox] = take ? v : bv[ox];
                ba[ox] = take ? static_cast<std::uint32_t>(first + k) : ba[ox];
              }
            };
            if (g.sw == 1) {
              along(std::integral_constant<std::size_t, 1>{});
            } else if (g.sw == 2) {
              along(std::integral_constant<std::size_t, 2>{});
            } else {
              along(g.sw);
            }
          }
        }
        std::copy(best_at.begin(), best_at.end(), out + oy * g.ow);
      }
    }
  });
  // With dilation, a window can hold padding alone (kernel 2, dilation 2, padding 1 on a 1x1
  // image): it has no element to pick.
  if (std::find(picks->begin(), picks->end(), kNone) != picks->end()) {
    throw ValueError("xgrad::max_pool2d: a window of kernel_size " + pair_str(kernel_size) +
                     " with dilation " + pair_str(dilation) + " and padding " + pair_str(padding) +
                     " covers padding only (input " + shape_str(s) + ")");
  }
  const Tensor<T> y = gather_picks(planes, Picks(std::move(picks)), {g.n, 1, g.oh, g.ow}, loc);
  return unbatched_like(reshape(y, dims_of({s[0], s[1], g.oh, g.ow}), loc), input, loc);
}

template <class T>
Tensor<T> avg_pool2d(const Tensor<T>& input, Size2 kernel_size, Size2 stride, Size2 padding,
                     bool count_include_pad, Location loc) {
  const ops::Entry op{"avg_pool2d", loc};
  const Tensor<T> x = batched("avg_pool2d", input, loc);
  const auto [planes, g] = pool_windows("avg_pool2d", x, kernel_size, stride, padding, 1, loc);
  const Tensor<T> cols = unfold_windows(planes, g, T(0), loc);
  Tensor<T> y;
  if (count_include_pad || (g.ph == 0 && g.pw == 0)) {
    y = mean(cols, {1}, false, loc);  // [N C, L]
  } else {
    // Each window's count of taps inside the image: the windows of an image of ones.
    Windows one = g;
    one.n = 1;
    Tensor<T> count;
    {
      const NoGradGuard no_grad;
      Array<T> image = Array<T>::from_shape({1, 1, g.h, g.w});
      image.fill(T(1));
      const Tensor<T> ones(std::move(image));
      count = sum(unfold_windows(ones, one, T(0), loc), {1}, false, loc);  // [1, L]
    }
    y = div(sum(cols, {1}, false, loc), count, loc);
  }
  const Shape s = x.shape();
  return unbatched_like(reshape(y, dims_of({s[0], s[1], g.oh, g.ow}), loc), input, loc);
}

#define XGRAD_INSTANTIATE_CONV(T)                                                                  \
  template Tensor<T> unfold<T>(const Tensor<T>&, Size2, Size2, Size2, Size2, Location);            \
  template Tensor<T> fold<T>(const Tensor<T>&, Size2, Size2, Size2, Size2, Size2, Location);       \
  template Tensor<T> conv2d<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Size2, Size2, \
                               Size2, std::int64_t, Location);                                     \
  template Tensor<T> max_pool2d<T>(const Tensor<T>&, Size2, Size2, Size2, Size2, Location);        \
  template Tensor<T> avg_pool2d<T>(const Tensor<T>&, Size2, Size2, Size2, bool, Location);

XGRAD_INSTANTIATE_CONV(float)
XGRAD_INSTANTIATE_CONV(double)

}  // namespace xgrad
