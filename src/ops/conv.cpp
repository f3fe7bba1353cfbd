// Convolution and pooling, lowered onto the matrix-product path. One pair of primitives does all
// the geometry: unfold (im2col: every kernel window of the image as one column) and fold
// (col2im: columns summed back into the image), each the other's derivative. conv2d is then the
// weight times the unfolded batch, one product per group; max_pool2d records which element each
// window picked, avg_pool2d reduces over the rows of an unfolded image. Under create_graph every
// derivative is made of ops, so convolutions are differentiable to any order.

#include <algorithm>
#include <array>
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
#include "simd.hpp"

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

// Where a column matrix keeps image n's row r (of C kh kw): at n * image_step + r * row_step.
// Batch-major [N, C kh kw, L] is unfold's public layout; channel-major [C kh kw, N L] puts the
// batch's columns side by side, so that a convolution is one product over the whole batch.
struct ColumnLayout {
  std::size_t image_step, row_step;
};
ColumnLayout batch_major(const Windows& g) {
  return {g.rows() * g.positions(), g.positions()};
}
ColumnLayout channel_major(const Windows& g) {
  return {g.positions(), g.n * g.positions()};
}

// Visits every (image plane in [lo, hi), row of the column matrix, window row) with the matching
// image row (or none, for padding) and the columns that land inside it: f(column matrix offset,
// inside, image offset, span, kj offset). Shared by unfold and fold so that both read the same
// geometry; plane n * C + c is touched only by its own visits, so planes run in parallel.
template <class F>
void for_each_tap(const Windows& g, ColumnLayout lay, std::size_t lo, std::size_t hi, F f) {
  for (std::size_t img = lo; img < hi; ++img) {
    for (std::size_t ki = 0; ki < g.kh; ++ki) {
      for (std::size_t kj = 0; kj < g.kw; ++kj) {
        const std::size_t row = ((img % g.c) * g.kh + ki) * g.kw + kj;
        const std::size_t col_base = (img / g.c) * lay.image_step + row * lay.row_step;
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

// fn(lo, hi) over ranges of `count` independent planes of `work` element visits each, split over
// xgrad's threads when there is enough work to pay for it.
template <class F>
void for_planes(std::size_t count, std::size_t work, F&& fn) {
  const std::size_t grain =
      std::max<std::size_t>(1, (std::size_t{1} << 15) / std::max<std::size_t>(work, 1));
  detail::parallel_for(count, grain, 1, fn);
}

// With stride 1 and the output as wide as the input (a "same" convolution), the taps of one
// kernel offset (ki, kj) are the image plane shifted by delta = (ki dh - ph) w + kj dw - pw:
// window position d = oy ow + ox reads element d + delta. Over the window rows that land inside
// the image this is one contiguous run [lo, hi) (clipped to the plane), in which only the
// positions whose column lands in padding (outside `cols`) read a wrong element, from the
// neighbouring row; they are set afterwards.
bool shifts(const Windows& g) {
  return g.sh == 1 && g.sw == 1 && g.ow == g.w;
}

struct Shift {
  std::ptrdiff_t delta;
  std::size_t lo, hi;
  Span rows, cols;
};

Shift shift(const Windows& g, std::size_t ki, std::size_t kj) {
  using D = std::ptrdiff_t;
  Shift s;
  s.rows = inside(g.oh, 1, g.ph, ki * g.dh, g.h);
  s.cols = inside(g.ow, 1, g.pw, kj * g.dw, g.w);
  s.delta = (D(ki * g.dh) - D(g.ph)) * D(g.w) + D(kj * g.dw) - D(g.pw);
  // A position whose element lies before the plane (or after it) reads padding: a row above
  // the image or a column left of it. The run can be empty, and begin past the window
  // positions (a 3x3 kernel with padding 1 over an image of one row).
  const D plane = D(g.h * g.w), positions = D(g.positions());
  const D lo = std::clamp(std::max(D(s.rows.lo * g.w), -s.delta), D(0), positions);
  const D hi = std::clamp(std::min(D(s.rows.hi * g.w), plane - s.delta), lo, positions);
  s.lo = static_cast<std::size_t>(lo);
  s.hi = static_cast<std::size_t>(hi);
  return s;
}

// im2col of the image x into dst (laid out as `lay`): dst[column of tap] = tap or `pad`.
template <class T>
void unfold_into(const T* src, const Windows& g, ColumnLayout lay, T pad, T* dst) {
  if (shifts(g)) {  // one contiguous copy per plane and kernel offset
    const std::size_t L = g.positions();
    for_planes(g.n * g.c, g.kh * g.kw * L, [&](std::size_t lo, std::size_t hi) {
      for (std::size_t img = lo; img < hi; ++img) {
        const T* plane = src + img * g.h * g.w;
        for (std::size_t ki = 0; ki < g.kh; ++ki) {
          for (std::size_t kj = 0; kj < g.kw; ++kj) {
            const std::size_t row = ((img % g.c) * g.kh + ki) * g.kw + kj;
            T* out = dst + (img / g.c) * lay.image_step + row * lay.row_step;
            const Shift s = shift(g, ki, kj);
            std::fill(out, out + s.lo, pad);
            if (s.hi > s.lo) {
              std::copy(plane + (std::ptrdiff_t(s.lo) + s.delta),
                        plane + (std::ptrdiff_t(s.hi) + s.delta), out + s.lo);
            }
            std::fill(out + s.hi, out + L, pad);
            for (std::size_t oy = s.rows.lo; oy < s.rows.hi; ++oy) {
              T* r = out + oy * g.ow;
              for (std::size_t ox = 0; ox < s.cols.lo; ++ox) r[ox] = pad;
              for (std::size_t ox = s.cols.hi; ox < g.ow; ++ox) r[ox] = pad;
            }
          }
        }
      }
    });
    return;
  }
  for_planes(g.n * g.c, g.kh * g.kw * g.positions(), [&](std::size_t lo, std::size_t hi) {
    for_each_tap(g, lay, lo, hi,
                 [&](std::size_t o, bool in, std::size_t i, Span cols, std::size_t off) {
                   T* row = dst + o;
                   if (!in) {
                     std::fill(row, row + g.ow, pad);
                     return;
                   }
                   std::fill(row, row + cols.lo, pad);
                   std::fill(row + cols.hi, row + g.ow, pad);
                   if (cols.lo == cols.hi) return;
                   const T* tap = src + i + (cols.lo * g.sw + off - g.pw);  // column cols.lo
                   if (g.sw == 1) {
                     std::copy(tap, tap + (cols.hi - cols.lo), row + cols.lo);
                   } else {
                     for (std::size_t ox = cols.lo; ox < cols.hi; ++ox, tap += g.sw) {
                       row[ox] = *tap;
                     }
                   }
                 });
  });
}

// col2im of the columns src (laid out as `lay`) into the zeroed image dst: image[tap] +=
// column, padding taps dropped.
template <class T>
void fold_into(const T* src, const Windows& g, ColumnLayout lay, T* dst) {
  for_planes(g.n * g.c, g.kh * g.kw * g.positions(), [&](std::size_t lo, std::size_t hi) {
    for_each_tap(g, lay, lo, hi,
                 [&](std::size_t o, bool in, std::size_t i, Span span, std::size_t off) {
                   if (!in || span.lo == span.hi) return;
                   const T* row = src + o + span.lo;
                   T* tap = dst + i + (span.lo * g.sw + off - g.pw);
                   const std::size_t count = span.hi - span.lo;
                   if (g.sw == 1) {
                     for (std::size_t j = 0; j < count; ++j) tap[j] += row[j];
                   } else {
                     for (std::size_t j = 0; j < count; ++j) tap[j * g.sw] += row[j];
                   }
                 });
  });
}

// fold_into for a same-size convolution (shifts(g)) whose columns are scratch: the entries of
// columns in padding are zeroed (they are gradients of padding, dropped anyway), so that each
// (plane, kernel offset) is one contiguous sum into the image.
template <class T>
void fold_shifted_into(T* src, const Windows& g, ColumnLayout lay, T* dst) {
  const std::size_t L = g.positions();
  for_planes(g.n * g.c, g.kh * g.kw * L, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t img = lo; img < hi; ++img) {
      T* plane = dst + img * g.h * g.w;
      for (std::size_t ki = 0; ki < g.kh; ++ki) {
        for (std::size_t kj = 0; kj < g.kw; ++kj) {
          const std::size_t row = ((img % g.c) * g.kh + ki) * g.kw + kj;
          T* in = src + (img / g.c) * lay.image_step + row * lay.row_step;
          const Shift s = shift(g, ki, kj);
          for (std::size_t oy = s.rows.lo; oy < s.rows.hi; ++oy) {
            T* r = in + oy * g.ow;
            for (std::size_t ox = 0; ox < s.cols.lo; ++ox) r[ox] = T(0);
            for (std::size_t ox = s.cols.hi; ox < g.ow; ++ox) r[ox] = T(0);
          }
          if (s.hi == s.lo) continue;
          T* to = plane + (std::ptrdiff_t(s.lo) + s.delta);
          const T* from = in + s.lo;
          for (std::size_t j = 0; j < s.hi - s.lo; ++j) to[j] += from[j];
        }
      }
    }
  });
}

template <class T>
Tensor<T> fold_windows(const Tensor<T>& cols, const Windows& g, Location loc);

// im2col: out[n, row, oy * ow + ox] = image tap or `pad`.
template <class T>
Tensor<T> unfold_windows(const Tensor<T>& x, const Windows& g, T pad, Location loc) {
  Array<T> out = Array<T>::from_shape({g.n, g.rows(), g.positions()});
  unfold_into(x.value().data(), g, batch_major(g), pad, out.data());
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
  fold_into(cols.value().data(), g, batch_major(g), out.data());
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

Dims dims_of(std::initializer_list<std::size_t> e) {
  Dims d;
  for (std::size_t v : e) d.push_back(static_cast<std::int64_t>(v));
  return d;
}

// y[n, o, l] = y2[o, n L + l]: a product over the whole batch back to the batch-major layout
// (with the bias added on the way), and its inverse with the bias's gradient summed on the way.
template <class T>
void channels_to_batch(const T* y2, const T* bias, std::size_t n, std::size_t o, std::size_t l,
                       T* y) {
  for_planes(n * o, l, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t p = lo; p < hi; ++p) {
      const T* from = y2 + ((p % o) * n + p / o) * l;
      const T b = bias != nullptr ? bias[p % o] : T(0);
      for (std::size_t i = 0; i < l; ++i) y[p * l + i] = from[i] + b;
    }
  });
}
template <class T>
void batch_to_channels(const T* y, std::size_t n, std::size_t o, std::size_t l, T* y2) {
  for_planes(n * o, l, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t p = lo; p < hi; ++p) {
      std::copy(y + p * l, y + (p + 1) * l, y2 + ((p % o) * n + p / o) * l);
    }
  });
}

// The batch of a convolution in chunks of whole images, each small enough that its columns,
// its product and the columns' gradient stay in a core's L2 cache (1 MiB and more on the x86
// servers of this decade) between the step that writes them and the one that reads them:
// unfold, product and copy out in the forward pass, copy in, products and fold in the backward.
struct Chunks {
  std::size_t n = 0, size = 1, count = 0;
  Chunks(const Windows& g, std::size_t out_c, std::size_t bytes_per_value) : n(g.n) {
    constexpr std::size_t kChunkBytes = std::size_t{512} << 10;
    const std::size_t per_image = (g.rows() + out_c) * g.positions() * bytes_per_value;
    size = std::clamp<std::size_t>(kChunkBytes / std::max<std::size_t>(per_image, 1), 1,
                                   std::max<std::size_t>(n, 1));
    count = (n + size - 1) / size;
  }
  std::size_t first(std::size_t q) const { return q * size; }
  std::size_t images(std::size_t q) const { return std::min(size, n - q * size); }
  // The windows of chunk q's images alone.
  Windows windows(const Windows& g, std::size_t q) const {
    Windows c = g;
    c.n = images(q);
    return c;
  }
};

// The products of one range of chunks. A profiler records the thread it was started on, so the
// products a worker runs are noted here and counted on the calling thread after the region.
template <class T>
struct ChunkProducts {
  bool note = false;  // a profiler records the caller, and this range runs on a worker
  std::vector<std::array<std::size_t, 5>> noted;
  void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a,
            std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    blas::gemm(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
    if (note) noted.push_back({std::size_t{ta}, std::size_t{tb}, m, n, k});
  }
};

// fn(part, first chunk, end chunk, products) over contiguous ranges of the chunks, one range
// per thread when there are chunks for every thread; the products and copies inside a range then
// run on its thread alone. With fewer chunks there is one range, and they split their work
// instead. Returns the number of ranges.
template <class T, class F>
std::size_t over_chunks(const Chunks& ch, F&& fn) {
  const auto threads = static_cast<std::size_t>(detail::pool_threads());
  const std::size_t parts = ch.count >= threads ? threads : 1;
  const bool profiling = profiler::detail::active != nullptr;
  std::vector<ChunkProducts<T>> products(parts);
  detail::parallel_parts(parts, [&](std::size_t p) {
    products[p].note = profiling && profiler::detail::active == nullptr;
    fn(p, ch.count * p / parts, ch.count * (p + 1) / parts, products[p]);
  });
  for (const auto& part : products) {
    for (const auto& [ta, tb, m, n, k] : part.noted) {
      profiler::detail::product(std::is_same_v<T, double>, ta != 0, tb != 0, m, n, k);
    }
  }
  return parts;
}

// conv2d on a checked 4-D input, as one op. Each chunk of images is unfolded channel-major,
// cols [C kh kw, n L] for its n images, so that each group is one product W_g [O/G, k] x cols_g
// [k, n L] over the chunk, and its derivative two: dW_g += dy_g cols_g^T and dcols_g = W_g^T
// dy_g, folded back into dx. The columns of every chunk are kept for the weight's gradient.
// Under create_graph the same derivative is written with unfold, fold and matmul, so that it is
// differentiable again.
template <class T>
Tensor<T> convolve(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                   const Windows& g, std::size_t G, Location loc) {
  const std::size_t out_c = weight.shape()[0];
  const std::size_t og = out_c / G;    // output channels per group
  const std::size_t k = g.rows() / G;  // contraction per group: C/G kh kw
  const std::size_t L = g.positions();
  const std::size_t image = g.c * g.h * g.w;
  const Chunks ch(g, out_c, sizeof(T));
  // Plain passes read the weight and the saved columns; create_graph reads x and the weight.
  // Without a weight gradient to come (inference, a frozen layer) each range of chunks unfolds
  // into one chunk's scratch instead of the whole batch's columns.
  const bool keep_cols = weight.requires_grad() && is_grad_enabled();
  std::shared_ptr<Array<T>> cols;
  if (keep_cols) cols = std::make_shared<Array<T>>(Array<T>::from_shape({g.rows(), g.n * L}));
  Array<T> out = Array<T>::from_shape({g.n, out_c, g.oh, g.ow});
  const T* xv = x.value().data();
  const T* w = weight.value().data();
  const T* b = bias.defined() ? bias.value().data() : nullptr;
  over_chunks<T>(ch, [&](std::size_t, std::size_t lo, std::size_t hi, ChunkProducts<T>& mm) {
    Array<T> y2 = Array<T>::from_shape({out_c, ch.size * L});
    Array<T> scratch;
    if (!keep_cols) scratch = Array<T>::from_shape({g.rows(), ch.size * L});
    for (std::size_t q = lo; q < hi; ++q) {
      const Windows gq = ch.windows(g, q);
      const std::size_t nl = gq.n * L;
      T* cq = keep_cols ? cols->data() + ch.first(q) * g.rows() * L : scratch.data();
      unfold_into(xv + ch.first(q) * image, gq, channel_major(gq), T(0), cq);
      for (std::size_t gi = 0; gi < G; ++gi) {
        mm.gemm(false, false, og, nl, k, w + gi * og * k, k, cq + gi * k * nl, nl, T(0),
                y2.data() + gi * og * nl, nl);
      }
      channels_to_batch(y2.data(), b, gq.n, out_c, L, out.data() + ch.first(q) * out_c * L);
    }
  });
  const bool has_b = bias.defined();
  std::vector<Tensor<T>> inputs{x, weight};
  if (has_b) inputs.push_back(bias);
  return record<T>(
      {"conv2d", loc}, std::move(out), inputs,
      [g, G, out_c, og, k, L, image, ch, cols, has_b, loc](const Tensor<T>& grad, Grads<T>& gr) {
        if (gr.create_graph()) {
          // conv2d, as ops: per group, dcols = W_g^T dy_g folded into dx, dW_g = sum over the
          // batch of dy_g cols_g^T, db = the sum of dy over all but the channels.
          const auto d = [](std::initializer_list<std::size_t> e) { return dims_of(e); };
          const Tensor<T> dy = reshape(grad, d({g.n, G, og, L}), loc);
          const Tensor<T> w3 = reshape(gr.in(1), d({G, og, k}), loc);
          if (gr.needs(0)) {
            const Tensor<T> dcols = matmul(transpose(w3, 1, 2, loc), dy, loc);  // [N, G, k, L]
            gr.to(0, fold_windows(reshape(dcols, d({g.n, G * k, L}), loc), g, loc));
          }
          if (gr.needs(1)) {
            const Tensor<T> c4 =
                reshape(unfold_windows(gr.in(0), g, T(0), loc), d({g.n, G, k, L}), loc);
            const Tensor<T> dw = sum(matmul(dy, transpose(c4, 2, 3, loc), loc), {0}, false, loc);
            const auto& ws = gr.shape(1);
            gr.to(1, reshape(dw, d({ws[0], ws[1], ws[2], ws[3]}), loc));
          }
          if (has_b && gr.needs(2)) gr.to(2, sum(grad, {0, 2, 3}, false, loc));
          return;
        }
        const bool need_x = gr.needs(0), need_w = gr.needs(1), need_b = has_b && gr.needs(2);
        const T* dy = grad.value().data();
        const T* wv = gr.value(1).data();
        const std::size_t wsize = out_c * k;
        // Per thread: its share of the weight's and the bias's gradients, added up after.
        const auto threads = static_cast<std::size_t>(detail::pool_threads());
        std::vector<T> dw_part(need_w ? threads * wsize : 0);
        std::vector<double> db_part(need_b ? threads * out_c : 0, 0.0);
        Array<T> dx;
        if (need_x) dx = Array<T>::from_shape({g.n, g.c, g.h, g.w});
        const std::size_t parts = over_chunks<T>(
            ch, [&](std::size_t p, std::size_t lo, std::size_t hi, ChunkProducts<T>& mm) {
              Array<T> dy2 = Array<T>::from_shape({out_c, ch.size * L});
              Array<T> dcols;
              if (need_x) dcols = Array<T>::from_shape({g.rows(), ch.size * L});
              for (std::size_t q = lo; q < hi; ++q) {
                const Windows gq = ch.windows(g, q);
                const std::size_t nl = gq.n * L;
                batch_to_channels(dy + ch.first(q) * out_c * L, gq.n, out_c, L, dy2.data());
                if (need_b) {
                  // One image's positions in T lanes, the images in double.
                  for (std::size_t o = 0; o < out_c; ++o) {
                    for (std::size_t i = 0; i < nl; i += L) {
                      db_part[p * out_c + o] += ops::simd::sum(dy2.data() + o * nl + i, L);
                    }
                  }
                }
                if (need_w) {
                  const T* cq = cols->data() + ch.first(q) * g.rows() * L;
                  for (std::size_t gi = 0; gi < G; ++gi) {
                    mm.gemm(false, true, og, k, nl, dy2.data() + gi * og * nl, nl, cq + gi * k * nl,
                            nl, q == lo ? T(0) : T(1), dw_part.data() + p * wsize + gi * og * k, k);
                  }
                }
                if (need_x) {
                  for (std::size_t gi = 0; gi < G; ++gi) {
                    mm.gemm(true, false, k, nl, og, wv + gi * og * k, k, dy2.data() + gi * og * nl,
                            nl, T(0), dcols.data() + gi * k * nl, nl);
                  }
                  T* dxq = dx.data() + ch.first(q) * image;
                  std::fill(dxq, dxq + gq.n * image, T(0));
                  if (shifts(gq)) {
                    fold_shifted_into(dcols.data(), gq, channel_major(gq), dxq);
                  } else {
                    fold_into(dcols.data(), gq, channel_major(gq), dxq);
                  }
                }
              }
            });
        if (need_b) {
          Array<T> db = Array<T>::from_shape({out_c});
          for (std::size_t o = 0; o < out_c; ++o) {
            double total = 0;
            for (std::size_t p = 0; p < parts; ++p) total += db_part[p * out_c + o];
            db.data()[o] = static_cast<T>(total);
          }
          gr.to(2, std::move(db));
        }
        if (need_w) {
          Array<T> dw = Array<T>::from_shape(gr.shape(1));
          std::copy(dw_part.begin(), dw_part.begin() + wsize, dw.data());
          for (std::size_t p = 1; p < parts; ++p) {
            for (std::size_t i = 0; i < wsize; ++i) dw.data()[i] += dw_part[p * wsize + i];
          }
          gr.to(1, std::move(dw));
        }
        if (need_x) gr.to(0, std::move(dx));
      },
      Saves::in({0, 1}));
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

  return unbatched_like(convolve(x, weight, bias, g, G, loc), input, loc);
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
  for_planes(planes, per, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) {
      for (std::size_t k = 0; k < per; ++k) o[i * plane + p[i * per + k]] += g[i * per + k];
    }
  });
  const Shape grad_shape = grad.shape();
  return record<T>(
      {"max_pool2d_backward", loc}, std::move(out), {grad},
      [picks, grad_shape, loc](const Tensor<T>& gg, Grads<T>& gr) {
        if (gr.needs(0)) gr.to(0, gather_picks(gg, picks, grad_shape, loc));
      },
      Saves::none());
}

// max_pool2d's node: out holds x[plane, pick] for every output.
template <class T>
Tensor<T> record_picked(Array<T>&& out, const Tensor<T>& x, const Picks& picks, Location loc) {
  const Shape in_shape = x.shape();
  return record<T>(
      {"max_pool2d", loc}, std::move(out), {x},
      [picks, in_shape, loc](const Tensor<T>& grad, Grads<T>& gr) {
        // max_pool2d: grad scattered to the element each window picked
        if (gr.needs(0)) gr.to(0, scatter_picks(grad, picks, in_shape, loc));
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
  for_planes(planes, per, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) {
      for (std::size_t k = 0; k < per; ++k) o[i * per + k] = src[i * plane + p[i * per + k]];
    }
  });
  return record_picked(std::move(out), x, picks, loc);
}

// window_max for the usual 2 x 2 windows at stride 2. Rows of 14 or 28 are shorter than two
// vectors, so each plane is swept whole: at every element j the window whose top left is j is
// decided (the pair of each row first, then the rows, each choice a select, so that ties go to
// the earlier element in the window's row-major order and the last NaN wins), then the windows
// at even rows and columns are picked out. Four times the comparisons, all in vector lanes.
template <class T>
void window_max_2x2(const Windows& g, const T* src, std::size_t lo, std::size_t hi, T* value,
                    std::uint32_t* pick) {
  using B = ops::simd::Batch<T>;
  constexpr std::size_t L = B::size;
  const std::size_t plane = g.h * g.w, w = g.w;
  const std::size_t J = (2 * g.oh - 2) * w + 2 * g.ow - 1;  // windows swept per plane
  // at: the winner's place in the window, row * 2 + column (0 to 3, exact in any T; an offset
  // w + 1 would round in float once w reaches 2^24)
  std::vector<T> best(J), at(J);
  const B zero(T(0)), one(T(1)), two(T(2));
  for (std::size_t i = lo; i < hi; ++i) {
    const T* x = src + i * plane;
    std::size_t j = 0;
    for (; j + L <= J; j += L) {
      const B a = B::load_unaligned(x + j), b = B::load_unaligned(x + j + 1);
      const B c = B::load_unaligned(x + j + w), d = B::load_unaligned(x + j + w + 1);
      const auto tb = (b > a) || xsimd::isnan(b);
      const B ab = xsimd::select(tb, b, a);
      const auto td = (d > c) || xsimd::isnan(d);
      const B cd = xsimd::select(td, d, c);
      const auto tr = (cd > ab) || xsimd::isnan(cd);
      xsimd::select(tr, cd, ab).store_unaligned(best.data() + j);
      xsimd::select(tr, xsimd::select(td, one, zero) + two, xsimd::select(tb, one, zero))
          .store_unaligned(at.data() + j);
    }
    for (; j < J; ++j) {
      const T a = x[j], b = x[j + 1], c = x[j + w], d = x[j + w + 1];
      const bool tb = b > a || b != b;
      const T ab = tb ? b : a;
      const bool td = d > c || d != d;
      const T cd = td ? d : c;
      const bool tr = cd > ab || cd != cd;
      best[j] = tr ? cd : ab;
      at[j] = tr ? (td ? T(3) : T(2)) : (tb ? T(1) : T(0));
    }
    T* v = value + i * g.positions();
    std::uint32_t* p = pick + i * g.positions();
    for (std::size_t oy = 0; oy < g.oh; ++oy) {
      for (std::size_t ox = 0; ox < g.ow; ++ox) {
        const std::size_t k = 2 * oy * w + 2 * ox;
        v[oy * g.ow + ox] = best[k];
        const auto place = static_cast<std::size_t>(at[k]);
        p[oy * g.ow + ox] = static_cast<std::uint32_t>(k + (place >> 1) * w + (place & 1));
      }
    }
  }
}

// The window maxima of planes [lo, hi) when no window reaches into padding: each output in one
// visit of its window, value and pick together. The first largest wins, or the last NaN: a
// later tap takes over only when strictly larger or NaN. KH, KW > 0 fix the kernel's size at
// compile time (the usual 2 x 2), 0 reads it from g.
template <std::size_t KH, std::size_t KW, class T>
void window_max(const Windows& g, const T* src, std::size_t lo, std::size_t hi, T* value,
                std::uint32_t* pick) {
  const std::size_t kh = KH > 0 ? KH : g.kh, kw = KW > 0 ? KW : g.kw;
  const std::size_t plane = g.h * g.w;
  for (std::size_t i = lo; i < hi; ++i) {
    const T* image = src + i * plane;
    std::size_t o = i * g.positions();
    for (std::size_t oy = 0; oy < g.oh; ++oy) {
      for (std::size_t ox = 0; ox < g.ow; ++ox, ++o) {
        const std::size_t first = oy * g.sh * g.w + ox * g.sw;
        T best = image[first];
        std::size_t at = first;
        for (std::size_t ki = 0; ki < kh; ++ki) {
          for (std::size_t kj = 0; kj < kw; ++kj) {
            const std::size_t t = first + ki * g.dh * g.w + kj * g.dw;
            const T v = image[t];
            const bool take = v > best || v != v;
            best = take ? v : best;
            at = take ? t : at;
          }
        }
        value[o] = best;
        pick[o] = static_cast<std::uint32_t>(at);
      }
    }
  }
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
  const auto output = [&](Tensor<T> y) {
    return unbatched_like(reshape(y, dims_of({s[0], s[1], g.oh, g.ow}), loc), input, loc);
  };
  if (g.ph == 0 && g.pw == 0) {  // every window inside the image: one visit per output
    Array<T> value = Array<T>::from_shape({g.n, 1, g.oh, g.ow});
    for_planes(g.n, g.positions() * g.kh * g.kw, [&](std::size_t lo, std::size_t hi) {
      if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1) {
        window_max_2x2(g, src, lo, hi, value.data(), pick);
      } else if (g.kh == 2 && g.kw == 2) {
        window_max<2, 2>(g, src, lo, hi, value.data(), pick);
      } else {
        window_max<0, 0>(g, src, lo, hi, value.data(), pick);
      }
    });
    return output(record_picked(std::move(value), planes, Picks(std::move(picks)), loc));
  }
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
  return output(gather_picks(planes, Picks(std::move(picks)), {g.n, 1, g.oh, g.ow}, loc));
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
