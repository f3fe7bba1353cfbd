// The pool of parallel.hpp and set_num_threads(). Workers wait for a new generation of work by
// spinning briefly (the ops of a training step follow each other within microseconds, and a
// sleeping thread takes tens of them to wake) and then sleeping on the generation counter. Each
// thread takes its own parts of a round first and then whatever is left, so the caller never
// waits for a worker that has not started: on a machine whose cores other processes also use, a
// worker may be off its core for a whole time slice.

#include "parallel.hpp"

#include <xgrad/error.hpp>
#include <xgrad/threads.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <pthread.h>

namespace xgrad {

namespace detail {
// blas.cpp: the BLAS's own thread count (as the environment set it) and its setter.
int blas_threads();
void set_blas_threads(int threads);
}  // namespace detail

namespace {

void relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Pause instructions before a waiting thread sleeps: about 70 us on the AMD EPYC of
// benchmarks/RESULTS.md, longer than the gaps between the split ops of a training step there
// (a longer spin measured no faster).
constexpr int kSpins = 4000;

thread_local bool inside_part = false;

class Pool {
 public:
  int threads() const { return threads_.load(std::memory_order_relaxed); }

  // Called with busy_ held by the caller (see claim()).
  void resize(int threads) {
    const std::size_t want = static_cast<std::size_t>(std::max(threads, 1) - 1);
    if (want == workers_.size()) return;
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_.store(false, std::memory_order_relaxed);
    try {
      for (std::size_t i = 0; i < want; ++i) {
        workers_.emplace_back([this, i, seen = generation_.load()] { loop(i + 1, seen); });
      }
    } catch (const std::system_error& e) {  // the system refused a thread: keep those started
      threads_.store(static_cast<int>(workers_.size()) + 1, std::memory_order_relaxed);
      throw Error("xgrad::set_num_threads: could start only " +
                  std::to_string(workers_.size() + 1) + " of " + std::to_string(want + 1) +
                  " threads: " + e.what());
    }
    threads_.store(static_cast<int>(want) + 1, std::memory_order_relaxed);
  }

  // In the child of a fork(): the workers were not copied, so their handles are left behind
  // (never joined, never destroyed) and the child computes on its one thread until it asks for
  // more.
  void abandon_after_fork() {
    new std::vector<std::thread>(std::move(workers_));  // NOLINT: deliberately leaked
    workers_.clear();
    threads_.store(1, std::memory_order_relaxed);
    busy_.store(false, std::memory_order_relaxed);
    stop_.store(false, std::memory_order_relaxed);
    active_.store(0, std::memory_order_relaxed);
    open_.store(false, std::memory_order_relaxed);
    new (&error_mutex_) std::mutex;  // a worker may have held it at the fork
  }

  // True when this thread got the pool; false when another thread's work holds it.
  bool claim() {
    bool expected = false;
    return busy_.compare_exchange_strong(expected, true, std::memory_order_acquire);
  }
  void release() { busy_.store(false, std::memory_order_release); }
  // Waits for the pool (for a resize): other threads hold it only for the span of one op.
  void claim_blocking() {
    while (!claim()) std::this_thread::yield();
  }
  // claim_blocking() until the end of the scope.
  struct Claim {
    explicit Claim(Pool& p) : pool(p) { pool.claim_blocking(); }
    ~Claim() { pool.release(); }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    Pool& pool;
  };

  void run(std::size_t parts, void (*call)(void*, std::size_t), void* context) {
    call_ = call;
    context_ = context;
    parts_ = parts;
    error_ = nullptr;
    if (parts > taken_size_) {
      taken_ = std::make_unique<std::atomic<bool>[]>(parts);
      taken_size_ = parts;
    }
    for (std::size_t p = 0; p < parts; ++p) taken_[p].store(false, std::memory_order_relaxed);
    open_.store(true, std::memory_order_seq_cst);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    work(0);
    // Every part is taken. Closing the round before reading active_ (both sequentially
    // consistent, as on the workers' side) means a worker either is counted there or sees the
    // round closed and reads none of its fields, which the next round may then overwrite.
    open_.store(false, std::memory_order_seq_cst);
    for (int spin = 0;; ++spin) {
      const int active = active_.load(std::memory_order_seq_cst);
      if (active == 0) break;
      if (spin < kSpins) {
        relax();
      } else {
        active_.wait(active, std::memory_order_acquire);
      }
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Takes the participant's own parts (the caller 0, P, 2P, ..., worker w w, w + P, ..., with
  // P = threads()), then any part still left. Own parts first keep the pieces of consecutive ops
  // on the same threads (a product split by rows and the elementwise pass over its result touch
  // the same halves), so each core reads what its own cache holds; taking the rest means a worker
  // slow to wake (asleep, or its core lent to another process) finds its parts done, and the
  // caller waits only for the parts a worker did take.
  void work(std::size_t participant) {
    inside_part = true;
    const auto take = [&](std::size_t p) {
      if (taken_[p].exchange(true, std::memory_order_acq_rel)) return;
      try {
        call_(context_, p);
      } catch (...) {
        const std::lock_guard lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    };
    const std::size_t stride = workers_.size() + 1;
    for (std::size_t p = participant; p < parts_; p += stride) take(p);
    for (std::size_t p = 0; p < parts_; ++p) take(p);
    inside_part = false;
  }

  void loop(std::size_t index, std::uint64_t seen) {
    for (;;) {
      std::uint64_t now = generation_.load(std::memory_order_acquire);
      for (int spin = 0; now == seen; ++spin) {
        if (spin < kSpins) {
          relax();
        } else {
          generation_.wait(seen, std::memory_order_acquire);
        }
        now = generation_.load(std::memory_order_acquire);
      }
      seen = now;
      if (stop_.load(std::memory_order_relaxed)) return;
      active_.fetch_add(1, std::memory_order_seq_cst);
      if (open_.load(std::memory_order_seq_cst)) work(index);
      if (active_.fetch_sub(1, std::memory_order_seq_cst) == 1) active_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::atomic<std::uint64_t> generation_{0};
  // Workers inside a round (they may read its fields), whether it is open, which parts are taken.
  std::atomic<int> active_{0};
  std::atomic<bool> open_{false};
  std::unique_ptr<std::atomic<bool>[]> taken_;
  std::size_t taken_size_ = 0;
  std::atomic<bool> busy_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> threads_{1};
  // The round's work: written by the claiming thread before the generation is published.
  void (*call_)(void*, std::size_t) = nullptr;
  void* context_ = nullptr;
  std::size_t parts_ = 0;
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

// Built at the first use: it starts with the thread count the BLAS was given by the environment
// (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, else every core), and from then on the BLAS runs on one.
// Never destroyed, so that no exit path waits on a worker; the workers only ever touch it.
Pool* the_pool = nullptr;

Pool& pool() {
  static Pool& p = []() -> Pool& {
    Pool& made = *new Pool;  // NOLINT: deliberately never freed
    the_pool = &made;
    const int threads = detail::blas_threads();
    detail::set_blas_threads(1);
    pthread_atfork(nullptr, nullptr, [] { the_pool->abandon_after_fork(); });
    const Pool::Claim claim(made);
    try {
      made.resize(threads);
    } catch (const Error&) {  // fewer threads than the environment asked for: run on those
    }
    return made;
  }();
  return p;
}

}  // namespace

void set_num_threads(int threads) {
  // More would be a mistake rather than a machine: every worker answers every round of work.
  constexpr int kMaxThreads = 1024;
  if (threads > kMaxThreads) {
    throw ValueError("xgrad::set_num_threads: " + std::to_string(threads) +
                     " threads is more than the " + std::to_string(kMaxThreads) +
                     " xgrad computes on");
  }
  if (inside_part) {
    throw Error("xgrad::set_num_threads: called from inside xgrad's own parallel work");
  }
  Pool& p = pool();
  const Pool::Claim claim(p);
  p.resize(threads);
}

int get_num_threads() {
  return pool().threads();
}

namespace detail {

int pool_threads() {
  return pool().threads();
}

void run_parallel(std::size_t parts, void (*call)(void*, std::size_t), void* context) {
  if (parts == 0) return;
  Pool& p = pool();
  if (parts == 1 || inside_part || p.threads() == 1 || !p.claim()) {
    for (std::size_t i = 0; i < parts; ++i) call(context, i);
    return;
  }
  struct Release {
    Pool& p;
    ~Release() { p.release(); }
  } release{p};
  p.run(parts, call, context);
}

}  // namespace detail

}  // namespace xgrad
