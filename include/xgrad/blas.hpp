#pragma once
/// @file
/// The matrix product every operation is built on.

#include <cstddef>

namespace xgrad::blas {

/// C[M,N] = alpha * op(A) op(B) + beta * C on row-major buffers, op = transpose when the flag is
/// set. lda/ldb/ldc are the row strides of A, B and C as stored. Empty extents are allowed; beta 0
/// never reads C. The path taken depends on the shape (the performance guide lists it); the
/// environment variable XGRAD_GEMM=portable, read at the first product, keeps every product off the
/// AVX-512 kernels.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);
/// The same in double precision.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc);

}  // namespace xgrad::blas
