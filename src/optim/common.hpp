#pragma once
// Helpers shared by the optimiser sources.

#include <charconv>
#include <cstddef>
#include <string>

#include "core/parallel.hpp"

namespace xgrad::optim::internal {

/// Shortest text that reads back as `value` ("0.1", "-inf", "nan").
inline std::string num(double value) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, res.ptr);
}

/// Runs update(begin, end) over a parameter's elements [0, n), split over xgrad's threads in
/// pieces of at least 4k elements. The pieces are the halves of rows that a product split by rows
/// wrote, so each thread updates the gradient its own cache holds (crossing between cores costs
/// more than the update). Each element's update is independent of the others: the result is
/// the same however it is split. Give it a lambda that captures by value: a scalar captured by
/// reference is a T the stores to the parameter may alias, which keeps the loop from vectorising.
template <class F>
void for_elements(std::size_t n, F&& update) {
  xgrad::detail::parallel_for(n, std::size_t{1} << 12, 16, update);
}

}  // namespace xgrad::optim::internal
