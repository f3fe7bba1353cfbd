#pragma once
// Helpers shared by the viz writers: locale-independent number text and the atomic file write.

#include <charconv>
#include <string>
#include <string_view>

namespace xgrad::viz::detail {

/// `value` with exactly `decimals` decimals, whatever the C locale says ("nan", "inf" too).
inline std::string fixed(double value, int decimals) {
  char buf[512];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed, decimals);
  if (res.ec != std::errc{}) {
    const auto sci = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific, 3);
    return std::string(buf, sci.ptr);
  }
  return std::string(buf, res.ptr);
}

/// Shortest text that reads back as `value` ("0.001", "1e-05", "100").
inline std::string shortest(double value) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, res.ptr);
}

/// Writes `bytes` to `path + ".tmp"` and renames it onto `path`, so readers never see a partial
/// file. Raises IoError "xgrad::<op>: cannot write '<path>': <reason>" and removes the temporary.
void write_file_atomic(const std::string& path, std::string_view bytes, const char* op);

}  // namespace xgrad::viz::detail
