#pragma once
// IDX files, the format of MNIST and Fashion-MNIST: a 4-byte magic (0x0000, a type code, the
// number of dims), big-endian uint32 dims, then the big-endian values in row-major order.

#include <string>

#include <xgrad/tensor.hpp>

namespace xgrad::data {

/// Reads an IDX file, plain or gzip-compressed (told apart by the gzip magic bytes 1f 8b). Values
/// of any IDX type (u8, i8, i16, i32, f32, f64) are converted to T; the shape is the file's dims.
/// A malformed file (bad magic, unknown type, 0 or more than 8 dims, an element count that
/// overflows, truncated data, trailing bytes) raises IoError naming the path and the byte offset.
template <class T>
Tensor<T> read_idx(const std::string& path);

}  // namespace xgrad::data
