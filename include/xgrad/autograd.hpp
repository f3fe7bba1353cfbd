#pragma once
// Grad mode and functional gradients.

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
