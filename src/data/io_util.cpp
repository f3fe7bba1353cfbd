#include "io_util.hpp"

#include <cstddef>
#include <filesystem>
#include <limits>
#include <system_error>

namespace xgrad::data::detail {

void io_fail(const char* op, const std::string& path, const std::string& what) {
  throw IoError(std::string(op) + ": " + path + ": " + what);
}

std::uint64_t regular_file_size(const char* op, const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) io_fail(op, path, "no such file");
  if (!std::filesystem::is_regular_file(status)) io_fail(op, path, "not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) io_fail(op, path, "cannot read its size: " + ec.message());
  return size;
}

bool checked_product(const std::vector<std::uint64_t>& dims, std::uint64_t& out) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
  std::uint64_t nonzero = 1;
  bool empty = false;
  for (auto d : dims) {
    if (d == 0) {
      empty = true;
    } else if (!checked_mul(nonzero, d, nonzero) || nonzero > kMax) {
      return false;
    }
  }
  out = empty ? 0 : nonzero;
  return true;
}

std::string dims_str(const std::vector<std::uint64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

}  // namespace xgrad::data::detail
