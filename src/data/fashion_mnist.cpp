#include <filesystem>
#include <string>

#include <xgrad/data/fashion_mnist.hpp>

#include "idx_rows.hpp"
#include "io_util.hpp"

namespace xgrad::data {

namespace {

constexpr const char* kOp = "xgrad::load_fashion_mnist";

/// dir/name.gz, or dir/name when only the uncompressed file is there.
std::string locate(const std::string& dir, const std::string& name) {
  const auto gz = std::filesystem::path(dir) / (name + ".gz");
  const auto plain = std::filesystem::path(dir) / name;
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) return gz.string();
  if (std::filesystem::exists(plain, ec)) return plain.string();
  throw IoError(std::string(kOp) + ": " + gz.string() +
                ": no such file (install the Debian package dataset-fashion-mnist, or pass the "
                "folder holding " +
                name + ".gz)");
}

}  // namespace

template <class T>
FashionMnist<T> load_fashion_mnist(const std::string& dir, bool train, std::size_t limit) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = locate(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = locate(dir, prefix + "-labels-idx1-ubyte");

  auto images = detail::read_idx_rows<T>(kOp, images_path, limit);
  auto labels = detail::read_idx_rows<T>(kOp, labels_path, limit);

  const Shape ishape(images.values.shape().begin(), images.values.shape().end());
  const Shape lshape(labels.values.shape().begin(), labels.values.shape().end());
  if (images.type != detail::kIdxU8 || ishape.size() != 3 || ishape[1] != 28 || ishape[2] != 28) {
    detail::io_fail(kOp, images_path,
                    "expected unsigned-byte images of shape [N,28,28], got " + shape_str(ishape));
  }
  if (labels.type != detail::kIdxU8 || lshape.size() != 1) {
    detail::io_fail(kOp, labels_path,
                    "expected unsigned-byte labels of shape [N], got " + shape_str(lshape));
  }
  if (lshape[0] != ishape[0]) {
    detail::io_fail(kOp, labels_path,
                    std::to_string(lshape[0]) + " labels for " + std::to_string(ishape[0]) +
                        " images in " + images_path);
  }
  const T* l = labels.values.data();
  for (std::size_t i = 0; i < lshape[0]; ++i) {
    if (!(l[i] >= 0 && l[i] <= 9)) {
      detail::io_fail(kOp, labels_path,
                      "label " + std::to_string(static_cast<long long>(l[i])) + " of sample " +
                          std::to_string(i) + " at byte " + std::to_string(8 + i) +
                          " is not a class 0..9");
    }
  }

  Array<T> pixels = std::move(images.values);
  pixels.reshape({ishape[0], std::size_t(28 * 28)});
  pixels /= T(255);
  return {Tensor<T>(std::move(pixels)), Tensor<T>(std::move(labels.values))};
}

template FashionMnist<float> load_fashion_mnist<float>(const std::string&, bool, std::size_t);
template FashionMnist<double> load_fashion_mnist<double>(const std::string&, bool, std::size_t);

}  // namespace xgrad::data
