#pragma once
/// @file
/// The shape of a tensor, without the arrays themselves (which need xgrad/xt.hpp).

#include <cstddef>
#include <vector>

namespace xgrad {

/// A tensor shape: one extent per dimension.
using Shape = std::vector<std::size_t>;

}  // namespace xgrad
