#pragma once
/// @file
/// How many threads the matrix products may use.

namespace xgrad {

/// Threads the BLAS may use for matrix products (1 = single-threaded). With a BLAS that offers
/// no thread control the call is recorded and get_num_threads() reports it.
void set_num_threads(int threads);
/// Threads the BLAS uses for matrix products.
int get_num_threads();

}  // namespace xgrad
