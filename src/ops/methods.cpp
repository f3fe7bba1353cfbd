// Tensor's method spellings of the free operations (x.matmul(w), x.sum(1, true), ...).
// The class's value type is named V here: inside Tensor's scope the name T is the method T().

#include "common.hpp"

namespace xgrad {

template <class V>
Tensor<V> Tensor<V>::matmul(const Tensor& other, Location loc) const {
  return xgrad::matmul(*this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::T(Location loc) const {
  const std::size_t rank = dim();
  if (rank > 2) {
    throw ShapeError("xgrad::T: expects a tensor of at most 2 dims, got shape " +
                     shape_str(shape()) + "; use transpose(dim0, dim1)");
  }
  return rank < 2 ? *this : xgrad::transpose(*this, 0, 1, loc);
}
template <class V>
Tensor<V> Tensor<V>::transpose(int dim0, int dim1, Location loc) const {
  return xgrad::transpose(*this, dim0, dim1, loc);
}
template <class V>
Tensor<V> Tensor<V>::reshape(const Dims& s, Location loc) const {
  return xgrad::reshape(*this, s, loc);
}
template <class V>
Tensor<V> Tensor<V>::flatten(int start_dim, int end_dim, Location loc) const {
  return xgrad::flatten(*this, start_dim, end_dim, loc);
}
template <class V>
Tensor<V> Tensor<V>::unsqueeze(int d, Location loc) const {
  return xgrad::unsqueeze(*this, d, loc);
}
template <class V>
Tensor<V> Tensor<V>::squeeze(Location loc) const {
  return xgrad::squeeze(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::squeeze(int d, Location loc) const {
  return xgrad::squeeze(*this, d, loc);
}
template <class V>
Tensor<V> Tensor<V>::broadcast_to(const Shape& s, Location loc) const {
  return xgrad::broadcast_to(*this, s, loc);
}
template <class V>
Tensor<V> Tensor<V>::index_select(int d, const std::vector<std::size_t>& index,
                                  Location loc) const {
  return xgrad::index_select(*this, d, index, loc);
}
template <class V>
Tensor<V> Tensor<V>::permute(const std::vector<int>& dims, Location loc) const {
  return xgrad::permute(*this, dims, loc);
}

template <class V>
Tensor<V> Tensor<V>::tril(std::int64_t diagonal, Location loc) const {
  return xgrad::tril(*this, diagonal, loc);
}

template <class V>
Tensor<V> Tensor<V>::triu(std::int64_t diagonal, Location loc) const {
  return xgrad::triu(*this, diagonal, loc);
}

template <class V>
Tensor<V> Tensor<V>::masked_fill(const Tensor& mask, V value, Location loc) const {
  return xgrad::masked_fill(*this, mask, value, loc);
}

template <class V>
Tensor<V> Tensor<V>::slice(int d, std::int64_t start, std::int64_t end, std::int64_t step,
                           Location loc) const {
  return xgrad::slice(*this, d, start, end, step, loc);
}

template <class V>
Tensor<V> Tensor<V>::sum(Location loc) const {
  return xgrad::sum(*this, {}, false, loc);
}
template <class V>
Tensor<V> Tensor<V>::sum(int d, bool keepdim, Location loc) const {
  return xgrad::sum(*this, {d}, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::sum(const std::vector<int>& dims, bool keepdim, Location loc) const {
  return xgrad::sum(*this, dims, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::mean(Location loc) const {
  return xgrad::mean(*this, {}, false, loc);
}
template <class V>
Tensor<V> Tensor<V>::mean(int d, bool keepdim, Location loc) const {
  return xgrad::mean(*this, {d}, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::mean(const std::vector<int>& dims, bool keepdim, Location loc) const {
  return xgrad::mean(*this, dims, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::logsumexp(int d, bool keepdim, Location loc) const {
  return xgrad::logsumexp(*this, {d}, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::logsumexp(const std::vector<int>& dims, bool keepdim, Location loc) const {
  return xgrad::logsumexp(*this, dims, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::var(Location loc) const {
  return xgrad::var(*this, {}, V(1), false, loc);
}
template <class V>
Tensor<V> Tensor<V>::var(int d, V correction, bool keepdim, Location loc) const {
  return xgrad::var(*this, {d}, correction, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::var(const std::vector<int>& dims, V correction, bool keepdim,
                         Location loc) const {
  return xgrad::var(*this, dims, correction, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::std(Location loc) const {
  return xgrad::std(*this, {}, V(1), false, loc);
}
template <class V>
Tensor<V> Tensor<V>::std(int d, V correction, bool keepdim, Location loc) const {
  return xgrad::std(*this, {d}, correction, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::std(const std::vector<int>& dims, V correction, bool keepdim,
                         Location loc) const {
  return xgrad::std(*this, dims, correction, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::max(Location loc) const {
  return xgrad::max(*this, {}, false, loc);
}
template <class V>
Tensor<V> Tensor<V>::max(int d, bool keepdim, Location loc) const {
  return xgrad::max(*this, {d}, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::min(Location loc) const {
  return xgrad::min(*this, {}, false, loc);
}
template <class V>
Tensor<V> Tensor<V>::min(int d, bool keepdim, Location loc) const {
  return xgrad::min(*this, {d}, keepdim, loc);
}

template <class V>
Tensor<V> Tensor<V>::neg(Location loc) const {
  return xgrad::neg(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::exp(Location loc) const {
  return xgrad::exp(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::log(Location loc) const {
  return xgrad::log(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::sin(Location loc) const {
  return xgrad::sin(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::cos(Location loc) const {
  return xgrad::cos(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::sqrt(Location loc) const {
  return xgrad::sqrt(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::erf(Location loc) const {
  return xgrad::erf(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::abs(Location loc) const {
  return xgrad::abs(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::pow(V exponent, Location loc) const {
  return xgrad::pow(*this, exponent, loc);
}
template <class V>
Tensor<V> Tensor<V>::pow(const Tensor& exponent, Location loc) const {
  return xgrad::pow(*this, exponent, loc);
}
template <class V>
Tensor<V> Tensor<V>::clamp(V lo, V hi, Location loc) const {
  return xgrad::clamp(*this, lo, hi, loc);
}
template <class V>
Tensor<V> Tensor<V>::sigmoid(Location loc) const {
  return xgrad::sigmoid(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::tanh(Location loc) const {
  return xgrad::tanh(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::relu(Location loc) const {
  return xgrad::relu(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::leaky_relu(V negative_slope, Location loc) const {
  return xgrad::leaky_relu(*this, negative_slope, loc);
}
template <class V>
Tensor<V> Tensor<V>::softmax(int d, Location loc) const {
  return xgrad::softmax(*this, d, loc);
}
template <class V>
Tensor<V> Tensor<V>::log_softmax(int d, Location loc) const {
  return xgrad::log_softmax(*this, d, loc);
}
template <class V>
Tensor<V> Tensor<V>::gelu(bool approximate, Location loc) const {
  return xgrad::gelu(*this, approximate, loc);
}
template <class V>
Tensor<V> Tensor<V>::gelu(const char* approximate, Location loc) const {
  return xgrad::gelu(*this, approximate, loc);
}
template <class V>
Tensor<V> Tensor<V>::silu(Location loc) const {
  return xgrad::silu(*this, loc);
}
template <class V>
Tensor<V> Tensor<V>::softplus(V beta, V threshold, Location loc) const {
  return xgrad::softplus(*this, beta, threshold, loc);
}

// ---- the rest of torch::Tensor's method forms ----

template <class V>
Tensor<V> Tensor<V>::argmax(int d, bool keepdim) const {
  return xgrad::argmax(*this, d, keepdim);
}
template <class V>
Tensor<V> Tensor<V>::argmax() const {
  return xgrad::argmax(xgrad::reshape(*this, {-1}), 0).reshape({});
}
template <class V>
Tensor<V> Tensor<V>::argmin(int d, bool keepdim) const {
  return xgrad::argmin(*this, d, keepdim);
}
template <class V>
Tensor<V> Tensor<V>::argmin() const {
  return xgrad::argmin(xgrad::reshape(*this, {-1}), 0).reshape({});
}
template <class V>
Tensor<V> Tensor<V>::amax(const std::vector<int>& dims, bool keepdim, Location loc) const {
  return xgrad::max(*this, dims, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::amin(const std::vector<int>& dims, bool keepdim, Location loc) const {
  return xgrad::min(*this, dims, keepdim, loc);
}
template <class V>
Tensor<V> Tensor<V>::add(const Tensor& other, Location loc) const {
  return xgrad::add(*this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::add(V s, Location loc) const {
  return xgrad::add(*this, s, loc);
}
template <class V>
Tensor<V> Tensor<V>::sub(const Tensor& other, Location loc) const {
  return xgrad::sub(*this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::sub(V s, Location loc) const {
  return xgrad::add(*this, -s, loc);
}
template <class V>
Tensor<V> Tensor<V>::mul(const Tensor& other, Location loc) const {
  return xgrad::mul(*this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::mul(V s, Location loc) const {
  return xgrad::mul(*this, s, loc);
}
template <class V>
Tensor<V> Tensor<V>::div(const Tensor& other, Location loc) const {
  return xgrad::div(*this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::div(V s, Location loc) const {
  return xgrad::div(*this, s, loc);
}
template <class V>
Tensor<V> Tensor<V>::maximum(const Tensor& other, Location loc) const {
  return xgrad::maximum(*this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::minimum(const Tensor& other, Location loc) const {
  return xgrad::minimum(*this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::where(const Tensor& condition, const Tensor& other, Location loc) const {
  return xgrad::where(condition, *this, other, loc);
}
template <class V>
Tensor<V> Tensor<V>::heaviside(V value_at_zero, Location loc) const {
  return xgrad::heaviside(*this, value_at_zero, loc);
}
template <class V>
Tensor<V> Tensor<V>::gt(const Tensor& other) const {
  return xgrad::gt(*this, other);
}
template <class V>
Tensor<V> Tensor<V>::gt(V s) const {
  return xgrad::gt(*this, Tensor::scalar(s));
}
template <class V>
Tensor<V> Tensor<V>::lt(const Tensor& other) const {
  return xgrad::lt(*this, other);
}
template <class V>
Tensor<V> Tensor<V>::lt(V s) const {
  return xgrad::lt(*this, Tensor::scalar(s));
}
template <class V>
Tensor<V> Tensor<V>::ge(const Tensor& other) const {
  return xgrad::ge(*this, other);
}
template <class V>
Tensor<V> Tensor<V>::ge(V s) const {
  return xgrad::ge(*this, Tensor::scalar(s));
}
template <class V>
Tensor<V> Tensor<V>::le(const Tensor& other) const {
  return xgrad::le(*this, other);
}
template <class V>
Tensor<V> Tensor<V>::le(V s) const {
  return xgrad::le(*this, Tensor::scalar(s));
}
template <class V>
Tensor<V> Tensor<V>::eq(const Tensor& other) const {
  return xgrad::eq(*this, other);
}
template <class V>
Tensor<V> Tensor<V>::eq(V s) const {
  return xgrad::eq(*this, Tensor::scalar(s));
}

#define XGRAD_INSTANTIATE_MORE_METHODS(V)                                            \
  template Tensor<V> Tensor<V>::argmax(int, bool) const;                             \
  template Tensor<V> Tensor<V>::argmax() const;                                      \
  template Tensor<V> Tensor<V>::argmin(int, bool) const;                             \
  template Tensor<V> Tensor<V>::argmin() const;                                      \
  template Tensor<V> Tensor<V>::amax(const std::vector<int>&, bool, Location) const; \
  template Tensor<V> Tensor<V>::amin(const std::vector<int>&, bool, Location) const; \
  template Tensor<V> Tensor<V>::add(const Tensor&, Location) const;                  \
  template Tensor<V> Tensor<V>::add(V, Location) const;                              \
  template Tensor<V> Tensor<V>::sub(const Tensor&, Location) const;                  \
  template Tensor<V> Tensor<V>::sub(V, Location) const;                              \
  template Tensor<V> Tensor<V>::mul(const Tensor&, Location) const;                  \
  template Tensor<V> Tensor<V>::mul(V, Location) const;                              \
  template Tensor<V> Tensor<V>::div(const Tensor&, Location) const;                  \
  template Tensor<V> Tensor<V>::div(V, Location) const;                              \
  template Tensor<V> Tensor<V>::maximum(const Tensor&, Location) const;              \
  template Tensor<V> Tensor<V>::minimum(const Tensor&, Location) const;              \
  template Tensor<V> Tensor<V>::where(const Tensor&, const Tensor&, Location) const; \
  template Tensor<V> Tensor<V>::heaviside(V, Location) const;                        \
  template Tensor<V> Tensor<V>::gt(const Tensor&) const;                             \
  template Tensor<V> Tensor<V>::gt(V) const;                                         \
  template Tensor<V> Tensor<V>::lt(const Tensor&) const;                             \
  template Tensor<V> Tensor<V>::lt(V) const;                                         \
  template Tensor<V> Tensor<V>::ge(const Tensor&) const;                             \
  template Tensor<V> Tensor<V>::ge(V) const;                                         \
  template Tensor<V> Tensor<V>::le(const Tensor&) const;                             \
  template Tensor<V> Tensor<V>::le(V) const;                                         \
  template Tensor<V> Tensor<V>::eq(const Tensor&) const;                             \
  template Tensor<V> Tensor<V>::eq(V) const;

XGRAD_INSTANTIATE_MORE_METHODS(float)
XGRAD_INSTANTIATE_MORE_METHODS(double)
// ---- end of the method forms ----

#define XGRAD_INSTANTIATE_METHODS(V)                                                           \
  template Tensor<V> Tensor<V>::matmul(const Tensor&, Location) const;                         \
  template Tensor<V> Tensor<V>::T(Location) const;                                             \
  template Tensor<V> Tensor<V>::transpose(int, int, Location) const;                           \
  template Tensor<V> Tensor<V>::reshape(const Dims&, Location) const;                          \
  template Tensor<V> Tensor<V>::flatten(int, int, Location) const;                             \
  template Tensor<V> Tensor<V>::unsqueeze(int, Location) const;                                \
  template Tensor<V> Tensor<V>::squeeze(Location) const;                                       \
  template Tensor<V> Tensor<V>::squeeze(int, Location) const;                                  \
  template Tensor<V> Tensor<V>::broadcast_to(const Shape&, Location) const;                    \
  template Tensor<V> Tensor<V>::index_select(int, const std::vector<std::size_t>&, Location)   \
      const;                                                                                   \
  template Tensor<V> Tensor<V>::slice(int, std::int64_t, std::int64_t, std::int64_t, Location) \
      const;                                                                                   \
  template Tensor<V> Tensor<V>::permute(const std::vector<int>&, Location) const;              \
  template Tensor<V> Tensor<V>::tril(std::int64_t, Location) const;                            \
  template Tensor<V> Tensor<V>::triu(std::int64_t, Location) const;                            \
  template Tensor<V> Tensor<V>::masked_fill(const Tensor&, V, Location) const;                 \
  template Tensor<V> Tensor<V>::sum(Location) const;                                           \
  template Tensor<V> Tensor<V>::sum(int, bool, Location) const;                                \
  template Tensor<V> Tensor<V>::sum(const std::vector<int>&, bool, Location) const;            \
  template Tensor<V> Tensor<V>::mean(Location) const;                                          \
  template Tensor<V> Tensor<V>::mean(int, bool, Location) const;                               \
  template Tensor<V> Tensor<V>::mean(const std::vector<int>&, bool, Location) const;           \
  template Tensor<V> Tensor<V>::logsumexp(int, bool, Location) const;                          \
  template Tensor<V> Tensor<V>::logsumexp(const std::vector<int>&, bool, Location) const;      \
  template Tensor<V> Tensor<V>::var(Location) const;                                           \
  template Tensor<V> Tensor<V>::var(int, V, bool, Location) const;                             \
  template Tensor<V> Tensor<V>::var(const std::vector<int>&, V, bool, Location) const;         \
  template Tensor<V> Tensor<V>::std(Location) const;                                           \
  template Tensor<V> Tensor<V>::std(int, V, bool, Location) const;                             \
  template Tensor<V> Tensor<V>::std(const std::vector<int>&, V, bool, Location) const;         \
  template Tensor<V> Tensor<V>::max(Location) const;                                           \
  template Tensor<V> Tensor<V>::max(int, bool, Location) const;                                \
  template Tensor<V> Tensor<V>::min(Location) const;                                           \
  template Tensor<V> Tensor<V>::min(int, bool, Location) const;                                \
  template Tensor<V> Tensor<V>::neg(Location) const;                                           \
  template Tensor<V> Tensor<V>::exp(Location) const;                                           \
  template Tensor<V> Tensor<V>::log(Location) const;                                           \
  template Tensor<V> Tensor<V>::sqrt(Location) const;                                          \
  template Tensor<V> Tensor<V>::sin(Location) const;                                           \
  template Tensor<V> Tensor<V>::cos(Location) const;                                           \
  template Tensor<V> Tensor<V>::erf(Location) const;                                           \
  template Tensor<V> Tensor<V>::abs(Location) const;                                           \
  template Tensor<V> Tensor<V>::pow(V, Location) const;                                        \
  template Tensor<V> Tensor<V>::pow(const Tensor&, Location) const;                            \
  template Tensor<V> Tensor<V>::clamp(V, V, Location) const;                                   \
  template Tensor<V> Tensor<V>::sigmoid(Location) const;                                       \
  template Tensor<V> Tensor<V>::tanh(Location) const;                                          \
  template Tensor<V> Tensor<V>::relu(Location) const;                                          \
  template Tensor<V> Tensor<V>::leaky_relu(V, Location) const;                                 \
  template Tensor<V> Tensor<V>::softmax(int, Location) const;                                  \
  template Tensor<V> Tensor<V>::log_softmax(int, Location) const;                              \
  template Tensor<V> Tensor<V>::gelu(bool, Location) const;                                    \
  template Tensor<V> Tensor<V>::gelu(const char*, Location) const;                             \
  template Tensor<V> Tensor<V>::silu(Location) const;                                          \
  template Tensor<V> Tensor<V>::softplus(V, V, Location) const;

XGRAD_INSTANTIATE_METHODS(float)
XGRAD_INSTANTIATE_METHODS(double)

}  // namespace xgrad
