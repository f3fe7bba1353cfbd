// Class labels as one-hot rows.

#include <cmath>

#include "common.hpp"

namespace xgrad {

namespace {

constexpr const char* kOneHot = "xgrad::one_hot";

/// The column count: num_classes, or the largest label + 1 when it is -1.
std::size_t class_count(const std::vector<std::int64_t>& labels, std::int64_t num_classes) {
  if (num_classes == -1) {
    if (labels.empty()) {
      throw ValueError(std::string(kOneHot) +
                       ": cannot infer the number of classes from no labels; pass num_classes");
    }
    std::int64_t top = labels[0];
    for (auto l : labels) top = std::max(top, l);
    num_classes = top + 1;
  }
  if (num_classes < 1) {
    throw ValueError(std::string(kOneHot) + ": num_classes " + std::to_string(num_classes) +
                     " must be positive (or -1 to infer it)");
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      throw ValueError(std::string(kOneHot) + ": label " + std::to_string(labels[i]) +
                       " at index " + std::to_string(i) + " is not in [0, " +
                       std::to_string(num_classes) + ")");
    }
  }
  return static_cast<std::size_t>(num_classes);
}

template <class T>
Array<T> rows(const std::vector<std::int64_t>& labels, std::size_t classes, Shape shape) {
  shape.push_back(classes);
  detail::check_element_count("one_hot", shape, sizeof(T));
  Array<T> out(shape, T(0));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out.flat(i * classes + static_cast<std::size_t>(labels[i])) = T(1);
  }
  return out;
}

}  // namespace

template <class T>
Tensor<T> one_hot(const std::vector<std::int64_t>& labels, std::int64_t num_classes) {
  const std::size_t classes = class_count(labels, num_classes);
  return Tensor<T>(rows<T>(labels, classes, {labels.size()}));
}

template <class T>
Tensor<T> one_hot(const Tensor<T>& labels, std::int64_t num_classes) {
  const Array<T>& v = labels.value();
  std::vector<std::int64_t> as_int(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const T x = v.flat(i);
    // NOTE: checked before the cast: a NaN or a huge value cast to int64_t is undefined.
    if (!(x >= T(0) && x < T(9.0e15) && x == std::floor(x))) {
      throw ValueError(std::string(kOneHot) + ": label " + std::to_string(x) + " at index " +
                       std::to_string(i) + " of shape " + shape_str(labels.shape()) +
                       " is not a non-negative whole number");
    }
    as_int[i] = static_cast<std::int64_t>(x);
  }
  const std::size_t classes = class_count(as_int, num_classes);
  return Tensor<T>(rows<T>(as_int, classes, labels.shape()));
}

template Tensor<float> one_hot<float>(const std::vector<std::int64_t>&, std::int64_t);
template Tensor<double> one_hot<double>(const std::vector<std::int64_t>&, std::int64_t);
template Tensor<float> one_hot<float>(const Tensor<float>&, std::int64_t);
template Tensor<double> one_hot<double>(const Tensor<double>&, std::int64_t);

}  // namespace xgrad
