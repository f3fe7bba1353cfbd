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

// Saves of a two-operand product: each operand is read only for the other one's gradient, so it
// is kept only when that other operand can receive one.
template <class T>
Saves product_saves(const Tensor<T>& a, const Tensor<T>& b) {
  std::uint32_t bits = 0;
  if (b.requires_grad()) bits |= 1u;  // a is read for b's gradient
  if (a.requires_grad()) bits |= 2u;  // b is read for a's gradient
  return Saves{bits, false};
}

// The internal product behind matmul and the derivatives of matmul, linear and itself:
//   product(a, b, ta, tb) = op(a) @ op(b), op(x) = x^T (last two dims) when its flag is set,
// on 2-D or 3-D operands: [B?,M,K] x [B?,K,N] in op() terms, where an operand without the batch
// dim is shared by every batch. With sum_batch both operands are 3-D and the result is the 2-D
// sum over the batch of op(a[i]) @ op(b[i]) (the gradient of a shared operand).
// Extents are not checked: matmul checks them, derivatives pass consistent ones.
// Its derivative is product again with flags (C = op(A) op(B), G = dC):
//   (f,f): dA = product(G,B,f,t), dB = product(A,G,t,f)
//   (f,t): dA = product(G,B,f,f), dB = product(G,A,t,f)
//   (t,f): dA = product(B,G,f,t), dB = product(A,G,f,f)
//   (t,t): dA = product(B,G,t,t), dB = product(G,A,t,t)
// An operand that is 2-D under a 3-D result gets the batch sum of those (sum_batch), so every
// gradient has its input's shape and at most two gemm passes run, no transpose materialised.
template <class T>
Tensor<T> product(const Tensor<T>& a, const Tensor<T>& b, bool ta, bool tb, bool sum_batch,
                  OpName op) {
  const Array<T>& av = a.value();
  const Array<T>& bv = b.value();
  const auto& sa = av.shape();
  const auto& sb = bv.shape();
  const bool a3 = sa.size() == 3;
  const bool b3 = sb.size() == 3;
  const std::size_t batch = a3 ? sa[0] : (b3 ? sb[0] : 1);
  const std::size_t ar = sa[sa.size() - 2], ac = sa[sa.size() - 1];
  const std::size_t br = sb[sb.size() - 2], bc = sb[sb.size() - 1];
  const std::size_t m = ta ? ac : ar;
  const std::size_t k = ta ? ar : ac;
  const std::size_t n = tb ? br : bc;
  const std::size_t lda = ac;
  const std::size_t ldb = bc;

  using Extents = typename Array<T>::shape_type;
  const bool out3 = (a3 || b3) && !sum_batch;
  Array<T> out = Array<T>::from_shape(out3 ? Extents{batch, m, n} : Extents{m, n});
  const std::size_t sa_step = a3 ? ar * ac : 0;
  const std::size_t sb_step = b3 ? br * bc : 0;
  const T* ap = av.data();
  const T* bp = bv.data();
  T* cp = out.data();
  if (sum_batch) {
    if (ta && !tb) {
      // sum_i A_i^T B_i: the batch folds into the shared contraction rows, one product
      // [B*K,M]^T x [B*K,N].
      gemm<T>(true, false, m, n, batch * k, ap, lda, bp, ldb, T(0), cp, n);
    } else {
      for (std::size_t i = 0; i < batch; ++i) {
        gemm<T>(ta, tb, m, n, k, ap + i * sa_step, lda, bp + i * sb_step, ldb, i == 0 ? T(0) : T(1),
                cp, n);
      }
      if (batch == 0) out.fill(T(0));
    }
  } else if (!b3 && !ta) {
    // A shared right operand (or none batched): the batch folds into the rows of one product
    // [B*M,K] x [K,N].
    gemm<T>(false, tb, batch * m, n, k, ap, lda, bp, ldb, T(0), cp, n);
  } else {
    for (std::size_t i = 0; i < batch; ++i) {
      gemm<T>(ta, tb, m, n, k, ap + i * sa_step, lda, bp + i * sb_step, ldb, T(0), cp + i * m * n,
              n);
    }
  }
  const Location loc = op.where;
  // The derivative captures flags only: a small capture keeps the node light.
  return record<T>(
      op, std::move(out), {a, b},
      [=](const Tensor<T>& grad, Grads<T>& g) {
        // matmul: grad_a = grad @ op(b)^T, grad_b = op(a)^T @ grad, each written as a product
        // with flags (table above); an operand shared across the batch sums over it.
        if (g.needs(0)) {
          const bool s = !a3 && out3;
          const Tensor<T> bt = g.in(1);
          g.to(0, !ta ? (!tb ? product(grad, bt, false, true, s, {"matmul", loc})
                             : product(grad, bt, false, false, s, {"matmul", loc}))
                      : (!tb ? product(bt, grad, false, true, s, {"matmul", loc})
                             : product(bt, grad, true, true, s, {"matmul", loc})));
        }
        if (g.needs(1)) {
          const bool s = !b3 && out3;
          const Tensor<T> at = g.in(0);
          g.to(1, !tb ? (!ta ? product(at, grad, true, false, s, {"matmul", loc})
                             : product(at, grad, false, false, s, {"matmul", loc}))
                      : (!ta ? product(grad, at, true, false, s, {"matmul", loc})
                             : product(grad, at, true, true, s, {"matmul", loc})));
        }
      },
      product_saves(a, b));
}

}  // namespace

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b, Location loc) {
  const ops::Entry op{"matmul", loc};
  const std::size_t ra = a.dim();
  const std::size_t rb = b.dim();
  if (ra == 0 || rb == 0) bad_shapes("are not supported (0-D operands)", a.shape(), b.shape());
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
    Tensor<T> out = matmul(a2, b2, loc);
    if (ra == 1 && rb == 1) return reshape(out, Dims{}, loc);
    return squeeze(out, rb == 1 ? -1 : -2, loc);
  }
  // [B?,M,K] x [B?,K,N]: either operand may lack the batch dim, then it is shared by every batch.
  {
    // The extents in place: the common case below copies no shape.
    const auto& ea = a.value().shape();
    const auto& eb = b.value().shape();
    if (eb[rb - 2] != ea[ra - 1]) bad_shapes("do not chain", a.shape(), b.shape());
    if (ra <= 3 && rb <= 3 && !(ra == 3 && rb == 3 && ea[0] != eb[0])) {
      return product(a, b, false, false, false, op);
    }
  }
  const Shape sa = a.shape();
  const Shape sb = b.shape();
  // Batch dims of any rank broadcast, then fold into the one batch dim that product() takes. An
  // operand whose batch holds one matrix stays 2-D, shared by every batch without a copy.
  const Shape batch_a(sa.begin(), sa.end() - 2);
  const Shape batch_b(sb.begin(), sb.end() - 2);
  const std::size_t nb = std::max(batch_a.size(), batch_b.size());
  Shape batch(nb);
  std::int64_t batches = 1;
  for (std::size_t i = 0; i < nb; ++i) {
    const std::size_t da = i < nb - batch_a.size() ? 1 : batch_a[i - (nb - batch_a.size())];
    const std::size_t db = i < nb - batch_b.size() ? 1 : batch_b[i - (nb - batch_b.size())];
    if (da != db && da != 1 && db != 1) bad_shapes("have batch dims that do not broadcast", sa, sb);
    batch[i] = da == 1 ? db : da;
    batches *= static_cast<std::int64_t>(batch[i]);
  }
  const auto stacked = [&](const Tensor<T>& t, const Shape& own, std::size_t rows,
                           std::size_t cols) {
    const auto r = static_cast<std::int64_t>(rows);
    const auto c = static_cast<std::int64_t>(cols);
    std::size_t own_count = 1;
    for (std::size_t e : own) own_count *= e;
    if (own_count == 1) return reshape(t, Dims{r, c}, loc);
    Shape full = batch;
    full.push_back(rows);
    full.push_back(cols);
    const Tensor<T> spread = full == t.shape() ? t : broadcast_to(t, full, loc);
    return reshape(spread, Dims{batches, r, c}, loc);
  };
  const Tensor<T> a3 = stacked(a, batch_a, sa[ra - 2], sa[ra - 1]);
  const Tensor<T> b3 = stacked(b, batch_b, sb[rb - 2], sb[rb - 1]);
  Dims out_shape(batch.begin(), batch.end());
  out_shape.push_back(static_cast<std::int64_t>(sa[ra - 2]));
  out_shape.push_back(static_cast<std::int64_t>(sb[rb - 1]));
  return reshape(product(a3, b3, false, false, false, op), out_shape, loc);
}

template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias, Location loc) {
  const ops::Entry op{"linear", loc};
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
  // x of any rank is seen as its 2-D [n, in] form in the derivative (a reshape only when it is
  // not 2-D already).
  const bool flat = sx.size() == 2;
  return record<T>(
      op, std::move(out), inputs,
      [=](const Tensor<T>& grad, Grads<T>& g) {
        // linear: grad_x = grad @ W, grad_W = grad^T @ x, grad_b = sum(grad, rows)
        const auto rows = static_cast<std::int64_t>(n);
        const Tensor<T> g2 =
            flat ? grad : reshape(grad, Dims{rows, static_cast<std::int64_t>(out_f)}, loc);
        if (g.needs(0)) {
          const Tensor<T> dx = product(g2, g.in(1), false, false, false, {"matmul", loc});
          const auto& s0 = g.shape(0);
          Dims d0;
          for (std::size_t e : s0) d0.push_back(static_cast<std::int64_t>(e));
          g.to(0, flat ? dx : reshape(dx, d0, loc));
        }
        if (g.needs(1)) {
          const Tensor<T> x0 = g.in(0);
          const Tensor<T> x2 =
              flat ? x0 : reshape(x0, Dims{rows, static_cast<std::int64_t>(in)}, loc);
          g.to(1, product(g2, x2, true, false, false, {"matmul", loc}));
        }
        if (has_bias && g.needs(2)) g.to(2, sum(g2, {0}, false, loc));
      },
      product_saves(x, weight));
}

template <class T>
Tensor<T> transpose(const Tensor<T>& a, int dim0, int dim1, Location loc) {
  const ops::Entry op{"transpose", loc};
  const Shape s = a.shape();
  const std::size_t d0 = ops::normalize_dim("transpose", dim0, s.size(), s);
  const std::size_t d1 = ops::normalize_dim("transpose", dim1, s.size(), s);
  std::vector<std::size_t> perm(s.size());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::swap(perm[d0], perm[d1]);
  const int i0 = static_cast<int>(d0);
  const int i1 = static_cast<int>(d1);
  return record<T>(
      op, Array<T>(xt::transpose(a.value(), perm)), {a},
      [i0, i1, loc](const Tensor<T>& grad, Grads<T>& g) {
        g.to(0, transpose(grad, i0, i1, loc));  // transpose: grad transposed back
      },
      Saves::none());
}

#define XGRAD_INSTANTIATE_LINALG(T)                                           \
  template Tensor<T> matmul<T>(const Tensor<T>&, const Tensor<T>&, Location); \
  template Tensor<T> transpose<T>(const Tensor<T>&, int, int, Location);      \
  template Tensor<T> linear<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Location);

XGRAD_INSTANTIATE_LINALG(float)
XGRAD_INSTANTIATE_LINALG(double)

}  // namespace xgrad
