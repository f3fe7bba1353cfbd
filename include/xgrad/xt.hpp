#pragma once
// The only header that includes xtensor. Everything else in xgrad sees xtensor through here,
// so a move to xtensor 0.25+ (which nests its headers in sub-folders) touches one file.

#include <xgrad/config.hpp>
#include <xtensor/xtensor_config.hpp>

#if XTENSOR_VERSION_MAJOR == 0 && XTENSOR_VERSION_MINOR < 25
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xindex_view.hpp>
#include <xtensor/xio.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xview.hpp>
#else
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xarray.hpp>
#include <xtensor/core/xmath.hpp>
#include <xtensor/core/xnoalias.hpp>
#include <xtensor/generators/xbuilder.hpp>
#include <xtensor/io/xio.hpp>
#include <xtensor/misc/xmanipulation.hpp>
#include <xtensor/misc/xsort.hpp>
#include <xtensor/reducers/xreducer.hpp>
#include <xtensor/views/xbroadcast.hpp>
#include <xtensor/views/xindex_view.hpp>
#include <xtensor/views/xstrided_view.hpp>
#include <xtensor/views/xview.hpp>
#endif

#include <cstddef>
#include <vector>

namespace xgrad {

/// Dense row-major n-dimensional array: the storage of every tensor value and gradient.
template <class T>
using Array = xt::xarray<T, xt::layout_type::row_major>;

/// A tensor shape: one extent per dimension.
using Shape = std::vector<std::size_t>;

/// Threads OpenBLAS may use for matrix products (1 = single-threaded).
void set_num_threads(int threads);
/// Threads OpenBLAS uses for matrix products.
int get_num_threads();

namespace blas {
/// C[M,N] = alpha * op(A) op(B) + beta * C on row-major buffers, op = transpose when the flag is
/// set. lda/ldb/ldc are the row strides of A, B and C as stored.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);
/// The same in double precision.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc);
}  // namespace blas

}  // namespace xgrad
