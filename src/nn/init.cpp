#include <cmath>
#include <random>

#include <xgrad/nn/init.hpp>

namespace xgrad::nn::init {

std::pair<std::size_t, std::size_t> fans(const Shape& shape) {
  if (shape.empty()) {
    throw ShapeError("xgrad::nn::init: fan in and fan out are undefined for a 0-d tensor");
  }
  if (shape.size() == 1) return {shape[0], shape[0]};
  std::size_t receptive = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  return {shape[1] * receptive, shape[0] * receptive};
}

namespace {
template <class T, class Dist>
void fill(Tensor<T>& t, Dist dist, Generator& gen) {
  for (auto& v : t.mutable_value()) v = static_cast<T>(dist(gen.engine()));
}

double leaky_gain(double a) {
  return std::sqrt(2.0 / (1.0 + a * a));
}
}  // namespace

template <class T>
Tensor<T> zeros_(Tensor<T> t) {
  t.mutable_value().fill(T(0));
  return t;
}

template <class T>
Tensor<T> constant_(Tensor<T> t, Scalar<T> value) {
  t.mutable_value().fill(value);
  return t;
}

template <class T>
Tensor<T> uniform_(Tensor<T> t, Scalar<T> a, Scalar<T> b, Generator& gen) {
  if (!(a <= b)) {
    throw ValueError("xgrad::nn::init::uniform_: lower bound " + std::to_string(a) +
                     " exceeds upper bound " + std::to_string(b));
  }
  fill(t, std::uniform_real_distribution<double>(a, b), gen);
  return t;
}

template <class T>
Tensor<T> normal_(Tensor<T> t, Scalar<T> mean, Scalar<T> std, Generator& gen) {
  if (!(std >= T(0))) {
    throw ValueError("xgrad::nn::init::normal_: std " + std::to_string(std) + " is negative");
  }
  fill(t, std::normal_distribution<double>(mean, std), gen);
  return t;
}

template <class T>
Tensor<T> xavier_uniform_(Tensor<T> t, Scalar<T> gain, Generator& gen) {
  const auto [in, out] = fans(t.shape());
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  fill(t, std::uniform_real_distribution<double>(-bound, bound), gen);
  return t;
}

template <class T>
Tensor<T> xavier_normal_(Tensor<T> t, Scalar<T> gain, Generator& gen) {
  const auto [in, out] = fans(t.shape());
  fill(t, std::normal_distribution<double>(0.0, gain * std::sqrt(2.0 / double(in + out))), gen);
  return t;
}

template <class T>
Tensor<T> kaiming_uniform_(Tensor<T> t, Scalar<T> a, Generator& gen) {
  const double bound = leaky_gain(a) * std::sqrt(3.0 / static_cast<double>(fans(t.shape()).first));
  fill(t, std::uniform_real_distribution<double>(-bound, bound), gen);
  return t;
}

template <class T>
Tensor<T> kaiming_normal_(Tensor<T> t, Scalar<T> a, Generator& gen) {
  const double std = leaky_gain(a) / std::sqrt(static_cast<double>(fans(t.shape()).first));
  fill(t, std::normal_distribution<double>(0.0, std), gen);
  return t;
}

#define XGRAD_INSTANTIATE_INIT(T)                                   \
  template Tensor<T> zeros_<T>(Tensor<T>);                          \
  template Tensor<T> constant_<T>(Tensor<T>, T);                    \
  template Tensor<T> uniform_<T>(Tensor<T>, T, T, Generator&);      \
  template Tensor<T> normal_<T>(Tensor<T>, T, T, Generator&);       \
  template Tensor<T> xavier_uniform_<T>(Tensor<T>, T, Generator&);  \
  template Tensor<T> xavier_normal_<T>(Tensor<T>, T, Generator&);   \
  template Tensor<T> kaiming_uniform_<T>(Tensor<T>, T, Generator&); \
  template Tensor<T> kaiming_normal_<T>(Tensor<T>, T, Generator&);

XGRAD_INSTANTIATE_INIT(float)
XGRAD_INSTANTIATE_INIT(double)

}  // namespace xgrad::nn::init
