#pragma once
/// @file
/// Processes that train together, and the collectives between them, over MPI (which no xgrad
/// header includes: a program links xgrad::distributed, not MPI itself).

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <xgrad/error.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad::dist {

/// A collective that failed (an MPI error), naming the collective and the rank.
class DistributedError : public Error {
 public:
  using Error::Error;
};

/// How all_reduce combines the processes' values.
enum class ReduceOp {
  sum,   ///< the sum over processes
  mean,  ///< the sum divided by the number of processes
};

/// A non-blocking collective in flight (all_reduce_async). Its buffer must stay alive and
/// untouched until wait() returns or test() returns true.
class Work {
 public:
  /// A completed, empty collective.
  Work();
  /// Waits for a collective still in flight (its buffer is being written).
  ~Work();
  /// Takes over other's collective.
  Work(Work&& other) noexcept;
  /// Waits for this one's collective, then takes over other's.
  Work& operator=(Work&& other) noexcept;
  /// True once the collective has completed (and lets MPI make progress on it meanwhile).
  bool test();
  /// Blocks until the collective has completed; a second call returns at once.
  void wait();

 private:
  friend class ProcessGroup;
  struct State;
  std::unique_ptr<State> state_;
};

/// The processes of one job (MPI_COMM_WORLD, duplicated so that xgrad's messages never mix with
/// the program's own MPI traffic). Copies share the communicator. Every collective must be
/// called by every process of the group, in the same order; errors raise DistributedError.
/// Collectives are called from one thread at a time.
class ProcessGroup {
 public:
  /// This process's number, 0..size()-1.
  int rank() const;
  /// The number of processes.
  int size() const;

  /// Combines `data` elementwise over all processes, in place (every process gets the result).
  template <class T>
  void all_reduce(std::span<T> data, ReduceOp op = ReduceOp::sum) const;
  /// all_reduce of a tensor's value, in place (a write through mutable_value()).
  template <class T>
  void all_reduce(Tensor<T>& tensor, ReduceOp op = ReduceOp::sum) const;
  /// Starts all_reduce (sum) of `data` without waiting for it.
  template <class T>
  Work all_reduce_async(std::span<T> data) const;
  /// Copies `root`'s `data` into every other process's `data` (same size everywhere).
  template <class T>
  void broadcast(std::span<T> data, int root = 0) const;
  /// broadcast of a tensor's value, in place; every process's tensor must have root's shape.
  template <class T>
  void broadcast(Tensor<T>& tensor, int root = 0) const;
  /// Every process's `data` (each of the same size), concatenated in rank order.
  template <class T>
  std::vector<T> all_gather(std::span<const T> data) const;
  /// Returns once every process has called it.
  void barrier() const;

  /// "rank 1 of 2", for messages.
  std::string describe() const;

  /// Internal: made by init().
  struct Impl;
  /// Internal: made by init().
  explicit ProcessGroup(std::shared_ptr<Impl> impl);

 private:
  std::shared_ptr<Impl> impl_;
};

/// Starts MPI (once per process; a program that already started it keeps its own) and returns
/// the group of all the job's processes. MPI started here is finalised when the process exits
/// normally (after main returns).
/// Run the program with `mpirun -np N program ...`; started on its own it is a group of one.
ProcessGroup init(int& argc, char**& argv);
/// init() for a program that does not pass its arguments on.
ProcessGroup init();

}  // namespace xgrad::dist
