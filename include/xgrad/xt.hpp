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
#include <new>
#include <vector>

namespace xgrad {

namespace detail {
/// A block of at least `bytes` bytes, 64-byte aligned; throws std::bad_alloc.
void* pool_allocate(std::size_t bytes);
/// Returns a block from pool_allocate(bytes) with the same `bytes`.
void pool_deallocate(void* p, std::size_t bytes) noexcept;

/// The allocator of every Array. A training step frees and reallocates the same buffers (values,
/// gradients, saved activations) step after step; large ones would go back to the system and
/// page-fault afresh each time. This keeps freed blocks in per-thread free lists by size class,
/// so the next step reuses them warm. Blocks above 256 MiB bypass the lists, and a thread keeps
/// at most 32 blocks per size class and 256 MiB in all.
template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}  // NOLINT: allocator rebinding
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(pool_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { pool_deallocate(p, n * sizeof(T)); }
  template <class U>
  struct rebind {
    using other = PoolAllocator<U>;
  };
  friend bool operator==(const PoolAllocator&, const PoolAllocator&) { return true; }
  friend bool operator!=(const PoolAllocator&, const PoolAllocator&) { return false; }
};
}  // namespace detail

/// Dense row-major n-dimensional array: the storage of every tensor value and gradient.
template <class T>
using Array = xt::xarray<T, xt::layout_type::row_major, detail::PoolAllocator<T>>;

/// Frees the blocks this thread keeps for reuse (the memory of arrays already destroyed).
void release_cached_memory();
/// Bytes this thread keeps in freed blocks for reuse.
std::size_t cached_memory();

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
