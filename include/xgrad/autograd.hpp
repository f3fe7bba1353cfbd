#pragma once
// Grad mode and functional gradients.

#include <cstddef>
#include <vector>

#include <xgrad/node.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad {

/// True unless a NoGradGuard is alive on this thread.
bool is_grad_enabled();

/// While alive, operations on this thread record no graph (inference, optimiser updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// True while an AnomalyGuard that turned anomaly mode on is alive on this thread.
bool is_anomaly_enabled();

/// Anomaly mode for this thread while alive (off by default). Ops recorded meanwhile remember
/// the file and line they were called from, and a backward pass run meanwhile throws
/// AnomalyError at the first gradient that is NaN or infinite, naming the op whose backward
/// produced it and that file and line. Off, it costs a flag test per op and per gradient.
class AnomalyGuard {
 public:
  /// Turns anomaly mode on (or, with false, off) until destruction restores the previous mode.
  explicit AnomalyGuard(bool enabled = true);
  ~AnomalyGuard();
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool previous_;
};

/// Graph nodes alive in the process, over all threads: 0 once every graph is freed (a leak
/// check for tests and long runs).
std::size_t live_nodes();

/// Gradients of sum(outputs[i] * grad_outputs[i]) with respect to each of `inputs`, returned
/// without touching any tensor's grad(). grad_outputs may be empty when every output has one
/// element (seed 1). An input the outputs do not depend on raises, or gives zeros when
/// allow_unused is set.
template <class T>
std::vector<Tensor<T>> grad(const std::vector<Tensor<T>>& outputs,
                            const std::vector<Tensor<T>>& inputs,
                            const std::vector<Array<T>>& grad_outputs = {},
                            bool retain_graph = false, bool allow_unused = false);

}  // namespace xgrad
