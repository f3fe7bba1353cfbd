// Tensor's method spellings of the free operations (x.matmul(w), x.sum(1, true), ...).
// The class's value type is named V here: inside Tensor's scope the name T is the method T().

#include "common.hpp"

namespace xgrad {

template <class V>
Tensor<V> Tensor<V>::matmul(const Tensor& other) const {
  return xgrad::matmul(*this, other);
}
template <class V>
Tensor<V> Tensor<V>::T() const {
  const std::size_t rank = dim();
  if (rank > 2) {
    throw ShapeError("xgrad::T: expects a tensor of at most 2 dims, got shape " +
                     shape_str(shape()) + "; use transpose(dim0, dim1)");
  }
  return rank < 2 ? *this : xgrad::transpose(*this, 0, 1);
}
template <class V>
Tensor<V> Tensor<V>::transpose(int dim0, int dim1) const {
  return xgrad::transpose(*this, dim0, dim1);
}
template <class V>
Tensor<V> Tensor<V>::reshape(const Dims& s) const {
  return xgrad::reshape(*this, s);
}
template <class V>
Tensor<V> Tensor<V>::flatten(int start_dim, int end_dim) const {
  return xgrad::flatten(*this, start_dim, end_dim);
}
template <class V>
Tensor<V> Tensor<V>::unsqueeze(int d) const {
  return xgrad::unsqueeze(*this, d);
}
template <class V>
Tensor<V> Tensor<V>::squeeze() const {
  return xgrad::squeeze(*this);
}
template <class V>
Tensor<V> Tensor<V>::squeeze(int d) const {
  return xgrad::squeeze(*this, d);
}
template <class V>
Tensor<V> Tensor<V>::broadcast_to(const Shape& s) const {
  return xgrad::broadcast_to(*this, s);
}
template <class V>
Tensor<V> Tensor<V>::index_select(int d, const std::vector<std::size_t>& index) const {
  return xgrad::index_select(*this, d, index);
}
template <class V>
Tensor<V> Tensor<V>::slice(int d, std::int64_t start, std::int64_t end, std::int64_t step) const {
  return xgrad::slice(*this, d, start, end, step);
}

template <class V>
Tensor<V> Tensor<V>::sum() const {
  return xgrad::sum(*this);
}
template <class V>
Tensor<V> Tensor<V>::sum(int d, bool keepdim) const {
  return xgrad::sum(*this, {d}, keepdim);
}
template <class V>
Tensor<V> Tensor<V>::sum(const std::vector<int>& dims, bool keepdim) const {
  return xgrad::sum(*this, dims, keepdim);
}
template <class V>
Tensor<V> Tensor<V>::mean() const {
  return xgrad::mean(*this);
}
template <class V>
Tensor<V> Tensor<V>::mean(int d, bool keepdim) const {
  return xgrad::mean(*this, {d}, keepdim);
}
template <class V>
Tensor<V> Tensor<V>::mean(const std::vector<int>& dims, bool keepdim) const {
  return xgrad::mean(*this, dims, keepdim);
}
template <class V>
Tensor<V> Tensor<V>::max() const {
  return xgrad::max(*this);
}
template <class V>
Tensor<V> Tensor<V>::max(int d, bool keepdim) const {
  return xgrad::max(*this, {d}, keepdim);
}
template <class V>
Tensor<V> Tensor<V>::min() const {
  return xgrad::min(*this);
}
template <class V>
Tensor<V> Tensor<V>::min(int d, bool keepdim) const {
  return xgrad::min(*this, {d}, keepdim);
}

template <class V>
Tensor<V> Tensor<V>::neg() const {
  return xgrad::neg(*this);
}
template <class V>
Tensor<V> Tensor<V>::exp() const {
  return xgrad::exp(*this);
}
template <class V>
Tensor<V> Tensor<V>::log() const {
  return xgrad::log(*this);
}
template <class V>
Tensor<V> Tensor<V>::sqrt() const {
  return xgrad::sqrt(*this);
}
template <class V>
Tensor<V> Tensor<V>::abs() const {
  return xgrad::abs(*this);
}
template <class V>
Tensor<V> Tensor<V>::pow(V exponent) const {
  return xgrad::pow(*this, exponent);
}
template <class V>
Tensor<V> Tensor<V>::pow(const Tensor& exponent) const {
  return xgrad::pow(*this, exponent);
}
template <class V>
Tensor<V> Tensor<V>::clamp(V lo, V hi) const {
  return xgrad::clamp(*this, lo, hi);
}
template <class V>
Tensor<V> Tensor<V>::sigmoid() const {
  return xgrad::sigmoid(*this);
}
template <class V>
Tensor<V> Tensor<V>::tanh() const {
  return xgrad::tanh(*this);
}
template <class V>
Tensor<V> Tensor<V>::relu() const {
  return xgrad::relu(*this);
}
template <class V>
Tensor<V> Tensor<V>::leaky_relu(V negative_slope) const {
  return xgrad::leaky_relu(*this, negative_slope);
}
template <class V>
Tensor<V> Tensor<V>::softmax(int d) const {
  return xgrad::softmax(*this, d);
}
template <class V>
Tensor<V> Tensor<V>::log_softmax(int d) const {
  return xgrad::log_softmax(*this, d);
}

#define XGRAD_INSTANTIATE_METHODS(V)                                                        \
  template Tensor<V> Tensor<V>::matmul(const Tensor&) const;                                \
  template Tensor<V> Tensor<V>::T() const;                                                  \
  template Tensor<V> Tensor<V>::transpose(int, int) const;                                  \
  template Tensor<V> Tensor<V>::reshape(const Dims&) const;                                 \
  template Tensor<V> Tensor<V>::flatten(int, int) const;                                    \
  template Tensor<V> Tensor<V>::unsqueeze(int) const;                                       \
  template Tensor<V> Tensor<V>::squeeze() const;                                            \
  template Tensor<V> Tensor<V>::squeeze(int) const;                                         \
  template Tensor<V> Tensor<V>::broadcast_to(const Shape&) const;                           \
  template Tensor<V> Tensor<V>::index_select(int, const std::vector<std::size_t>&) const;   \
  template Tensor<V> Tensor<V>::slice(int, std::int64_t, std::int64_t, std::int64_t) const; \
  template Tensor<V> Tensor<V>::sum() const;                                                \
  template Tensor<V> Tensor<V>::sum(int, bool) const;                                       \
  template Tensor<V> Tensor<V>::sum(const std::vector<int>&, bool) const;                   \
  template Tensor<V> Tensor<V>::mean() const;                                               \
  template Tensor<V> Tensor<V>::mean(int, bool) const;                                      \
  template Tensor<V> Tensor<V>::mean(const std::vector<int>&, bool) const;                  \
  template Tensor<V> Tensor<V>::max() const;                                                \
  template Tensor<V> Tensor<V>::max(int, bool) const;                                       \
  template Tensor<V> Tensor<V>::min() const;                                                \
  template Tensor<V> Tensor<V>::min(int, bool) const;                                       \
  template Tensor<V> Tensor<V>::neg() const;                                                \
  template Tensor<V> Tensor<V>::exp() const;                                                \
  template Tensor<V> Tensor<V>::log() const;                                                \
  template Tensor<V> Tensor<V>::sqrt() const;                                               \
  template Tensor<V> Tensor<V>::abs() const;                                                \
  template Tensor<V> Tensor<V>::pow(V) const;                                               \
  template Tensor<V> Tensor<V>::pow(const Tensor&) const;                                   \
  template Tensor<V> Tensor<V>::clamp(V, V) const;                                          \
  template Tensor<V> Tensor<V>::sigmoid() const;                                            \
  template Tensor<V> Tensor<V>::tanh() const;                                               \
  template Tensor<V> Tensor<V>::relu() const;                                               \
  template Tensor<V> Tensor<V>::leaky_relu(V) const;                                        \
  template Tensor<V> Tensor<V>::softmax(int) const;                                         \
  template Tensor<V> Tensor<V>::log_softmax(int) const;

XGRAD_INSTANTIATE_METHODS(float)
XGRAD_INSTANTIATE_METHODS(double)

}  // namespace xgrad
