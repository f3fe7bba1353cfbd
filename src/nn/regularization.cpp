#include <xgrad/nn/regularization.hpp>

namespace xgrad::nn {

template <class T>
Tensor<T> l2_penalty(const Module<T>& module, bool include_biases) {
  Tensor<T> total = Tensor<T>::scalar(T(0));
  for (const auto& [name, p] : module.named_parameters()) {
    const bool is_bias = name == "bias" || (name.size() > 5 && name.ends_with(".bias"));
    if (is_bias && !include_biases) continue;
    total = total + (p * p).sum();
  }
  return total;
}

template Tensor<float> l2_penalty<float>(const Module<float>&, bool);
template Tensor<double> l2_penalty<double>(const Module<double>&, bool);

}  // namespace xgrad::nn
