// Multi-head scaled dot-product attention as one op. Written with ops, each head's scores and
// mixture cost two products of 16 x 16 blocks, and around them the graph holds slices of the
// packed projection, head-splitting permutes, a mask fill and a softmax, each a pass over memory
// that costs more than the arithmetic. Here every head reads its columns of q, k and v in place
// (the packed projection included) and writes its columns of the result; only the attention
// weights are kept for the derivative. Under create_graph the derivative is the same formula
// written with ops, so it is differentiable again.

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <xgrad/autograd.hpp>
#include <xgrad/blas.hpp>

#include "common.hpp"
#include "core/parallel.hpp"
#include "simd.hpp"

namespace xgrad {

namespace {

// Where q, k and v are: rows of `stride` values (E, or 3E for a packed projection), the block of
// head h starting at column offset + h * d.
struct Operand {
  std::size_t input;   // position among the op's inputs
  std::size_t stride;  // values per row
  std::size_t offset;  // first column
};

struct Geometry {
  std::size_t n, heads, t, s, d, e;
  Operand q, k, v;
};

// fn(lo, hi) for ranges of the (batch, head) pairs, over xgrad's threads when each thread gets
// 64k multiply-adds of the products or more, a few microseconds.
template <class F>
void for_pairs(const Geometry& g, F&& fn) {
  const std::size_t work = std::max<std::size_t>(1, g.t * g.s * g.d);
  const std::size_t grain = std::max<std::size_t>(1, (std::size_t{1} << 15) / work);
  detail::parallel_for(g.n * g.heads, grain, 1, fn);
}

// The heads' products, C = alpha op(A) B with B's rows contiguous (stride ldb), op(A) = A^T when
// `ta`, for the blocks of one head (a few dozen rows and columns). One call of the BLAS costs more
// than such a block's arithmetic, and calls from two threads at once contend inside OpenBLAS;
// here each row of C is a sum of rows of B scaled by entries of A, kept in vector registers two
// vectors wide. Blocks of long sequences or wide heads go to the BLAS, whose cache blocking they
// need.
template <class T>
void head_product(bool ta, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
                  std::size_t lda, const T* b, std::size_t ldb, T* c, std::size_t ldc) {
  if (m * n * k >= std::size_t{64 * 64 * 64}) {
    blas::gemm(ta, false, m, n, k, alpha, a, lda, b, ldb, T(0), c, ldc);
    return;
  }
  using B = ops::simd::Batch<T>;
  constexpr std::size_t L = B::size;
  const auto at = [&](std::size_t i, std::size_t p) {
    return ta ? a[p * lda + i] : a[i * lda + p];
  };
  std::size_t j = 0;
  for (; j + 2 * L <= n; j += 2 * L) {
    for (std::size_t i = 0; i < m; ++i) {
      B s0(T(0)), s1(T(0));
      for (std::size_t p = 0; p < k; ++p) {
        const B x(at(i, p));
        s0 = xsimd::fma(x, B::load_unaligned(b + p * ldb + j), s0);
        s1 = xsimd::fma(x, B::load_unaligned(b + p * ldb + j + L), s1);
      }
      (s0 * B(alpha)).store_unaligned(c + i * ldc + j);
      (s1 * B(alpha)).store_unaligned(c + i * ldc + j + L);
    }
  }
  for (; j + L <= n; j += L) {
    for (std::size_t i = 0; i < m; ++i) {
      B s0(T(0));
      for (std::size_t p = 0; p < k; ++p) {
        s0 = xsimd::fma(B(at(i, p)), B::load_unaligned(b + p * ldb + j), s0);
      }
      (s0 * B(alpha)).store_unaligned(c + i * ldc + j);
    }
  }
  for (; j < n; ++j) {
    for (std::size_t i = 0; i < m; ++i) {
      T sum = T(0);
      for (std::size_t p = 0; p < k; ++p) sum += at(i, p) * b[p * ldb + j];
      c[i * ldc + j] = alpha * sum;
    }
  }
}

// The rows x cols block at x (row stride ld) transposed into out (cols x rows, contiguous).
template <class T>
void transpose_block(const T* x, std::size_t ld, std::size_t rows, std::size_t cols, T* out) {
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t c = 0; c < cols; ++c) out[c * rows + r] = x[r * ld + c];
  }
}

// Row-wise softmax of the t x s scores in place, as softmax() computes it: shifted by the
// largest finite score of the row (0 when there is none), so that a row masked whole gives
// 0 / 0 = NaN, as in PyTorch.
template <class T>
void softmax_rows(T* scores, std::size_t t, std::size_t s) {
  for (std::size_t i = 0; i < t; ++i) {
    T* row = scores + i * s;
    T top = -std::numeric_limits<T>::infinity();
    for (std::size_t j = 0; j < s; ++j) {
      if (std::isfinite(row[j])) top = std::max(top, row[j]);
    }
    if (!std::isfinite(top)) top = T(0);
    ops::simd::map_range(row, row, s, [top](const auto& x) { return xsimd::exp(x - top); });
    const T total = ops::simd::sum(row, s);
    for (std::size_t j = 0; j < s; ++j) row[j] /= total;
  }
}

template <class T>
Tensor<T> attention_op(const ops::Entry& op, const std::vector<Tensor<T>>& inputs,
                       const Geometry& geo, const Tensor<T>& attn_mask, bool is_causal,
                       Location loc) {
  const Geometry g = geo;
  const T scale = T(1) / std::sqrt(static_cast<T>(g.d));
  const T minus_inf = -std::numeric_limits<T>::infinity();
  // The mask as [N, heads, T, S] values (nonzero: not attended to).
  std::shared_ptr<const Array<T>> mask;
  if (attn_mask.defined()) {
    const Shape full{g.n, g.heads, g.t, g.s};
    const Shape b = ops::broadcast_shapes("multi_head_attention", attn_mask.shape(), full);
    if (b != full) {
      throw ShapeError("xgrad::multi_head_attention: attn_mask " + shape_str(attn_mask.shape()) +
                       " does not broadcast to [N, heads, T, S] = " + shape_str(full));
    }
    mask = std::make_shared<const Array<T>>(xt::broadcast(attn_mask.value(), full));
  }
  const std::size_t block = g.t * g.s;
  auto weights = std::make_shared<Array<T>>(Array<T>::from_shape({g.n, g.heads, g.t, g.s}));
  Array<T> out = Array<T>::from_shape({g.n, g.t, g.e});
  {
    const T* qp = inputs[g.q.input].value().data();
    const T* kp = inputs[g.k.input].value().data();
    const T* vp = inputs[g.v.input].value().data();
    T* wp = weights->data();
    T* op_ = out.data();
    const T* mp = mask ? mask->data() : nullptr;
    for_pairs(g, [&](std::size_t lo, std::size_t hi) {
      std::vector<T> kt(g.d * g.s);
      for (std::size_t p = lo; p < hi; ++p) {
        const std::size_t b = p / g.heads, h = p % g.heads;
        const T* q = qp + b * g.t * g.q.stride + g.q.offset + h * g.d;
        const T* k = kp + b * g.s * g.k.stride + g.k.offset + h * g.d;
        const T* v = vp + b * g.s * g.v.stride + g.v.offset + h * g.d;
        T* w = wp + p * block;
        transpose_block(k, g.k.stride, g.s, g.d, kt.data());
        head_product(false, g.t, g.s, g.d, scale, q, g.q.stride, kt.data(), g.s, w, g.s);
        if (mp != nullptr) {
          const T* m = mp + p * block;
          for (std::size_t i = 0; i < block; ++i) {
            if (m[i] != T(0)) w[i] = minus_inf;
          }
        }
        if (is_causal) {
          for (std::size_t i = 0; i < g.t; ++i) {
            std::fill(w + i * g.s + i + 1, w + (i + 1) * g.s, minus_inf);
          }
        }
        softmax_rows(w, g.t, g.s);
        head_product(false, g.t, g.d, g.s, T(1), w, g.s, v, g.v.stride,
                     op_ + b * g.t * g.e + h * g.d, g.e);
      }
    });
  }

  return record<T>(
      op, std::move(out), inputs,
      [=](const Tensor<T>& grad, Grads<T>& gr) {
        const std::size_t count = gr.size();
        bool any = false;
        for (std::size_t i = 0; i < count; ++i) any = any || gr.needs(i);
        if (!any) return;
        if (gr.create_graph()) {
          // attention, as ops, with P = softmax(scale q k^T, masked) recomputed from q and k:
          // dv = P^T grad, dP = grad v^T, dS = P (dP - sum(dP P, -1)), dq = scale dS k,
          // dk = scale dS^T q (per head; heads split and merged by reshapes and permutes).
          const auto n = static_cast<std::int64_t>(g.n), heads = static_cast<std::int64_t>(g.heads),
                     d = static_cast<std::int64_t>(g.d), e = static_cast<std::int64_t>(g.e);
          const auto split = [&](const Operand& o, std::size_t len) {
            Tensor<T> x = gr.in(o.input);
            if (o.stride != g.e) {
              x = slice(x, 2, static_cast<std::int64_t>(o.offset),
                        static_cast<std::int64_t>(o.offset + g.e), 1, loc);
            }
            return permute(reshape(x, Dims{n, static_cast<std::int64_t>(len), heads, d}, loc),
                           {0, 2, 1, 3}, loc);
          };
          const auto merge = [&](const Tensor<T>& x, std::size_t len) {
            return reshape(permute(x, {0, 2, 1, 3}, loc),
                           Dims{n, static_cast<std::int64_t>(len), e}, loc);
          };
          const Tensor<T> q = mul(split(g.q, g.t), scale, loc);
          const Tensor<T> k = split(g.k, g.s);
          const Tensor<T> v = split(g.v, g.s);
          Tensor<T> scores = matmul(q, transpose(k, -2, -1, loc), loc);
          if (mask) scores = masked_fill(scores, Tensor<T>(Array<T>(*mask)), minus_inf, loc);
          if (is_causal) {
            scores =
                masked_fill(scores, triu(Tensor<T>::ones(Shape{g.t, g.s}), 1, loc), minus_inf, loc);
          }
          const Tensor<T> pw = softmax(scores, -1, loc);
          const Tensor<T> dout =
              permute(reshape(grad, Dims{n, static_cast<std::int64_t>(g.t), heads, d}, loc),
                      {0, 2, 1, 3}, loc);
          const Tensor<T> dp = matmul(dout, transpose(v, -2, -1, loc), loc);
          const Tensor<T> ds = mul(pw, sub(dp, sum(mul(dp, pw, loc), {-1}, true, loc), loc), loc);
          Tensor<T> parts[3] = {merge(mul(matmul(ds, k, loc), scale, loc), g.t),
                                merge(matmul(transpose(ds, -2, -1, loc), q, loc), g.s),
                                merge(matmul(transpose(pw, -2, -1, loc), dout, loc), g.s)};
          if (count == 1) {
            if (gr.needs(0)) gr.to(0, concat<T>({parts[0], parts[1], parts[2]}, 2, loc));
          } else {
            for (std::size_t i = 0; i < 3; ++i) {
              if (gr.needs(i)) gr.to(i, std::move(parts[i]));
            }
          }
          return;
        }
        // One pass over the pairs: each writes its own columns of the gradients.
        std::vector<Array<T>> grads(count);
        for (std::size_t i = 0; i < count; ++i) {
          grads[i] = Array<T>::from_shape(gr.value(i).shape());
        }
        const bool need_q = gr.needs(g.q.input), need_k = gr.needs(g.k.input),
                   need_v = gr.needs(g.v.input);
        const T* qp = gr.value(g.q.input).data();
        const T* kp = gr.value(g.k.input).data();
        const T* vp = gr.value(g.v.input).data();
        T* dqp = grads[g.q.input].data();
        T* dkp = grads[g.k.input].data();
        T* dvp = grads[g.v.input].data();
        const T* dyp = grad.value().data();
        const T* wp = weights->data();
        for_pairs(g, [&](std::size_t lo, std::size_t hi) {
          std::vector<T> ds(block), vt(g.d * g.s);
          for (std::size_t p = lo; p < hi; ++p) {
            const std::size_t b = p / g.heads, h = p % g.heads;
            const std::size_t qo = b * g.t * g.q.stride + g.q.offset + h * g.d;
            const std::size_t ko = b * g.s * g.k.stride + g.k.offset + h * g.d;
            const std::size_t vo = b * g.s * g.v.stride + g.v.offset + h * g.d;
            const T* dy = dyp + b * g.t * g.e + h * g.d;
            const T* w = wp + p * block;
            if (need_v) {
              head_product(true, g.s, g.d, g.t, T(1), w, g.s, dy, g.e, dvp + vo, g.v.stride);
            }
            if (!need_q && !need_k) continue;
            transpose_block(vp + vo, g.v.stride, g.s, g.d, vt.data());
            head_product(false, g.t, g.s, g.d, T(1), dy, g.e, vt.data(), g.s, ds.data(), g.s);
            for (std::size_t i = 0; i < g.t; ++i) {
              T* row = ds.data() + i * g.s;
              const T* wr = w + i * g.s;
              T dot = 0;
              for (std::size_t j = 0; j < g.s; ++j) dot += row[j] * wr[j];
              for (std::size_t j = 0; j < g.s; ++j) row[j] = wr[j] * (row[j] - dot);
            }
            if (need_q) {
              head_product(false, g.t, g.d, g.s, scale, ds.data(), g.s, kp + ko, g.k.stride,
                           dqp + qo, g.q.stride);
            }
            if (need_k) {
              head_product(true, g.s, g.d, g.t, scale, ds.data(), g.s, qp + qo, g.q.stride,
                           dkp + ko, g.k.stride);
            }
          }
        });
        for (std::size_t i = 0; i < count; ++i) {
          if (gr.needs(i)) gr.to(i, std::move(grads[i]));
        }
      },
      Saves{inputs.size() == 1 ? 1u : 7u, false});
}

}  // namespace

template <class T>
Tensor<T> multi_head_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                               std::int64_t num_heads, const Tensor<T>& attn_mask, bool is_causal,
                               Location loc) {
  const ops::Entry op{"multi_head_attention", loc};
  const Shape qs = query.shape(), ks = key.shape(), vs = value.shape();
  const auto fail = [&](const std::string& why) {
    throw ShapeError("xgrad::multi_head_attention: query " + shape_str(qs) + ", key " +
                     shape_str(ks) + ", value " + shape_str(vs) + ", num_heads " +
                     std::to_string(num_heads) + ", attn_mask " + ops::shape_or_none(attn_mask) +
                     ": " + why);
  };
  if (qs.size() != 3 || ks.size() != 3 || vs.size() != 3) fail("inputs must be [N, L, E]");
  if (ks != vs || ks[0] != qs[0] || ks[2] != qs[2]) {
    fail("key and value must be [N, S, E] for query [N, T, E]");
  }
  const std::size_t e = qs[2];
  if (num_heads <= 0 || e % static_cast<std::size_t>(num_heads) != 0) {
    fail("num_heads must be positive and divide E");
  }
  if (is_causal && qs[1] != ks[1]) fail("a causal mask needs T == S");
  const auto h = static_cast<std::size_t>(num_heads);
  const Geometry g{qs[0], h, qs[1], ks[1], e / h, e, {0, e, 0}, {1, e, 0}, {2, e, 0}};
  return attention_op<T>(op, {query, key, value}, g, attn_mask, is_causal, loc);
}

template <class T>
Tensor<T> multi_head_self_attention(const Tensor<T>& qkv, std::int64_t num_heads,
                                    const Tensor<T>& attn_mask, bool is_causal, Location loc) {
  const ops::Entry op{"multi_head_self_attention", loc};
  const Shape s = qkv.shape();
  const auto fail = [&](const std::string& why) {
    throw ShapeError("xgrad::multi_head_self_attention: qkv " + shape_str(s) + ", num_heads " +
                     std::to_string(num_heads) + ", attn_mask " + ops::shape_or_none(attn_mask) +
                     ": " + why);
  };
  if (s.size() != 3 || s[2] % 3 != 0) fail("qkv must be [N, T, 3E]");
  const std::size_t e = s[2] / 3;
  if (num_heads <= 0 || e % static_cast<std::size_t>(num_heads) != 0) {
    fail("num_heads must be positive and divide E");
  }
  const auto h = static_cast<std::size_t>(num_heads);
  const Geometry g{s[0], h, s[1], s[1], e / h, e, {0, 3 * e, 0}, {0, 3 * e, e}, {0, 3 * e, 2 * e}};
  return attention_op<T>(op, {qkv}, g, attn_mask, is_causal, loc);
}

#define XGRAD_INSTANTIATE_ATTENTION(T)                                                             \
  template Tensor<T> multi_head_attention<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                             std::int64_t, const Tensor<T>&, bool, Location);      \
  template Tensor<T> multi_head_self_attention<T>(const Tensor<T>&, std::int64_t,                  \
                                                  const Tensor<T>&, bool, Location);

XGRAD_INSTANTIATE_ATTENTION(float)
XGRAD_INSTANTIATE_ATTENTION(double)

}  // namespace xgrad
