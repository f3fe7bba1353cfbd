#pragma once
/// @file
/// How many threads xgrad computes on.

namespace xgrad {

/// Threads xgrad computes on, the calling one included (values below 1 count as 1; above 1024,
/// ValueError; from inside xgrad's own parallel work, Error). Matrix products of at least
/// 2 x 64^3 multiply-adds are split by rows or columns of their result, and optimiser updates,
/// batch gathering and large elementwise ops along their elements, over a pool of threads - 1
/// persistent workers; each piece of a product is one single-threaded BLAS call, so the BLAS's
/// own threading is set to one thread when the pool starts (at the first op that may split its
/// work, or the first call of either function). The pool starts with the thread count the
/// environment gives the BLAS (OpenBLAS: `OPENBLAS_NUM_THREADS`, `OMP_NUM_THREADS`, else one per
/// core; BLIS: `BLIS_NUM_THREADS`, `OMP_NUM_THREADS`, else one; another BLAS: one). Work asked
/// for from two threads at once runs split for one of them and on its own thread for the other.
void set_num_threads(int threads);
/// Threads xgrad computes on (>= 1).
int get_num_threads();

}  // namespace xgrad
