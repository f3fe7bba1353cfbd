#pragma once
// Products through BLIS where it beats OpenBLAS on this CPU; see blis_backend.cpp.

#include <cstddef>

namespace xgrad::blas::detail {

/// Row-major C[m,n] = alpha op(A) op(B) + beta C through BLIS on the calling thread; false (and
/// nothing done) when BLIS is not available or not worth calling for this shape.
bool blis_gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
               const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta,
               float* c, std::size_t ldc);
/// The same in double precision.
bool blis_gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
               double alpha, const double* a, std::size_t lda, const double* b, std::size_t ldb,
               double beta, double* c, std::size_t ldc);

}  // namespace xgrad::blas::detail
