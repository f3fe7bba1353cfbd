#pragma once
// Parameter initialisers, in place and seeded (torch.nn.init). Each takes the tensor handle by
// value (a handle shares its value, so `xavier_uniform_(fc.weight())` fills the layer's weight),
// writes through mutable_value() and returns the handle. Call them before the parameter is used in
// a graph.

#include <xgrad/tensor.hpp>

namespace xgrad::nn::init {

/// All zeros.
template <class T>
Tensor<T> zeros_(Tensor<T> t);
/// All `value`.
template <class T>
Tensor<T> constant_(Tensor<T> t, Scalar<T> value);
/// U(a, b).
template <class T>
Tensor<T> uniform_(Tensor<T> t, Scalar<T> a, Scalar<T> b, Generator& gen = default_generator());
/// N(mean, std^2).
template <class T>
Tensor<T> normal_(Tensor<T> t, Scalar<T> mean, Scalar<T> std, Generator& gen = default_generator());
/// Glorot: U(-g sqrt(6 / (fan_in + fan_out)), +...).
template <class T>
Tensor<T> xavier_uniform_(Tensor<T> t, Scalar<T> gain = Scalar<T>(1),
                          Generator& gen = default_generator());
/// Glorot: N(0, g^2 2 / (fan_in + fan_out)).
template <class T>
Tensor<T> xavier_normal_(Tensor<T> t, Scalar<T> gain = Scalar<T>(1),
                         Generator& gen = default_generator());
/// He: U(-b, b), b = gain sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) (a: leaky slope).
template <class T>
Tensor<T> kaiming_uniform_(Tensor<T> t, Scalar<T> a = Scalar<T>(0),
                           Generator& gen = default_generator());
/// He: N(0, gain^2 / fan_in).
template <class T>
Tensor<T> kaiming_normal_(Tensor<T> t, Scalar<T> a = Scalar<T>(0),
                          Generator& gen = default_generator());

/// (fan_in, fan_out) of a weight shaped [out, in] (or [out, in, ...]); a 1-D tensor has
/// fan_in = fan_out = its size.
std::pair<std::size_t, std::size_t> fans(const Shape& shape);

}  // namespace xgrad::nn::init
