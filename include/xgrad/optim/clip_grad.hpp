#pragma once
// Gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_ with error_if_nonfinite.

#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad::optim {

/// The norm of order norm_type (> 0, or infinity for the largest magnitude) of all the
/// parameters' gradients taken together, computed in double; parameters without a gradient are
/// skipped (0 when none has one). When max_norm / (total + 1e-6) < 1 every gradient is scaled
/// in place by that factor, as torch does. Returns the total before scaling. Raises ValueError
/// for max_norm < 0 or NaN, a bad norm_type, or a non-finite total (gradients left unchanged).
template <class T>
T clip_grad_norm_(const std::vector<Tensor<T>>& params, double max_norm, double norm_type = 2);

/// Compiled into the library for float.
extern template float clip_grad_norm_<float>(const std::vector<Tensor<float>>&, double, double);
/// Compiled into the library for double.
extern template double clip_grad_norm_<double>(const std::vector<Tensor<double>>&, double, double);

}  // namespace xgrad::optim
