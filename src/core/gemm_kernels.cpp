// AVX-512 kernels for skinny single-precision products: C[M,N] with min(M, N) <= 16.
//
// Why they exist: an MLP with a narrow layer (4096 -> 8) multiplies [209,4096] by [4096,8] in the
// forward pass and [8,209] by [209,4096] for the weight gradient. OpenBLAS 0.3.21 runs its AVX2
// "Haswell" kernels on AVX-512 machines and blocks for square-ish operands; on these shapes it
// reaches a fraction of one core's peak, and its threading (they are above its threshold) makes
// them slower still. Here the whole narrow side of C stays in registers while the long operand
// is streamed once, at full AVX-512 width.
//
// Every product has one of two forms, by which way the long operand is contiguous:
//   - dot:  C(r, f) = x_r . w_f with x's rows contiguous along K; w, the narrow operand, is first
//           packed (few * K floats); a tile holds R rows of x against F rows of w, vectorised
//           along K and reduced horizontally at the end;
//   - axpy: C(f, cols) = sum_p coef(p, f) * row_p(cols) with the rows contiguous along the long
//           side of C; a tile holds F narrow-side rows of V vectors, broadcasting one coefficient
//           per row and step of K.
// Only code compiled without AVX-512 touches standard containers: templates instantiated inside
// a target("avx512f") function could otherwise be merged with the portable copies of the same
// instantiation.

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>

#define XGRAD_AVX512 __attribute__((target("avx512f,avx512vl,fma")))

namespace xgrad::blas::detail {

namespace {

using std::size_t;

constexpr size_t kLanes = 16;
constexpr int kMaxFew = 8;  // narrow-side rows per tile; wider products take several tiles

// Tiles sized so that accumulators, operands and one broadcast fit the 32 zmm registers:
// count * (few + 1) + 1 <= 32.
constexpr int tile_count(int few) {
  return std::min(8, 31 / (few + 1));
}

// Where C(long index, narrow index) lives, and how it is updated.
struct Out {
  float* c;
  size_t s_long;  // C stride between consecutive long-side indices
  size_t s_few;   // C stride between consecutive narrow-side indices
  float alpha;
  float beta;
};

XGRAD_AVX512 inline void update(const Out& o, size_t r, size_t f, float v) {
  float* p = o.c + r * o.s_long + f * o.s_few;
  // beta = 0 must not read C: it may hold garbage, NaN included.
  *p = o.beta == 0.f ? o.alpha * v : o.alpha * v + o.beta * *p;
}

XGRAD_AVX512 inline __mmask16 low_mask(size_t n) {
  return static_cast<__mmask16>(n >= kLanes ? 0xFFFFu : (1u << n) - 1u);
}

// out[f] = the sum of v[f]'s lanes, for up to 8 vectors at once: about a third of the work of
// one reduction per vector, which counts when K is short. The zero-masked intrinsics stand for
// the plain ones because GCC 12 warns that the _mm512_undefined_* those pass is uninitialised.
template <int F>
XGRAD_AVX512 inline void hsum8(const __m512 (&v)[F], float* out) {
  constexpr __mmask16 all = 0xFFFF;
  __m512 x[8];
#pragma GCC unroll 8
  for (int f = 0; f < 8; ++f) x[f] = f < F ? v[f] : _mm512_setzero_ps();
  // h[i]: 8 partial sums of x[2i] in lanes 0-7, of x[2i+1] in lanes 8-15.
  __m512 h[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    h[i] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, x[2 * i], x[2 * i + 1], 0x44),
                         _mm512_maskz_shuffle_f32x4(all, x[2 * i], x[2 * i + 1], 0xEE));
  }
  // t[j]: 4 partial sums of x[4j + q] in 128-bit lane q.
  __m512 t[2];
#pragma GCC unroll 2
  for (int j = 0; j < 2; ++j) {
    t[j] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, h[2 * j], h[2 * j + 1], 0x88),
                         _mm512_maskz_shuffle_f32x4(all, h[2 * j], h[2 * j + 1], 0xDD));
  }
  // Lane 4q holds the sum of x[q], lane 4q + 1 that of x[4 + q].
  __m512 z = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, t[0], t[1]),
                           _mm512_maskz_unpackhi_ps(all, t[0], t[1]));
  z = _mm512_add_ps(z, _mm512_maskz_permute_ps(all, z, 0x4E));
  alignas(64) float lanes[kLanes];
  _mm512_store_ps(lanes, z);
#pragma GCC unroll 8
  for (int f = 0; f < F; ++f) out[f] = lanes[f < 4 ? 4 * f : 4 * (f - 4) + 1];
}

// The narrow operand of a dot product is packed, tile by tile of at most kMaxFew rows, as
// [chunk of 16 along K][row f][16 lanes], zero-padded past K and 64-byte aligned: its loads are
// then aligned and sequential, and only the long operand's may straddle cache lines.
size_t packed_chunks(size_t k) {
  return (k + kLanes - 1) / kLanes;
}

// Element (f, p) of the narrow operand is src[f * sf + p * sp].
void pack_narrow(const float* src, size_t sf, size_t sp, size_t few, size_t k, float* out) {
  const size_t chunks = packed_chunks(k);
  for (size_t f0 = 0; f0 < few; f0 += kMaxFew) {
    const size_t tile = std::min<size_t>(kMaxFew, few - f0);
    float* dst = out + f0 * chunks * kLanes;
    for (size_t c = 0; c < chunks; ++c) {
      const size_t p0 = c * kLanes;
      const size_t lanes = std::min(kLanes, k - p0);
      for (size_t f = 0; f < tile; ++f, dst += kLanes) {
        const float* s = src + (f0 + f) * sf + p0 * sp;
        if (sp == 1) {
          std::copy(s, s + lanes, dst);
        } else {
          for (size_t l = 0; l < lanes; ++l) dst[l] = s[l * sp];
        }
        std::fill(dst + lanes, dst + kLanes, 0.f);
      }
    }
  }
}

// R long-side rows x (stride ldx) against a packed tile of F narrow-side rows, over K.
template <int R, int F>
XGRAD_AVX512 void dot_tile(const float* x, size_t ldx, const float* w, size_t k, const Out& o,
                           size_t r0, size_t f0) {
  __m512 acc[R][F];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int f = 0; f < F; ++f) acc[r][f] = _mm512_setzero_ps();
  }
  for (size_t p = 0; p < k; p += kLanes, w += F * kLanes) {
    // The last chunk's lanes past K are not read (no fault past the end) and w is zero there.
    const __mmask16 m = low_mask(k - p);
    __m512 xv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) xv[r] = _mm512_maskz_loadu_ps(m, x + r * ldx + p);
#pragma GCC unroll 8
    for (int f = 0; f < F; ++f) {
      __m512 wv = _mm512_load_ps(w + f * kLanes);
      // Keeps wv in a register: GCC would otherwise fold the load into each of the R FMAs, and
      // the extra loads, not the FMAs, would set the pace.
      __asm__("" : "+v"(wv));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][f] = _mm512_fmadd_ps(xv[r], wv, acc[r][f]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float sums[F];
    hsum8<F>(acc[r], sums);
#pragma GCC unroll 8
    for (int f = 0; f < F; ++f) update(o, r0 + r, f0 + f, sums[f]);
  }
}

// C(r, f0 + f) for every long-side row r and the packed tile w of F narrow-side rows.
template <int F>
XGRAD_AVX512 void dot_panel(const float* x, size_t ldx, size_t rows, const float* w, size_t k,
                            const Out& o, size_t f0) {
  constexpr int R = tile_count(F);
  size_t r = 0;
  for (; r + R <= rows; r += R) dot_tile<R, F>(x + r * ldx, ldx, w, k, o, r, f0);
  for (; r < rows; ++r) dot_tile<1, F>(x + r * ldx, ldx, w, k, o, r, f0);
}

// F narrow-side rows of C over V vectors of long-side columns from col0; the last vector is
// masked to `last` lanes. coef(p, f) = coef[p * csp + f * csf], row_p = rows + p * ldr.
template <int F, int V>
XGRAD_AVX512 void axpy_tile(const float* rows, size_t ldr, const float* coef, size_t csp,
                            size_t csf, size_t k, size_t col0, __mmask16 last, const Out& o,
                            size_t f0) {
  __m512 acc[F][V];
#pragma GCC unroll 8
  for (int f = 0; f < F; ++f) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) acc[f][v] = _mm512_setzero_ps();
  }
  const float* row = rows + col0;
  const float* cp = coef;
  for (size_t p = 0; p < k; ++p, row += ldr, cp += csp) {
    __m512 xv[V];
#pragma GCC unroll 8
    for (int v = 0; v + 1 < V; ++v) xv[v] = _mm512_loadu_ps(row + v * kLanes);
    xv[V - 1] = _mm512_maskz_loadu_ps(last, row + (V - 1) * kLanes);
#pragma GCC unroll 8
    for (int f = 0; f < F; ++f) {
      const __m512 cv = _mm512_set1_ps(cp[f * csf]);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc[f][v] = _mm512_fmadd_ps(cv, xv[v], acc[f][v]);
    }
  }
  if (o.s_long == 1) {
    const __m512 alpha = _mm512_set1_ps(o.alpha);
    const __m512 beta = _mm512_set1_ps(o.beta);
#pragma GCC unroll 8
    for (int f = 0; f < F; ++f) {
      float* crow = o.c + (f0 + f) * o.s_few + col0;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        const __mmask16 m = v + 1 < V ? __mmask16(0xFFFF) : last;
        float* dst = crow + v * kLanes;
        __m512 res = _mm512_mul_ps(alpha, acc[f][v]);
        if (o.beta != 0.f) res = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m, dst), res);
        _mm512_mask_storeu_ps(dst, m, res);
      }
    }
  } else {
    // The long side runs down C's columns: write element by element.
    alignas(64) float buf[F][V * kLanes];
#pragma GCC unroll 8
    for (int f = 0; f < F; ++f) {
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) _mm512_store_ps(&buf[f][v * kLanes], acc[f][v]);
    }
    const size_t width = (V - 1) * kLanes + static_cast<size_t>(__builtin_popcount(last));
    for (size_t j = 0; j < width; ++j) {
      for (int f = 0; f < F; ++f) update(o, col0 + j, f0 + f, buf[f][j]);
    }
  }
}

// The F narrow-side rows of C starting at f0, over all `cols` long-side columns.
template <int F>
XGRAD_AVX512 void axpy_panel(const float* rows, size_t ldr, size_t cols, const float* coef,
                             size_t csp, size_t csf, size_t k, const Out& o, size_t f0) {
  constexpr int V = tile_count(F);
  constexpr size_t block = V * kLanes;
  size_t c = 0;
  for (; c + block <= cols; c += block) {
    axpy_tile<F, V>(rows, ldr, coef, csp, csf, k, c, 0xFFFF, o, f0);
  }
  for (; c < cols; c += kLanes) {
    axpy_tile<F, 1>(rows, ldr, coef, csp, csf, k, c, low_mask(cols - c), o, f0);
  }
}

// The narrow side split into tiles of at most kMaxFew rows; F is a template argument so that
// the accumulators are registers.
template <class Panel>
XGRAD_AVX512 void for_each_tile(size_t few, Panel panel) {
  for (size_t f0 = 0; f0 < few; f0 += kMaxFew) {
    switch (std::min<size_t>(kMaxFew, few - f0)) {
      case 1:
        panel.template operator()<1>(f0);
        break;
      case 2:
        panel.template operator()<2>(f0);
        break;
      case 3:
        panel.template operator()<3>(f0);
        break;
      case 4:
        panel.template operator()<4>(f0);
        break;
      case 5:
        panel.template operator()<5>(f0);
        break;
      case 6:
        panel.template operator()<6>(f0);
        break;
      case 7:
        panel.template operator()<7>(f0);
        break;
      default:
        panel.template operator()<8>(f0);
        break;
    }
  }
}

// C(r, f) = x_r . w_f for r < rows (stride ldx), f < few, w packed by pack_narrow.
XGRAD_AVX512 void dot_product(const float* x, size_t ldx, size_t rows, const float* w, size_t few,
                              size_t k, const Out& o) {
  // K in blocks whose slice of w (32 KiB for 8 rows) stays in L1 across the row tiles; without
  // them w comes from L2 for every tile, at two thirds of the speed. Later blocks add onto C.
  constexpr size_t kBlock = 1024;
  const size_t chunks = packed_chunks(k);
  for (size_t p0 = 0; p0 < k; p0 += kBlock) {
    const size_t kb = std::min(kBlock, k - p0);
    Out ob = o;
    if (p0 > 0) ob.beta = 1.f;
    for_each_tile(few, [&]<int F>(size_t f0) {
      const float* wt = w + f0 * chunks * kLanes + (p0 / kLanes) * F * kLanes;
      dot_panel<F>(x + p0, ldx, rows, wt, kb, ob, f0);
    });
  }
}

// C(f, j) = sum_p coef(p, f) row_p[j] for f < few, j < cols.
XGRAD_AVX512 void axpy_product(const float* rows, size_t ldr, size_t cols, const float* coef,
                               size_t csp, size_t csf, size_t few, size_t k, const Out& o) {
  for_each_tile(few, [&]<int F>(size_t f0) {
    axpy_panel<F>(rows, ldr, cols, coef + f0 * csf, csp, csf, k, o, f0);
  });
}

// Packs the narrow operand, element (f, p) at src[f * sf + p * sp], and runs dot_product. Up to
// 4 MiB the buffer is per thread and kept, as products of one shape tend to repeat (a training
// loop's), and a fresh allocation of that size costs page faults on every call.
void packed_dot(const float* x, size_t ldx, size_t rows, const float* src, size_t sf, size_t sp,
                size_t few, size_t k, const Out& o) {
  constexpr size_t kKept = size_t(1) << 20;  // floats
  thread_local std::vector<float> kept;
  std::vector<float> once;
  const size_t need = few * packed_chunks(k) * kLanes;
  std::vector<float>& buffer = need + kLanes <= kKept ? kept : once;
  buffer.resize(need + kLanes);  // room to align to 64 bytes
  void* start = buffer.data();
  std::size_t space = buffer.size() * sizeof(float);
  float* w = static_cast<float*>(std::align(64, need * sizeof(float), start, space));
  pack_narrow(src, sf, sp, few, k, w);
  dot_product(x, ldx, rows, w, few, k, o);
}

}  // namespace

bool skinny_kernels_supported() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("fma");
}

// The dispatcher (blas.cpp) sends only products with a narrow side of at most 16 here, a long side
// and K of at least 16 and alpha != 0, on CPUs where skinny_kernels_supported().
void skinny_gemm(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float* a,
                 size_t lda, const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  // op(A)[i,p] = ta ? a[p*lda + i] : a[i*lda + p]; op(B)[p,j] = tb ? b[j*ldb + p] : b[p*ldb + j].
  if (n <= m) {
    // Narrow N: the long index is i, C(i, j) = c[i*ldc + j].
    const Out o{c, ldc, 1, alpha, beta};
    if (ta) {
      // Rows of A run along i: weight them by B's entries, one column j of C per tile row.
      axpy_product(a, lda, m, b, tb ? 1 : ldb, tb ? ldb : 1, n, k, o);
    } else {
      // Rows of A run along K: dot them with op(B)'s columns, element (j, p).
      packed_dot(a, lda, m, b, tb ? ldb : 1, tb ? 1 : ldb, n, k, o);
    }
  } else {
    // Narrow M: the long index is j, C(i, j) = c[i*ldc + j].
    const Out o{c, 1, ldc, alpha, beta};
    if (!tb) {
      axpy_product(b, ldb, n, a, ta ? lda : 1, ta ? 1 : lda, m, k, o);
    } else {
      packed_dot(b, ldb, n, a, ta ? 1 : lda, ta ? lda : 1, m, k, o);
    }
  }
}

}  // namespace xgrad::blas::detail

#else  // not x86-64: no AVX-512, every product goes to BLAS

namespace xgrad::blas::detail {
bool skinny_kernels_supported() {
  return false;
}
void skinny_gemm(bool, bool, std::size_t, std::size_t, std::size_t, float, const float*,
                 std::size_t, const float*, std::size_t, float, float*, std::size_t) {}
}  // namespace xgrad::blas::detail

#endif
