#pragma once
// Helpers shared by the op families: shape checks that raise named errors, and dim handling.

#include <string>
#include <vector>

#include <xgrad/error.hpp>
#include <xgrad/node.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/profiler.hpp>

namespace xgrad::ops {

/// An op's entry, made first in its body: times the op while a profiler records this thread,
/// and is the OpName that record() takes, so that the op's name is written once.
struct Entry : OpName {
  Entry(const char* n, Location w) : OpName(n, w), region(n) {}
  profiler::record_function region;
};

template <class S>
Shape to_shape(const S& s) {
  return Shape(s.begin(), s.end());
}

template <class T>
std::string shape_of(const Array<T>& a) {
  return shape_str(to_shape(a.shape()));
}

/// A tensor's shape for an error message, or "(none)" for an optional tensor left undefined.
template <class T>
std::string shape_or_none(const Tensor<T>& t) {
  return t.defined() ? shape_str(t.shape()) : std::string("(none)");
}

/// NumPy broadcast of two shapes, or a ShapeError naming `op`.
template <class SA, class SB>
Shape broadcast_shapes(const char* op, const SA& a, const SB& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(std::string("xgrad::") + op + ": shapes " + shape_str(to_shape(a)) +
                       " and " + shape_str(to_shape(b)) + " cannot be broadcast together");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// Maps a possibly negative dim into [0, rank), or raises a ShapeError naming `op`.
inline std::size_t normalize_dim(const char* op, int dim, std::size_t rank, const Shape& shape) {
  const int r = static_cast<int>(rank);
  if (dim < -r || dim >= r) {
    throw ShapeError(std::string("xgrad::") + op + ": dim " + std::to_string(dim) +
                     " is out of range for a tensor of shape " + shape_str(shape));
  }
  return static_cast<std::size_t>(dim < 0 ? dim + r : dim);
}

/// Sorted, unique, non-negative dims; empty input means every dim.
inline std::vector<std::size_t> normalize_dims(const char* op, const std::vector<int>& dims,
                                               const Shape& shape) {
  std::vector<std::size_t> out;
  out.reserve(dims.empty() ? shape.size() : dims.size());
  if (dims.empty()) {
    for (std::size_t i = 0; i < shape.size(); ++i) out.push_back(i);
    return out;
  }
  for (int d : dims) {
    const std::size_t n = normalize_dim(op, d, shape.size(), shape);
    for (std::size_t seen : out) {
      if (seen == n) {
        throw ShapeError(std::string("xgrad::") + op + ": dim " + std::to_string(d) +
                         " appears twice for a tensor of shape " + shape_str(shape));
      }
    }
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The shape a reduction over `dims` keeps: the reduced extents become 1.
inline Shape keepdim_shape(const Shape& shape, const std::vector<std::size_t>& dims) {
  Shape out = shape;
  for (std::size_t d : dims) out[d] = 1;
  return out;
}

/// The shape a reduction over `dims` produces.
inline Shape reduced_shape(const Shape& shape, const std::vector<std::size_t>& dims, bool keepdim) {
  if (keepdim) return keepdim_shape(shape, dims);
  Shape out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (std::find(dims.begin(), dims.end(), i) == dims.end()) out.push_back(shape[i]);
  }
  return out;
}

}  // namespace xgrad::ops
