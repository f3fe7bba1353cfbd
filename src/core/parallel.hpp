#pragma once
// xgrad's own threads: one persistent pool of set_num_threads() - 1 workers plus the calling
// thread, which splits matrix products, optimiser updates and large elementwise passes. The BLAS
// itself runs on one thread per call, so that the threads a user asked for are never exceeded and
// never oversubscribed: a product split in two is two single-threaded BLAS calls side by side.

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace xgrad::detail {

/// Threads xgrad computes on, the caller included (>= 1).
int pool_threads();

/// Runs call(context, part) for every part in [0, parts): the caller takes parts 0, P, 2P, ...,
/// worker w parts w, w + P, ... (P = pool_threads()), each then any part no thread has taken yet
/// (so a late worker's parts are done by the others); it returns once all are done, and the
/// first exception thrown by any part is rethrown here. Runs every part on the caller when the
/// pool has no workers, is busy with another thread's work, or is asked from inside a part.
void run_parallel(std::size_t parts, void (*call)(void*, std::size_t), void* context);

/// run_parallel() for a lambda: fn(part).
template <class F>
void parallel_parts(std::size_t parts, F&& fn) {
  using Fn = std::remove_reference_t<F>;
  run_parallel(
      parts, [](void* c, std::size_t part) { (*static_cast<Fn*>(c))(part); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

/// Splits [0, n) into at most pool_threads() ranges of at least `grain` items each (grain 0
/// counts as 1), each a multiple of `align` long except the last, and runs fn(begin, end) for
/// each in parallel; fn(0, n) on the caller when that makes one range.
template <class F>
void parallel_for(std::size_t n, std::size_t grain, std::size_t align, F&& fn) {
  const std::size_t threads = static_cast<std::size_t>(pool_threads());
  std::size_t parts = std::min(threads, n / std::max<std::size_t>(grain, 1));
  align = std::max<std::size_t>(align, 1);
  if (parts <= 1) {
    fn(std::size_t{0}, n);
    return;
  }
  std::size_t step = (n + parts - 1) / parts;
  step = (step + align - 1) / align * align;
  parts = (n + step - 1) / step;
  parallel_parts(parts, [&](std::size_t p) {
    const std::size_t begin = p * step;
    fn(begin, std::min(n, begin + step));
  });
}

}  // namespace xgrad::detail
