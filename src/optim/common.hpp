#pragma once
// Helpers shared by the optimiser sources.

#include <charconv>
#include <string>

namespace xgrad::optim::internal {

/// Shortest text that reads back as `value` ("0.1", "-inf", "nan").
inline std::string num(double value) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, res.ptr);
}

}  // namespace xgrad::optim::internal
