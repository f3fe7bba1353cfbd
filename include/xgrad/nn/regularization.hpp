#pragma once
// Penalties added to a loss.

#include <xgrad/nn/module.hpp>
#include <xgrad/ops.hpp>

namespace xgrad::nn {

/// sum of squares of the module's parameters; with include_biases false, parameters whose name
/// ends in "bias" are left out. The usual regularised cost, lambda / (2 m) * sum(theta^2) over
/// the weights of m examples, is `l2_penalty(model, false) * (lambda / (2 * m))`.
template <class T>
Tensor<T> l2_penalty(const Module<T>& module, bool include_biases = false);

}  // namespace xgrad::nn
