#pragma once
// NumPy .npy files (format versions 1.0, 2.0 and 3.0).

#include <string>

#include <xgrad/tensor.hpp>

namespace xgrad::data {

/// Reads a .npy file of booleans, integers (i1..i8, u1..u8) or floats (f4, f8), either byte order,
/// C or Fortran order, converting the values to T. The header is checked before anything is
/// allocated: bad magic, an unknown version, a header running past the end of the file, an
/// unsupported dtype, or a shape that does not match the data present raise IoError naming the
/// path and the byte offset.
template <class T>
Tensor<T> read_npy(const std::string& path);

/// Writes the tensor's value as a little-endian C-order .npy file ('<f4' or '<f8'). The data go to
/// a temporary file next to `path` that replaces it only once complete, so a failed write leaves
/// no half-written file. A symbolic link is written through; an existing file keeps its mode;
/// a `path` that is a device, FIFO or directory is refused and left as it was. Failures raise
/// IoError naming the path.
template <class T>
void write_npy(const Tensor<T>& tensor, const std::string& path);

}  // namespace xgrad::data
