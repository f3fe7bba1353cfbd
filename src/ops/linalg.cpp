// Matrix products through BLAS gemm, and transposes.

#include "common.hpp"

namespace xgrad {

namespace {

// Every product goes through the one dispatcher (src/core/blas.cpp), which also takes empty
// extents and tiny products.
template <class T>
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a,
          std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  blas::gemm(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
}

// Rows of an input whose last dim is the feature dim: the product of the leading extents.
inline std::size_t ops_rows(const Shape& s) {
  std::size_t n = 1;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) n *= s[i];
  return n;
}

[[noreturn]] void bad_shapes(const char* why, const Shape& a, const Shape& b) {
  throw ShapeError(std::string("xgrad::matmul: shapes ") + shape_str(a) + " and " + shape_str(b) +
                   " " + why);
}

// [B?,M,K] x [B?,K,N]: either operand may lack the batch dim, then it is shared by every batch.
template <class T>
Tensor<T> batched_matmul(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const auto& sa = a.value().shape();
  const auto& sb = b.value().shape();
  const bool a3 = sa.size() == 3;
  const bool b3 = sb.size() == 3;
  const std::size_t batch = a3 ? sa[0] : (b3 ? sb[0] : 1);
  if (a3 && b3 && sa[0] != sb[0]) bad_shapes("have different batch sizes", a.shape(), b.shape());
  const std::size_t m = sa[sa.size() - 2];
  const std::size_t k = sa[sa.size() - 1];
  const std::size_t n = sb[sb.size() - 1];
  if (sb[sb.size() - 2] != k) bad_shapes("do not chain", a.shape(), b.shape());

  using Extents = typename Array<T>::shape_type;
  Array<T> out = Array<T>::from_shape((a3 || b3) ? Extents{batch, m, n} : Extents{m, n});
  const std::size_t sa_step = a3 ? m * k : 0;
  const std::size_t sb_step = b3 ? k * n : 0;
  if (!b3) {
    // A shared right operand: the batch folds into the rows of one product [B*M,K] x [K,N].
    gemm<T>(false, false, batch * m, n, k, a.value().data(), k, b.value().data(), n, T(0),
            out.data(), n);
  } else {
    for (std::size_t i = 0; i < batch; ++i) {
      gemm<T>(false, false, m, n, k, a.value().data() + i * sa_step, k,
              b.value().data() + i * sb_step, n, T(0), out.data() + i * m * n, n);
    }
  }
  // The backward captures extents only (no shapes): a small capture keeps the node light.
  return record<T>({"matmul", loc}, std::move(out), {a, b}, [=](const Array<T>& grad, Grads<T>& g) {
    const T* dc = grad.data();
    // matmul: grad_a = grad @ b^T, grad_b = a^T @ grad (transpose flags, no
    // materialised transpose; a shared operand accumulates with beta = 1)
    if (g.needs(0)) {
      Array<T> da = Array<T>::from_shape(g.shape(0));
      const T* bp = g.in(1).data();
      if (!b3) {
        gemm<T>(false, true, batch * m, k, n, dc, n, bp, n, T(0), da.data(), k);
      } else {
        for (std::size_t i = 0; i < batch; ++i) {
          gemm<T>(false, true, m, k, n, dc + i * m * n, n, bp + i * sb_step, n,
                  (a3 || i == 0) ? T(0) : T(1), da.data() + i * sa_step, k);
        }
      }
      if (batch == 0) da.fill(T(0));
      g.to(0, std::move(da));
    }
    if (g.needs(1)) {
      Array<T> db = Array<T>::from_shape(g.shape(1));
      const T* ap = g.in(0).data();
      if (!b3) {
        gemm<T>(true, false, k, n, batch * m, ap, k, dc, n, T(0), db.data(), n);
      } else {
        for (std::size_t i = 0; i < batch; ++i) {
          gemm<T>(true, false, k, n, m, ap + i * sa_step, k, dc + i * m * n, n, T(0),
                  db.data() + i * sb_step, n);
        }
      }
      g.to(1, std::move(db));
    }
  });
}

}  // namespace

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const std::size_t ra = a.dim();
  const std::size_t rb = b.dim();
  if (ra == 0 || rb == 0 || ra > 3 || rb > 3) {
    bad_shapes("are not supported (1-D, 2-D or 3-D operands)", a.shape(), b.shape());
  }
  // A vector operand becomes a one-row (left) or one-column (right) matrix, as in NumPy, and the
  // added dim is removed from the result.
  if (ra == 1 || rb == 1) {
    if (ra == 1 && rb == 1 && a.numel() != b.numel())
      bad_shapes("do not chain", a.shape(), b.shape());
    const Tensor<T> a2 =
        ra == 1 ? reshape(a, Dims{1, static_cast<std::int64_t>(a.numel())}, loc) : a;
    const Tensor<T> b2 =
        rb == 1 ? reshape(b, Dims{static_cast<std::int64_t>(b.numel()), 1}, loc) : b;
    if (a2.size(-1) != b2.size(-2)) bad_shapes("do not chain", a.shape(), b.shape());
    Tensor<T> out = batched_matmul(a2, b2, loc);
    if (ra == 1 && rb == 1) return reshape(out, Dims{}, loc);
    return squeeze(out, rb == 1 ? -1 : -2, loc);
  }
  return batched_matmul(a, b, loc);
}

template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias, Location loc) {
  const Shape sx = x.shape();
  const Shape sw = weight.shape();
  const bool has_bias = bias.defined();
  auto fail = [&](const std::string& why) {
    throw ShapeError("xgrad::linear: input " + shape_str(sx) + ", weight " + shape_str(sw) +
                     (has_bias ? ", bias " + shape_str(bias.shape()) : std::string()) + ": " + why);
  };
  if (sw.size() != 2) fail("weight must be 2-D [out, in]");
  if (sx.empty()) fail("input must have at least one dim");
  const std::size_t in = sw[1];
  const std::size_t out_f = sw[0];
  if (sx.back() != in) fail("the input's last dim must equal the weight's in_features");
  if (has_bias && !(bias.dim() == 1 && bias.size(0) == out_f)) fail("bias must be [out]");
  const std::size_t n = ops_rows(sx);

  Shape so = sx;
  so.back() = out_f;
  Array<T> out = Array<T>::from_shape(so);
  T beta = T(0);
  if (has_bias) {
    // Preload every row with the bias so that gemm adds the product onto it (beta = 1).
    const T* b = bias.value().data();
    for (std::size_t i = 0; i < n; ++i) std::copy(b, b + out_f, out.data() + i * out_f);
    beta = T(1);
  }
  gemm<T>(false, true, n, out_f, in, x.value().data(), in, weight.value().data(), in, beta,
          out.data(), out_f);
  std::vector<Tensor<T>> inputs{x, weight};
  if (has_bias) inputs.push_back(bias);
  return record<T>(
      {"linear", loc}, std::move(out), std::move(inputs), [=](const Array<T>& grad, Grads<T>& g) {
        const T* dy = grad.data();
        // linear: grad_x = grad @ W, grad_W = grad^T @ x, grad_b = sum(grad, rows)
        if (g.needs(0)) {
          Array<T> dx = Array<T>::from_shape(g.shape(0));
          gemm<T>(false, false, n, in, out_f, dy, out_f, g.in(1).data(), in, T(0), dx.data(), in);
          g.to(0, std::move(dx));
        }
        if (g.needs(1)) {
          Array<T> dw = Array<T>::from_shape(g.shape(1));
          gemm<T>(true, false, out_f, in, n, dy, out_f, g.in(0).data(), in, T(0), dw.data(), in);
          g.to(1, std::move(dw));
        }
        if (has_bias && g.needs(2)) {
          Array<T> db(Shape{out_f}, T(0));
          T* acc = db.data();
          for (std::size_t i = 0; i < n; ++i) {
            const T* row = dy + i * out_f;
            for (std::size_t j = 0; j < out_f; ++j) acc[j] += row[j];
          }
          g.to(2, std::move(db));
        }
      });
}

template <class T>
Tensor<T> transpose(const Tensor<T>& a, int dim0, int dim1, Location loc) {
  const Shape s = a.shape();
  const std::size_t d0 = ops::normalize_dim("transpose", dim0, s.size(), s);
  const std::size_t d1 = ops::normalize_dim("transpose", dim1, s.size(), s);
  std::vector<std::size_t> perm(s.size());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::swap(perm[d0], perm[d1]);
  return record<T>({"transpose", loc}, Array<T>(xt::transpose(a.value(), perm)), {a},
                   [perm](const Array<T>& grad, Grads<T>& g) {
                     g.to(0, xt::transpose(grad, perm));  // transpose: grad transposed back
                   });
}

#define XGRAD_INSTANTIATE_LINALG(T)                                           \
  template Tensor<T> matmul<T>(const Tensor<T>&, const Tensor<T>&, Location); \
  template Tensor<T> transpose<T>(const Tensor<T>&, int, int, Location);      \
  template Tensor<T> linear<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Location);

XGRAD_INSTANTIATE_LINALG(float)
XGRAD_INSTANTIATE_LINALG(double)

}  // namespace xgrad
