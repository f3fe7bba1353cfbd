#pragma once
/// @file
/// An op-level profiler in the spirit of torch.profiler's key_averages(): while a Profile is
/// alive, every op of its thread (forward and derivative separately), every region a
/// record_function names and every matrix product are counted and timed.
///
/// Off, the cost is one thread-local pointer read per op, per product and per array allocation.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xgrad::profiler {

namespace detail {
struct Recorder;
/// The recorder of this thread while a Profile records it, null otherwise.
extern thread_local constinit Recorder* active;
/// Opens a timed region on `r`.
void enter(Recorder* r, std::string_view name, bool backward);
/// Closes the innermost region of `r`.
void leave(Recorder* r) noexcept;
/// Counts a matrix product C[m,n] = op(A)[m,k] op(B)[k,n] in the innermost region.
void product(bool is_double, bool trans_a, bool trans_b, std::size_t m, std::size_t n,
             std::size_t k) noexcept;
/// Counts an array allocation of `bytes` in the innermost region.
void allocation(std::size_t bytes) noexcept;
}  // namespace detail

/// Times the region from its construction to its destruction under `name` while a Profile
/// records this thread; does nothing otherwise. The ops use it, and so can a user for a part of
/// a step ("data", "augment"): a region's total includes the ops and regions inside it, its self
/// time does not.
class record_function {
 public:
  /// Opens a region (the name is copied only the first time it is seen).
  explicit record_function(std::string_view name, bool backward = false)
      : recorder_(detail::active) {
    if (recorder_ != nullptr) [[unlikely]]
      detail::enter(recorder_, name, backward);
  }
  /// Closes it (unless the Profile stopped, or was destroyed, meanwhile).
  ~record_function() {
    if (recorder_ != nullptr && recorder_ == detail::active) [[unlikely]]
      detail::leave(recorder_);
  }
  record_function(const record_function&) = delete;
  record_function& operator=(const record_function&) = delete;

 private:
  detail::Recorder* recorder_;
};

/// What a Profile recorded for one name and pass.
struct Event {
  /// The op ("matmul"), the engine's own work ("backward pass"), or a record_function's name.
  std::string name;
  /// True for an op's derivative, run by backward().
  bool backward = false;
  /// Times entered.
  std::uint64_t calls = 0;
  /// Seconds inside, including the regions inside it (counted once under recursion).
  double total_time = 0;
  /// Seconds inside, excluding the regions inside it.
  double self_time = 0;
  /// Multiply-adds x 2 of the matrix products run directly by it (not by regions inside).
  double flops = 0;
  /// Bytes of arrays allocated directly by it (whether or not the memory pool had the block).
  std::uint64_t allocated_bytes = 0;
  /// "matmul" or "matmul (backward)".
  std::string label() const { return backward ? name + " (backward)" : name; }
};

/// A matrix product shape the profile saw, and how often.
struct ProductShape {
  /// Double precision (else float).
  bool is_double = false;
  /// op(A) = A^T.
  bool trans_a = false;
  /// op(B) = B^T.
  bool trans_b = false;
  /// Rows of C.
  std::size_t m = 0;
  /// Columns of C.
  std::size_t n = 0;
  /// The inner dimension.
  std::size_t k = 0;
  /// Times run.
  std::uint64_t calls = 0;
};

/// Records the ops of the calling thread from construction until stop() or destruction, like
/// `with torch.profiler.profile() as prof:`. One Profile at a time per thread; create, stop and
/// destroy it on the same thread (destroyed on another, it leaves its recorder behind, and the
/// thread it recorded stops recording at its next op).
///
///     xgrad::profiler::Profile prof;
///     for (int i = 0; i < 20; ++i) train_step();
///     prof.stop();
///     std::cout << prof.table(15);
class Profile {
 public:
  /// Starts recording this thread. Error if a Profile already records it.
  Profile();
  /// Stops recording if still recording.
  ~Profile();
  Profile(const Profile&) = delete;
  Profile& operator=(const Profile&) = delete;

  /// Stops recording; what was recorded stays readable. Error on another thread than the one
  /// that started it; a second stop() does nothing.
  void stop();
  /// True until stop().
  bool recording() const;
  /// Seconds from construction to stop() (or to now, while recording).
  double wall_time() const;
  /// Seconds recorded outside any op or region (the caller's own code).
  double outside_time() const;
  /// One Event per name and pass, by self time, longest first.
  std::vector<Event> key_averages() const;
  /// Every matrix product shape seen, most frequent first.
  std::vector<ProductShape> products() const;
  /// Flops (2 x multiply-adds) of every matrix product seen.
  double total_flops() const;
  /// The GEMM floor of what was recorded: seconds the same products take through the BLAS alone
  /// (cblas_sgemm/dgemm at the current thread count, each shape timed `repeats` times after a
  /// warm-up, the fastest kept). Runs the products, so call it after stop(), while no other
  /// thread computes (the BLAS's own threading is on for its duration). Error while recording
  /// or when repeats is 0.
  double gemm_floor(std::size_t repeats = 3) const;
  /// A table of key_averages(): calls, self and total time, mean total per call, self share of
  /// the wall time, GFLOP and GFLOP/s of the products, MiB allocated; the first `row_limit` rows
  /// (all when 0), then the time outside any op and the totals.
  std::string table(std::size_t row_limit = 0) const;

 private:
  std::unique_ptr<detail::Recorder> recorder_;
};

}  // namespace xgrad::profiler
