#pragma once
// Helpers shared by the file readers of src/data: error messages, checked sizes, byte order.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <xgrad/error.hpp>

namespace xgrad::data::detail {

/// Throws IoError("<op>: <path>: <what>").
[[noreturn]] void io_fail(const char* op, const std::string& path, const std::string& what);

/// Size of a regular file; IoError when it is missing or not a regular file.
std::uint64_t regular_file_size(const char* op, const std::string& path);

/// a * b, or false when it overflows.
inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_mul_overflow(a, b, &out);
}

/// Product of the dims, or false when the product of the non-zero dims exceeds PTRDIFF_MAX. A zero
/// dim makes the product 0, but the other dims still count: xtensor's strides are products of
/// trailing dims in ptrdiff_t, so [0, 2^32, 2^32] would overflow them although it holds nothing.
bool checked_product(const std::vector<std::uint64_t>& dims, std::uint64_t& out);

/// "[2,3]" for dims read from a file.
std::string dims_str(const std::vector<std::uint64_t>& dims);

/// The U stored at p in the given byte order.
template <class U>
U load_as(const unsigned char* p, bool big_endian) {
  unsigned char b[sizeof(U)];
  std::memcpy(b, p, sizeof(U));
  if (sizeof(U) > 1 && big_endian != (std::endian::native == std::endian::big)) {
    std::reverse(b, b + sizeof(U));
  }
  U v;
  std::memcpy(&v, b, sizeof(U));
  return v;
}

/// Converts n values of type U stored at src in the given byte order into dst.
template <class U, class T>
void convert_values(const unsigned char* src, std::size_t n, bool big_endian, T* dst) {
  for (std::size_t i = 0; i < n; ++i) {
    dst[i] = static_cast<T>(load_as<U>(src + i * sizeof(U), big_endian));
  }
}

}  // namespace xgrad::data::detail
