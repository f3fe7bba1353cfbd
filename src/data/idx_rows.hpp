#pragma once
// The IDX reader behind read_idx and load_fashion_mnist, which reads only the rows it needs.

#include <cstddef>
#include <cstdint>
#include <string>

#include <xgrad/xt.hpp>

namespace xgrad::data::detail {

/// IDX type codes (the third byte of the magic).
enum IdxType : std::uint8_t {
  kIdxU8 = 0x08,
  kIdxI8 = 0x09,
  kIdxI16 = 0x0B,
  kIdxI32 = 0x0C,
  kIdxF32 = 0x0D,
  kIdxF64 = 0x0E,
};

template <class T>
struct IdxData {
  Array<T> values;
  std::uint8_t type = 0;
};

/// Reads the IDX file at `path`, or only its first `max_rows` rows along dim 0 when max_rows > 0
/// (then bytes after those rows are neither read nor checked). Errors start with `op`.
template <class T>
IdxData<T> read_idx_rows(const char* op, const std::string& path, std::size_t max_rows);

}  // namespace xgrad::data::detail
