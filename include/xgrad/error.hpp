#pragma once
// One exception hierarchy for every public entry point. Messages start with the operation
// ("xgrad::matmul: ...") and name the shapes or values at fault.

#include <stdexcept>
#include <string>
#include <vector>

#include <xgrad/shape.hpp>

namespace xgrad {

/// Base of every error xgrad raises on bad input.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shapes that do not fit together (broadcasting, matmul, reshape, reductions over a bad dim).
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A value out of its domain (a label out of range, a probability outside [0, 1], an empty set).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// Misuse of the autograd graph (backward twice, a tensor modified after it was saved).
class GraphError : public Error {
 public:
  using Error::Error;
};

/// Anomaly mode (AnomalyGuard): a backward pass produced a NaN or infinite gradient. The message
/// names the op whose backward produced it and where that op was called from.
class AnomalyError : public GraphError {
 public:
  using GraphError::GraphError;
};

/// Reading or writing a file failed or the file is malformed.
class IoError : public Error {
 public:
  using Error::Error;
};

/// "[3,4]" for a shape, "[]" for a scalar.
std::string shape_str(const Shape& shape);

}  // namespace xgrad
