#pragma once
// Grad mode and functional gradients.

#include <cstddef>
#include <functional>
#include <optional>
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

/// While alive, operations on this thread record a graph again, even inside a NoGradGuard
/// (torch.enable_grad).
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

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

/// Runs `fn` once the backward pass running on this thread has finished its sweep and every
/// leaf's grad() is final, before backward() or grad() returns (PyTorch's
/// `Variable._execution_engine.queue_callback`). Called from a hook of that pass: a gradient hook
/// or a post-accumulate hook, as distributed training does to wait for its last gradient
/// exchange. Callbacks run in the order queued and may queue more; an exception from one ends
/// the pass with it (grad() keeps what the pass committed). GraphError when no pass is running
/// on this thread.
void queue_callback(std::function<void()> fn);

/// Options of grad().
struct GradOptions {
  /// Keep the graph for another pass. Default: create_graph.
  std::optional<bool> retain_graph = std::nullopt;
  /// Record the gradients, so that they can be differentiated again (to any order).
  bool create_graph = false;
  /// An input the outputs do not depend on gets a zero gradient instead of an error.
  bool allow_unused = false;
};

/// Gradients of sum(outputs[i] * grad_outputs[i]) with respect to each of `inputs`, returned
/// without touching any tensor's grad(). grad_outputs may be empty when every output has one
/// element (seed 1); they may require grad themselves. Only the part of the graph between the
/// outputs and the inputs is run. With grad_outputs the options are not optional (write {} for
/// the defaults), so that a braced list in third place always means the options:
/// grad({y}, {x}, {v}, {}) and grad({loss}, {x}, {.create_graph = true}).
template <class T>
std::vector<Tensor<T>> grad(const std::vector<Tensor<T>>& outputs,
                            const std::vector<Tensor<T>>& inputs,
                            const std::vector<Tensor<T>>& grad_outputs, GradOptions options);

/// grad() with seed 1 for one-element outputs.
template <class T>
std::vector<Tensor<T>> grad(const std::vector<Tensor<T>>& outputs,
                            const std::vector<Tensor<T>>& inputs, GradOptions options = {}) {
  return grad<T>(outputs, inputs, std::vector<Tensor<T>>{}, options);
}

// Braced lists ({loss}, {x}) deduce no template argument: these take them for both types.
#define XGRAD_GRAD_OVERLOADS(T)                                                    \
  inline std::vector<Tensor<T>> grad(                                              \
      const std::vector<Tensor<T>>& outputs, const std::vector<Tensor<T>>& inputs, \
      const std::vector<Tensor<T>>& grad_outputs, GradOptions options) {           \
    return grad<T>(outputs, inputs, grad_outputs, options);                        \
  }                                                                                \
  inline std::vector<Tensor<T>> grad(const std::vector<Tensor<T>>& outputs,        \
                                     const std::vector<Tensor<T>>& inputs,         \
                                     GradOptions options = {}) {                   \
    return grad<T>(outputs, inputs, std::vector<Tensor<T>>{}, options);            \
  }
XGRAD_GRAD_OVERLOADS(float)
XGRAD_GRAD_OVERLOADS(double)
#undef XGRAD_GRAD_OVERLOADS

}  // namespace xgrad
