#pragma once
// Gradient checking: compares the engine's gradients with central differences, for the library's
// own tests and for users checking their own functions and custom operations.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/autograd.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad::testing {

/// Tolerances: an element passes when |analytic - numeric| <= atol + rtol * |numeric|.
struct GradcheckOptions {
  /// Step of the central differences.
  double eps = 1e-6;
  /// Absolute tolerance.
  double atol = 1e-5;
  /// Relative tolerance.
  double rtol = 1e-3;
};

/// The verdict for one input: its worst entry of the Jacobian (the one nearest its tolerance, or
/// furthest past it; among equals one with a nonzero derivative) and both derivative values there.
struct InputReport {
  /// Position of the input in the list given to gradcheck.
  std::size_t input = 0;
  /// Shape of the input.
  Shape shape;
  bool checked = false;           ///< false when the input does not require grad
  bool ok = true;                 ///< true when every element is within tolerance
  std::size_t worst_element = 0;  ///< flat index into the input
  std::size_t worst_output = 0;   ///< flat index into the output
  /// The engine's derivative at the worst element.
  double analytic = 0;
  /// The central difference there.
  double numeric = 0;
  /// |analytic - numeric|.
  double abs_error = 0;
};

/// What gradcheck found: ok, and one InputReport per input.
struct GradcheckReport {
  /// True when every checked input passed.
  bool ok = true;
  /// One report per input, in order.
  std::vector<InputReport> inputs;
  /// ok.
  explicit operator bool() const { return ok; }

  /// One line per checked input.
  std::string summary() const {
    std::ostringstream os;
    os.precision(10);
    for (const auto& r : inputs) {
      if (!r.checked) continue;
      os << "input " << r.input << " " << shape_str(r.shape) << (r.ok ? ": ok" : ": MISMATCH")
         << ", worst at element " << r.worst_element << " of output element " << r.worst_output
         << ": analytic " << r.analytic << ", numeric " << r.numeric << ", |diff| " << r.abs_error
         << "\n";
    }
    return os.str();
  }
};

/// Checks d fn(inputs) / d inputs[i] for every input that requires grad (every input when none
/// does) against central differences, element by element of the full Jacobian. `fn` receives
/// the vector of (copied) inputs and returns a tensor of any shape. Double precision only: in
/// float the differences drown in rounding.
template <class F>
GradcheckReport gradcheck(F&& fn, const std::vector<Tensor<double>>& inputs,
                          const GradcheckOptions& options = {}) {
  bool any = false;
  for (const auto& t : inputs) any = any || t.requires_grad();
  std::vector<Tensor<double>> work;
  std::vector<Tensor<double>> wrt;
  std::vector<std::size_t> wrt_index;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const bool check = !any || inputs[i].requires_grad();
    work.emplace_back(Array<double>(inputs[i].value()), check);
    if (check) {
      wrt.push_back(work.back());
      wrt_index.push_back(i);
    }
  }

  GradcheckReport report;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    InputReport r;
    r.input = i;
    r.shape = inputs[i].shape();
    report.inputs.push_back(r);
  }

  // Analytic Jacobian, one backward pass per output element: jac[w][j] is d out_j / d wrt[w].
  Tensor<double> out = fn(work);
  const std::size_t n_out = out.numel();
  std::vector<std::vector<Array<double>>> jac(wrt.size());
  for (std::size_t j = 0; j < n_out; ++j) {
    std::vector<Tensor<double>> grads;
    if (out.requires_grad()) {
      Array<double> seed(out.value().shape(), 0.0);
      seed.flat(j) = 1.0;
      grads = grad<double>({out}, wrt, {Tensor<double>(std::move(seed))},
                           {.retain_graph = true, .allow_unused = true});
    } else {
      for (const auto& t : wrt) grads.push_back(Tensor<double>::zeros(t.shape()));
    }
    for (std::size_t w = 0; w < wrt.size(); ++w) jac[w].push_back(grads[w].value());
    grads.clear();
  }
  out = Tensor<double>();

  // Numeric Jacobian, column by column, compared as it is built.
  NoGradGuard no_grad;
  for (std::size_t w = 0; w < wrt.size(); ++w) {
    InputReport& r = report.inputs[wrt_index[w]];
    r.checked = true;
    // The reported entry is the one nearest its tolerance (|diff| / tolerance, largest first), and
    // on a tie one where a derivative is nonzero: an exact 0 = 0 off the diagonal tells nothing.
    double worst_ratio = -1;
    bool worst_nonzero = false;
    bool failed = false;
    Array<double>& x = wrt[w].mutable_value();
    for (std::size_t k = 0; k < x.size(); ++k) {
      const double saved = x.flat(k);
      x.flat(k) = saved + options.eps;
      const Array<double> plus = fn(work).value();
      x.flat(k) = saved - options.eps;
      const Array<double> minus = fn(work).value();
      x.flat(k) = saved;
      for (std::size_t j = 0; j < n_out; ++j) {
        const double numeric = (plus.flat(j) - minus.flat(j)) / (2 * options.eps);
        const double analytic = jac[w][j].flat(k);
        const double err = std::abs(analytic - numeric);
        const double tolerance = options.atol + options.rtol * std::abs(numeric);
        const bool bad = !(err <= tolerance);  // NaN is bad too
        const double inf = std::numeric_limits<double>::infinity();
        const double ratio = std::isnan(err) ? inf
                             : tolerance > 0 ? err / tolerance
                             : bad           ? inf
                                             : 0;
        const bool nonzero = analytic != 0 || numeric != 0;
        failed = failed || bad;
        if (ratio > worst_ratio || (ratio == worst_ratio && nonzero && !worst_nonzero)) {
          worst_ratio = ratio;
          worst_nonzero = nonzero;
          r.worst_element = k;
          r.worst_output = j;
          r.analytic = analytic;
          r.numeric = numeric;
          r.abs_error = err;
        }
      }
    }
    r.ok = !failed;
    report.ok = report.ok && r.ok;
  }
  return report;
}

/// Checks second derivatives: the gradient of fn, taken with create_graph against a fixed random
/// grad_output v, is itself gradchecked, with respect to the inputs and to v. A derivative that
/// is right to first order but records the wrong graph (or none) fails here. The report lists the
/// inputs, then v last. Double precision only.
template <class F>
GradcheckReport gradgradcheck(F&& fn, const std::vector<Tensor<double>>& inputs,
                              const GradcheckOptions& options = {}, std::uint64_t seed = 0) {
  bool any = false;
  for (const auto& t : inputs) any = any || t.requires_grad();
  std::vector<std::size_t> wrt_index;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!any || inputs[i].requires_grad()) wrt_index.push_back(i);
  }
  Shape out_shape;
  {
    std::vector<Tensor<double>> probe;
    for (const auto& t : inputs) probe.emplace_back(Array<double>(t.value()));
    const EnableGradGuard enable;
    out_shape = fn(probe).shape();
  }
  // Values away from 0 and of both signs, so that no term vanishes by accident.
  Array<double> v = Tensor<double>::rand(out_shape, seed).value() + 0.5;
  for (std::size_t k = 1; k < v.size(); k += 2) v.flat(k) = -v.flat(k);
  std::vector<Tensor<double>> extended;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const bool check = !any || inputs[i].requires_grad();
    extended.emplace_back(Array<double>(inputs[i].value()), check);
  }
  extended.emplace_back(std::move(v), true);

  // (inputs..., v) -> the gradients of fn's output against v, flattened and joined.
  auto first_derivative = [&fn, &wrt_index](const std::vector<Tensor<double>>& all) {
    const EnableGradGuard enable;  // gradcheck evaluates this under NoGradGuard too
    std::vector<Tensor<double>> xs(all.begin(), all.end() - 1);
    const Tensor<double>& grad_output = all.back();
    std::vector<Tensor<double>> wrt;
    for (std::size_t i : wrt_index) wrt.push_back(xs[i]);
    Tensor<double> out = fn(xs);
    std::vector<Tensor<double>> flat;
    if (out.requires_grad()) {
      auto grads =
          grad<double>({out}, wrt, {grad_output}, {.create_graph = true, .allow_unused = true});
      for (const auto& g : grads) flat.push_back(g.reshape({-1}));
    } else {
      for (const auto& w : wrt) flat.push_back(Tensor<double>::zeros({w.numel()}));
    }
    return concat(flat, 0);
  };
  return gradcheck(first_derivative, extended, options);
}

}  // namespace xgrad::testing

// ---- the checkers in namespace xgrad ----
// `using namespace xgrad;` in a GoogleTest file makes `testing::` ambiguous with ::testing, so the
// checkers are also xgrad::gradcheck (and plain `gradcheck` under that using-directive).
namespace xgrad {
using testing::gradcheck;
using testing::GradcheckOptions;
using testing::GradcheckReport;
using testing::gradgradcheck;
using testing::InputReport;
}  // namespace xgrad
