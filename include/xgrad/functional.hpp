#pragma once
// Higher-order helpers over a function of tensors, as torch.autograd.functional offers them:
// vector-Jacobian and Hessian-vector products, full Jacobians and Hessians (for small problems:
// one backward pass per output element). Each evaluates `f` on fresh leaves holding the inputs'
// values, so the caller's tensors and their grad() are left alone.
//
// `f` takes `const std::vector<Tensor<T>>&` and returns a Tensor<T>.

#include <string>
#include <vector>

#include <xgrad/autograd.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad {

namespace detail {
template <class T>
std::vector<Tensor<T>> fresh_leaves(const char* op, const std::vector<Tensor<T>>& inputs) {
  std::vector<Tensor<T>> xs;
  xs.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      throw Error(std::string("xgrad::") + op + ": input " + std::to_string(i) + " is undefined");
    }
    xs.emplace_back(Array<T>(inputs[i].value()), true);
  }
  return xs;
}

template <class T>
void check_like(const char* op, const std::vector<Tensor<T>>& inputs,
                const std::vector<Tensor<T>>& v) {
  if (v.size() != inputs.size()) {
    throw ValueError(std::string("xgrad::") + op + ": " + std::to_string(inputs.size()) +
                     " inputs but " + std::to_string(v.size()) + " vectors");
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].defined() || v[i].shape() != inputs[i].shape()) {
      throw ShapeError(
          std::string("xgrad::") + op + ": vector " + std::to_string(i) + " has shape " +
          (v[i].defined() ? shape_str(v[i].shape()) : std::string("(undefined)")) + " but input " +
          std::to_string(i) + " has shape " + shape_str(inputs[i].shape()));
    }
  }
}

template <class T>
Shape joined(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

// The rows d out.flat(j) / d wrt, for every element j of `out`, laid out as out's shape followed
// by each input's shape.
template <class T>
std::vector<Tensor<T>> jacobian_rows(const Tensor<T>& out, const std::vector<Tensor<T>>& wrt) {
  std::vector<Array<T>> jac;
  for (const auto& w : wrt) jac.emplace_back(Array<T>(joined<T>(out.shape(), w.shape()), T(0)));
  if (out.requires_grad()) {
    for (std::size_t j = 0; j < out.numel(); ++j) {
      Array<T> seed(out.value().shape(), T(0));
      seed.flat(j) = T(1);
      auto rows = grad<T>({out}, wrt, {Tensor<T>(std::move(seed))},
                          {.retain_graph = true, .allow_unused = true});
      for (std::size_t w = 0; w < wrt.size(); ++w) {
        const auto& r = rows[w].value();
        std::copy(r.data(), r.data() + r.size(), jac[w].data() + j * r.size());
      }
    }
  }
  std::vector<Tensor<T>> result;
  for (auto& a : jac) result.emplace_back(std::move(a));
  return result;
}

template <class T, class F>
std::vector<Tensor<T>> vjp(F& f, const std::vector<Tensor<T>>& inputs,
                           const std::vector<Tensor<T>>& v) {
  const auto xs = fresh_leaves("vjp", inputs);
  const EnableGradGuard enable;
  Tensor<T> out = f(xs);
  if (v.size() != 1 || !v[0].defined() || v[0].shape() != out.shape()) {
    throw ShapeError("xgrad::vjp: expects one vector of the output's shape " +
                     shape_str(out.shape()));
  }
  if (!out.requires_grad()) {
    std::vector<Tensor<T>> zeros;
    for (const auto& x : xs) zeros.push_back(Tensor<T>::zeros(x.shape()));
    return zeros;
  }
  return grad<T>({out}, xs, v, {.allow_unused = true});
}

template <class T, class F>
std::vector<Tensor<T>> hvp(F& f, const std::vector<Tensor<T>>& inputs,
                           const std::vector<Tensor<T>>& v) {
  check_like("hvp", inputs, v);
  const auto xs = fresh_leaves("hvp", inputs);
  const EnableGradGuard enable;
  Tensor<T> y = f(xs);
  if (y.numel() != 1) {
    throw ShapeError("xgrad::hvp: the function must return one element, got shape " +
                     shape_str(y.shape()));
  }
  std::vector<Tensor<T>> zeros;
  for (const auto& x : xs) zeros.push_back(Tensor<T>::zeros(x.shape()));
  if (!y.requires_grad()) return zeros;
  const auto g = grad<T>({y}, xs, {.create_graph = true, .allow_unused = true});
  // H v = d (g . v) / dx: one more backward pass, through the recorded gradient.
  Tensor<T> dot;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!g[i].requires_grad()) continue;
    Tensor<T> term = sum(g[i] * v[i]);
    dot = dot.defined() ? dot + term : term;
  }
  if (!dot.defined()) return zeros;
  return grad<T>({dot}, xs, {.allow_unused = true});
}

template <class T, class F>
std::vector<Tensor<T>> jacobian(F& f, const std::vector<Tensor<T>>& inputs) {
  const auto xs = fresh_leaves("jacobian", inputs);
  const EnableGradGuard enable;
  return jacobian_rows(f(xs), xs);
}

template <class T, class F>
std::vector<std::vector<Tensor<T>>> hessian(F& f, const std::vector<Tensor<T>>& inputs) {
  const auto xs = fresh_leaves("hessian", inputs);
  const EnableGradGuard enable;
  Tensor<T> y = f(xs);
  if (y.numel() != 1) {
    throw ShapeError("xgrad::hessian: the function must return one element, got shape " +
                     shape_str(y.shape()));
  }
  std::vector<std::vector<Tensor<T>>> h;
  if (!y.requires_grad()) {
    for (const auto& a : xs) {
      h.emplace_back();
      for (const auto& b : xs)
        h.back().push_back(Tensor<T>::zeros(joined<T>(a.shape(), b.shape())));
    }
    return h;
  }
  const auto g = grad<T>({y}, xs, {.create_graph = true, .allow_unused = true});
  for (const auto& gi : g) h.push_back(jacobian_rows(gi, xs));
  return h;
}
}  // namespace detail

// Braced lists ({w}, {v}) deduce no template argument: each helper is spelled out for both
// element types.
#define XGRAD_FUNCTIONAL(T)                                                                       \
  /** Vector-Jacobian product v^T J of f at inputs, one vector v of f's output shape; one      */ \
  /** gradient per input.                                                                      */ \
  template <class F>                                                                              \
  std::vector<Tensor<T>> vjp(F&& f, const std::vector<Tensor<T>>& inputs,                         \
                             const std::vector<Tensor<T>>& v) {                                   \
    return detail::vjp<T>(f, inputs, v);                                                          \
  }                                                                                               \
  /** Hessian-vector product H v of a one-element f, v one tensor per input; one per input. */    \
  template <class F>                                                                              \
  std::vector<Tensor<T>> hvp(F&& f, const std::vector<Tensor<T>>& inputs,                         \
                             const std::vector<Tensor<T>>& v) {                                   \
    return detail::hvp<T>(f, inputs, v);                                                          \
  }                                                                                               \
  /** Jacobian of f per input, of shape f's output shape followed by the input's shape. */        \
  template <class F>                                                                              \
  std::vector<Tensor<T>> jacobian(F&& f, const std::vector<Tensor<T>>& inputs) {                  \
    return detail::jacobian<T>(f, inputs);                                                        \
  }                                                                                               \
  /** Hessian of a one-element f: block [i][j] has input i's shape followed by input j's. */      \
  template <class F>                                                                              \
  std::vector<std::vector<Tensor<T>>> hessian(F&& f, const std::vector<Tensor<T>>& inputs) {      \
    return detail::hessian<T>(f, inputs);                                                         \
  }
XGRAD_FUNCTIONAL(float)
XGRAD_FUNCTIONAL(double)
#undef XGRAD_FUNCTIONAL

}  // namespace xgrad
