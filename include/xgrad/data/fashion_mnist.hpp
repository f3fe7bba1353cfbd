#pragma once
// Fashion-MNIST from its four IDX files, as installed by the Debian package dataset-fashion-mnist.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include <xgrad/tensor.hpp>

namespace xgrad::data {

/// Where the Debian package dataset-fashion-mnist installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Names of the ten classes, indexed by label.
inline constexpr std::array<std::string_view, 10> kFashionMnistClasses = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/// Images as [N, 784] with pixels scaled to [0, 1], labels as [N] class indices 0..9.
template <class T>
struct FashionMnist {
  /// [N, 784], pixels in [0, 1].
  Tensor<T> images;
  /// [N], class indices 0..9.
  Tensor<T> labels;
};

/// Loads the training set (60000 samples) or the test set (10000) from `dir`, which holds
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (or the same names without .gz). limit > 0 keeps
/// only the first `limit` samples and decompresses no more than those. A missing file raises
/// IoError naming it; files of the wrong shape or type, or a label outside 0..9, raise IoError.
template <class T>
FashionMnist<T> load_fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true,
                                   std::size_t limit = 0);

}  // namespace xgrad::data
