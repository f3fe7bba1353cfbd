// The one matrix-product dispatcher: every product of xgrad (matmul, linear, their gradients)
// comes through blas::gemm here and takes one of three paths, by the table below:
//   1. a plain loop for tiny products, where a BLAS call costs more than the arithmetic;
//   2. xgrad's AVX-512 kernels (gemm_kernels.cpp) for skinny float products, on CPUs with
//      AVX-512 only (checked at run time) and unless XGRAD_GEMM=portable;
//   3. the BLAS chosen when xgrad was built (XGRAD_BLAS_VENDOR: OpenBLAS by default).
// Nothing is loaded at run time and no environment variable is set; XGRAD_GEMM is read at the
// first float product that qualifies for the kernels (again after a bad value, which raises).

#include <xgrad/blas.hpp>
#include <xgrad/error.hpp>
#include <xgrad/profiler.hpp>
#include <xgrad/threads.hpp>

#include <cblas.h>

#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

#if XGRAD_BLAS_FLAME  // BLIS: its cblas.h declares no thread control
#include <blis.h>
#endif

namespace xgrad {

// ---- threads ----
// xgrad splits the products over its own pool (parallel.cpp); the BLAS is asked for one thread
// once the pool starts, and tells the pool how many the environment gave it before.

namespace detail {
#if XGRAD_BLAS_OPENBLAS
int blas_threads() {
  return openblas_get_num_threads();
}
void set_blas_threads(int threads) {
  openblas_set_num_threads(threads);
}
#elif XGRAD_BLAS_FLAME
int blas_threads() {
  return static_cast<int>(bli_thread_get_num_threads());
}
void set_blas_threads(int threads) {
  bli_thread_set_num_threads(threads);
}
#else  // a CBLAS without thread control: it decides, and the pool starts with one thread
int blas_threads() {
  return 1;
}
void set_blas_threads(int) {}
#endif
}  // namespace detail

}  // namespace xgrad

namespace xgrad::blas {

namespace detail {
// gemm_kernels.cpp: whether this CPU runs the skinny kernels, and the kernels themselves for a
// product the table below gave them.
bool skinny_kernels_supported();
void skinny_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                 const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta,
                 float* c, std::size_t ldc);
}  // namespace detail

namespace {

// ---- every threshold of the dispatch ----
// Measured with benchmarks/ops_bench (matmul_fwd, skinny_gemm against cblas_sgemm) on an AMD EPYC
// (Zen 5, AVX-512; Debian 12's OpenBLAS 0.3.21 runs its AVX2 "Haswell" kernels there), 1 thread.
struct Dispatch {
  // Loop up to 7^3 multiply-adds: square products take 21 ns by loop against 63 ns by OpenBLAS at
  // n = 4, break even at n = 7, and take 129 against 84 ns at n = 8.
  std::size_t tiny_product = 343;
  // Skinny kernels: C with a narrow side of at most 16 (one tile holds it in zmm registers) ...
  std::size_t skinny_max_narrow = 16;
  // ... a long side and a K of at least one 16-lane vector (below, a tile is mostly tail) ...
  std::size_t skinny_min_long = 16;
  std::size_t skinny_min_k = 16;
  // ... and 8192 multiply-adds at least, the limit set with the kernels, below which their
  // set-up (packing the narrow operand, reducing the tiles) was not repaid; not re-measured since.
  // Above it they take 0.4-0.5x OpenBLAS's time on ops_bench's skinny_gemm shapes (e.g.
  // [209,4096] x [4096,8]^T, an MLP's narrow layer: 95 against 235 us; [64,128] x [128,10]^T:
  // 1.5 against 3.0 us).
  std::size_t skinny_min_product = 8192;
  // Products are split over xgrad's threads (by rows or columns of C, see dispatch; columns in
  // pieces of whole cache lines) into single-threaded pieces side by side of at least 64^3
  // multiply-adds each, a few microseconds: a smaller piece takes less time than handing it to
  // a waiting thread and bringing its result back into the caller's cache.
  std::size_t parallel_product = 64 * 64 * 64;
  std::size_t parallel_align = 16;
  // Split by rows while op(B), which each thread then reads whole, is at most this many bytes:
  // it stays in each core's cache, while threads writing halves of the same rows of C were
  // measured slower, at 2 threads on the AMD EPYC, than threads writing halves of its rows
  // ([64,256] x [256,128]^T: 1.54x by rows, 1.43x by columns; [64,128] x [128,256]: 1.53x
  // against 1.32x). A larger op(B) ([64,784] x [784,256]^T, 784 KB) is split by columns (1.76x
  // against 1.68x by rows), so that each thread reads only its half of it.
  std::size_t rows_max_b_bytes = 256 * 1024;
};
constexpr Dispatch kDispatch;

// XGRAD_GEMM=portable keeps every product off the AVX-512 kernels, so that a test run covers the
// path of CPUs without them; unset or `auto` lets the CPU decide.
bool skinny_allowed() {
  static const bool allowed = [] {
    const char* env = std::getenv("XGRAD_GEMM");
    const std::string_view choice = env == nullptr ? "auto" : env;
    if (choice == "portable") return false;
    if (choice != "auto" && !choice.empty()) {
      throw ValueError("xgrad::blas::gemm: XGRAD_GEMM is `" + std::string(choice) +
                       "`; it must be `auto` or `portable`");
    }
    return detail::skinny_kernels_supported();
  }();
  return allowed;
}

bool skinny(std::size_t m, std::size_t n, std::size_t k) {
  const std::size_t narrow = std::min(m, n), wide = std::max(m, n);
  return narrow <= kDispatch.skinny_max_narrow && wide >= kDispatch.skinny_min_long &&
         k >= kDispatch.skinny_min_k && m * n * k >= kDispatch.skinny_min_product;
}

// C = alpha op(A) op(B) + beta C, one dot product per element: tiny sizes leave nothing for
// vectors to gain, and this form has no setup at all.
template <class T>
void loop_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
               std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  const std::size_t a_row = ta ? 1 : lda, a_col = ta ? lda : 1;
  const std::size_t b_row = tb ? 1 : ldb, b_col = tb ? ldb : 1;
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      T sum = T(0);
      for (std::size_t p = 0; p < k; ++p)
        sum += a[i * a_row + p * a_col] * b[p * b_row + j * b_col];
      T& out = c[i * ldc + j];
      // beta 0 must not read C: it may hold garbage, NaN included.
      out = beta == T(0) ? alpha * sum : alpha * sum + beta * out;
    }
  }
}

CBLAS_TRANSPOSE flag(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}
// BLAS rejects a leading dimension of 0, which an empty operand may have.
int dim(std::size_t n) {
  return static_cast<int>(std::max<std::size_t>(n, 1));
}

void cblas(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
           const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
           std::size_t ldc) {
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), dim(m), dim(n), dim(k), alpha, a, dim(lda), b,
              dim(ldb), beta, c, dim(ldc));
}
void cblas(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha,
           const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
           double* c, std::size_t ldc) {
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), dim(m), dim(n), dim(k), alpha, a, dim(lda), b,
              dim(ldb), beta, c, dim(ldc));
}

// A product on the calling thread: xgrad's skinny kernels or the (single-threaded) BLAS.
template <class T>
void one_thread(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
                std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (skinny(m, n, k) && skinny_allowed()) {
      detail::skinny_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
  }
  cblas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
void dispatch(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
              std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  if (m == 0 || n == 0) return;
  if (profiler::detail::active != nullptr) [[unlikely]]
    profiler::detail::product(std::is_same_v<T, double>, ta, tb, m, n, k);
  if (k == 0 || alpha == T(0)) {  // C = beta C; A and B are not read
    for (std::size_t i = 0; i < m; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        T& out = c[i * ldc + j];
        out = beta == T(0) ? T(0) : beta * out;
      }
    }
    return;
  }
  if (m * n * k <= kDispatch.tiny_product) {
    loop_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // pool_threads() first: the pool starts (and turns the BLAS's own threads off) at the first
  // product, so that every product runs under one threading regime.
  if (xgrad::detail::pool_threads() > 1 && m * n * k >= 2 * kDispatch.parallel_product) {
    // Rows or columns of C per piece for the least work a piece must have.
    const auto least = [&](std::size_t other) {
      const std::size_t per_line = std::max<std::size_t>(other * k, 1);
      return std::max(kDispatch.parallel_align,
                      (kDispatch.parallel_product + per_line - 1) / per_line);
    };
    // Rows when op(B), which every thread then reads whole, is no larger than C (k <= m) or
    // small (rows_max_b_bytes): each thread writes whole rows of C, the same contiguous half an
    // elementwise pass or an optimiser update over C takes next. Columns otherwise (a large
    // weight times a batch: each thread reads half of the weight), and also when rows would make
    // one piece and columns two (few rows just above the threshold: m = 33, n = 128, k = 125).
    const bool small_b = k * n * sizeof(T) <= kDispatch.rows_max_b_bytes;
    const bool prefer_rows = m >= 2 * kDispatch.parallel_align &&
                             (k <= m || small_b || n < 2 * kDispatch.parallel_align);
    const bool by_rows = prefer_rows && (m / least(n) >= 2 || n / least(m) < 2);
    if (!by_rows) {  // columns [j0, j1) of C: the same columns of op(B)
      xgrad::detail::parallel_for(n, least(m), kDispatch.parallel_align,
                                  [&](std::size_t j0, std::size_t j1) {
                                    one_thread(ta, tb, m, j1 - j0, k, alpha, a, lda,
                                               tb ? b + j0 * ldb : b + j0, ldb, beta, c + j0, ldc);
                                  });
    } else {  // rows [i0, i1) of C: the same rows of op(A)
      xgrad::detail::parallel_for(m, least(n), 1, [&](std::size_t i0, std::size_t i1) {
        one_thread(ta, tb, i1 - i0, n, k, alpha, ta ? a + i0 : a + i0 * lda, lda, b, ldb, beta,
                   c + i0 * ldc, ldc);
      });
    }
    return;
  }
  one_thread(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
  dispatch(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc) {
  dispatch(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace xgrad::blas
