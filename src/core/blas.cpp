#include <cblas.h>

#include <cstdlib>
#include <cstring>

#include <xgrad/xt.hpp>

#include "blis_backend.hpp"

namespace xgrad {

void set_num_threads(int threads) {
  openblas_set_num_threads(threads < 1 ? 1 : threads);
}
int get_num_threads() {
  return openblas_get_num_threads();
}

}  // namespace xgrad

namespace xgrad::blas {

namespace detail {
// src/core/gemm_kernels.cpp: products with min(M, N) <= 16 on AVX-512 machines, single-threaded.
// Returns false, having done nothing, for products it does not take.
bool skinny_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                 const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta,
                 float* c, std::size_t ldc);
}  // namespace detail

namespace {
// XGRAD_BLAS=openblas sends every product to OpenBLAS (to compare, or to rule the others out).
bool other_kernels_allowed() {
  static const bool allowed = [] {
    const char* choice = std::getenv("XGRAD_BLAS");
    return choice == nullptr || std::strcmp(choice, "openblas") != 0;
  }();
  return allowed;
}

// Below this many multiply-adds a product gains nothing from a second thread.
constexpr std::size_t kThreadedProduct = std::size_t(1) << 21;  // 128^3

// BLIS takes the single-threaded products only: its pthreads build starts and joins threads on
// every call, which costs more than it saves at these sizes and collapses when the machine is
// busy, while OpenBLAS keeps its threads between calls.
bool single_threaded(std::size_t m, std::size_t n, std::size_t k) {
  return m * n * k < kThreadedProduct || openblas_get_num_threads() == 1;
}

CBLAS_TRANSPOSE flag(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}
blasint idx(std::size_t n) {
  return static_cast<blasint>(n);
}
}  // namespace

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
  if (other_kernels_allowed()) {
    if (detail::skinny_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) {
      return;
    }
    if (single_threaded(m, n, k) &&
        detail::blis_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) {
      return;
    }
  }
  cblas_sgemm(CblasRowMajor, flag(trans_a), flag(trans_b), idx(m), idx(n), idx(k), alpha, a,
              idx(lda), b, idx(ldb), beta, c, idx(ldc));
}

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc) {
  if (other_kernels_allowed() && single_threaded(m, n, k) &&
      detail::blis_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) {
    return;
  }
  cblas_dgemm(CblasRowMajor, flag(trans_a), flag(trans_b), idx(m), idx(n), idx(k), alpha, a,
              idx(lda), b, idx(ldb), beta, c, idx(ldc));
}

}  // namespace xgrad::blas
