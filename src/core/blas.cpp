#include <cblas.h>

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

namespace {
// Products smaller than this run on one thread whatever the setting: below it, waking and
// synchronising a second thread costs more than it saves.
constexpr std::size_t kThreadedProduct = std::size_t(1) << 21;  // 128^3

int threads_for(std::size_t m, std::size_t n, std::size_t k) {
  return m * n * k < kThreadedProduct ? 1 : openblas_get_num_threads();
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
  if (detail::blis_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                        threads_for(m, n, k))) {
    return;
  }
  cblas_sgemm(CblasRowMajor, flag(trans_a), flag(trans_b), idx(m), idx(n), idx(k), alpha, a,
              idx(lda), b, idx(ldb), beta, c, idx(ldc));
}

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc) {
  if (detail::blis_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                        threads_for(m, n, k))) {
    return;
  }
  cblas_dgemm(CblasRowMajor, flag(trans_a), flag(trans_b), idx(m), idx(n), idx(k), alpha, a,
              idx(lda), b, idx(ldb), beta, c, idx(ldc));
}

}  // namespace xgrad::blas
