#pragma once
// Tensor<T>: a cheap shared handle on a value, its gradient and the graph node that produced it.
// The core knows no operation: ops build nodes through record() in node.hpp.

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <source_location>
#include <string>
#include <type_traits>
#include <vector>

#include <xgrad/error.hpp>
#include <xgrad/xt.hpp>

namespace xgrad {

template <class T>
class Node;

/// Where an operation was called from (file and line); recorded on the node in anomaly mode.
using Location = std::source_location;

/// Reproducible random numbers for the factories and initialisers (mt19937_64).
class Generator {
 public:
  /// A generator seeded with `seed` (5489, mt19937_64's default, when omitted).
  explicit Generator(std::uint64_t seed = 5489u) : engine_(seed) {}
  /// Restarts the sequence from `seed`.
  void manual_seed(std::uint64_t seed) { engine_.seed(seed); }
  /// The underlying engine, for std:: distributions.
  std::mt19937_64& engine() { return engine_; }

  // ---- state, for checkpoints (torch.Generator.get_state / set_state) ----
  /// The complete state as text (the engine's 312 words and its position): set_state() on any
  /// generator continues the same sequence.
  std::string get_state() const;
  /// Restores a get_state() text; ValueError, with the generator unchanged, for anything else.
  void set_state(const std::string& state);

 private:
  std::mt19937_64 engine_;
};

/// The generator used when a factory is given neither a seed nor a generator (one per thread).
Generator& default_generator();
/// Reseed the default generator of this thread.
void manual_seed(std::uint64_t seed);

namespace detail {
/// A value plus its version: bumped by every in-place write, so backward can tell when a value
/// it saved was changed after the forward pass (detach() shares both with its source). A view
/// (reshape and its relatives) has its own shape over its base's elements, and its base's
/// version counter, so that a write through either is seen by every op that saved the other.
template <class T>
struct Storage {
  Array<T> data;
  std::uint64_t version = 0;
  std::shared_ptr<Storage> base;  // for a view: its base, whose counter it shares (not a view)

  /// The version counter shared by a base and all its views.
  std::uint64_t& counter() { return base ? base->version : version; }
  /// Its value.
  std::uint64_t counter() const { return base ? base->version : version; }
};

/// Raises ValueError (naming xgrad::`op` and the shape) when an array of `shape` could not be
/// addressed: xtensor multiplies extents without checking, so an overflowing count would
/// allocate a small buffer under a huge shape.
void check_element_count(const char* op, const Shape& shape, std::size_t element_size);

/// Raises ValueError for item<U>() of a value that an integer U cannot hold.
[[noreturn]] void item_out_of_range(double value);

template <class T>
struct Hooks;

template <class T>
struct TensorImpl {
  std::shared_ptr<Storage<T>> storage;
  std::shared_ptr<TensorImpl> grad;  // a leaf's accumulated gradient, itself a tensor
  bool requires_grad = false;
  std::shared_ptr<Node<T>> grad_fn;  // null for a leaf
  std::shared_ptr<Hooks<T>> hooks;   // a leaf's hooks (a non-leaf's live on its node)
};
}  // namespace detail

/// Options of Tensor::backward().
struct BackwardOptions {
  /// Keep the graph for another pass. Default: create_graph.
  std::optional<bool> retain_graph = std::nullopt;
  /// Record the gradients themselves, so that they can be differentiated again.
  bool create_graph = false;
};

/// Scalar argument type that does not take part in template deduction, so that `x + 1` works
/// for Tensor<float> and Tensor<double> alike.
template <class T>
using Scalar = std::type_identity_t<T>;

/// A nested braced list of numbers, as written in Tensor::from({{1, 2}, {3, 4}}). A braced list
/// is always one more dim, so {{1}, {0}} is a [2,1] column, as in NumPy; ragged lists are refused.
template <class V>
class NestedList {
 public:
  /// A single number (a leaf).
  NestedList(V value) : value_(value), leaf_(true) {}  // NOLINT: implicit by design
  /// A list of lists or numbers: one more dimension.
  NestedList(std::initializer_list<NestedList> items) : items_(items) {}

  /// True for a single number.
  bool leaf() const { return leaf_; }
  /// The number of a leaf.
  V value() const { return value_; }
  /// The elements of a list.
  const std::vector<NestedList>& items() const { return items_; }

 private:
  V value_{};
  bool leaf_ = false;
  std::vector<NestedList> items_;
};

/// A dimension list for reshape; -1 stands for the one extent inferred from the others.
using Dims = std::vector<std::int64_t>;

/// An n-dimensional array of V (float or double) that records the operations applied to it when it
/// requires grad. Copying a Tensor copies the handle, not the data (like torch::Tensor).
template <class V>
class Tensor {
  static_assert(std::is_same_v<V, float> || std::is_same_v<V, double>,
                "xgrad::Tensor is defined for float and double");

 public:
  /// The element type, float or double.
  using value_type = V;

  /// An undefined tensor (like a default torch::Tensor); most calls on it throw.
  Tensor() = default;
  /// Takes ownership of `value` without copying it.
  explicit Tensor(Array<V>&& value, bool requires_grad = false);
  /// Copies `value`.
  explicit Tensor(const Array<V>& value, bool requires_grad = false)
      : Tensor(Array<V>(value), requires_grad) {}

  // ---- factories (each random one takes a seed or a Generator; default: default_generator()) ----
  /// All zeros.
  static Tensor zeros(const Shape& shape);
  /// All ones.
  static Tensor ones(const Shape& shape);
  /// Every element `value`.
  static Tensor full(const Shape& shape, V value);
  /// [start, stop) in steps of `step`, like numpy.arange.
  static Tensor arange(V start, V stop, V step = V(1));
  /// [0, stop) in steps of 1.
  static Tensor arange(V stop) { return arange(V(0), stop); }
  /// n x n identity.
  static Tensor eye(std::size_t n);
  /// Uniform on [0, 1).
  static Tensor rand(const Shape& shape, std::uint64_t seed);
  /// Uniform on [0, 1), drawn from `gen`.
  static Tensor rand(const Shape& shape, Generator& gen = default_generator());
  /// Standard normal.
  static Tensor randn(const Shape& shape, std::uint64_t seed);
  /// Standard normal, drawn from `gen`.
  static Tensor randn(const Shape& shape, Generator& gen = default_generator());
  /// `steps` points evenly spaced from `start` to `end` inclusive, like torch.linspace.
  static Tensor linspace(V start, V end, std::size_t steps);
  /// A 0-dimensional tensor holding `value`.
  static Tensor scalar(V value);
  /// From nested braced lists: from({1, 2}) is [2], from({{1}, {0}}) is [2,1].
  static Tensor from(std::initializer_list<NestedList<V>> values);
  /// `values` copied into `shape` in C order: from(v, {2, 3}) is [2,3] (ShapeError unless the
  /// counts match). Zero-copy: fill an Array<V> (`data()`) and move it into Tensor(Array<V>&&).
  static Tensor from(const std::vector<V>& values, const Shape& shape);
  /// Numbers of another type (int, uint8_t, double, ...) converted to V, as from(values, shape).
  template <class U>
  requires(std::is_arithmetic_v<U> && !std::is_same_v<U, V>) static Tensor
      from(const std::vector<U>& values, const Shape& shape) {
    return from(std::vector<V>(values.begin(), values.end()), shape);
  }

  // ---- state ----
  /// False for a default-constructed tensor.
  bool defined() const { return impl_ != nullptr; }
  /// The value, read-only and shared with every handle (no copy); valid while a handle on the
  /// storage lives and the value keeps its shape.
  const Array<V>& value() const;
  /// Writable access to the value for in-place updates (optimisers); bumps the version counter so
  /// that a backward pass which saved this value notices the change.
  Array<V>& mutable_value();
  /// One extent per dimension; [] for a 0-dimensional tensor.
  Shape shape() const;
  /// Number of dimensions.
  std::size_t dim() const { return value().dimension(); }
  /// Extent of dimension `dim` (negative counts from the end).
  std::size_t size(int dim) const;
  /// Number of elements.
  std::size_t numel() const;
  /// The single element of a one-element tensor.
  V item() const;
  /// Counter of in-place writes to the value (mutable_value() calls).
  std::uint64_t version() const;

  /// True when backward() computes a gradient for this tensor.
  bool requires_grad() const;
  /// Marks a leaf as a parameter whose gradient backward() should fill. Returns *this.
  Tensor& requires_grad_(bool on = true);
  /// True for a tensor no recorded operation produced (parameters, inputs).
  bool is_leaf() const;
  /// Name of the operation that produced this tensor, or "" for a leaf.
  const char* op_name() const;

  /// True once backward() has given this tensor a gradient.
  bool has_grad() const;
  /// Accumulated gradient, a tensor (recorded, so differentiable, after a backward with
  /// create_graph); throws if backward has not reached this tensor yet.
  Tensor grad() const;
  /// Writable gradient (clipping, custom updates); throws like grad().
  Array<V>& mutable_grad();
  /// Sets the gradient to zero, keeping its buffer.
  void zero_grad();
  /// Drops the gradient buffer.
  void clear_grad();

  /// Same value (shared, not copied), no graph history, requires_grad false.
  Tensor detach() const;
  /// Deep copy of the value, no history.
  Tensor clone_detached() const;

  /// Backpropagate from a one-element tensor (seed 1) into the leaves' grad().
  void backward(BackwardOptions options = {}) const;
  /// Backpropagate with an explicit gradient of this tensor's shape, a Tensor (which may itself
  /// require grad) or an Array. (A template so that a braced list always means the options.)
  template <class G>
  requires(std::is_same_v<G, Tensor> ||
           std::is_same_v<G, Array<V>>) void backward(const G& gradient,
                                                      BackwardOptions options = {}) const {
    if constexpr (std::is_same_v<G, Tensor>) {
      backward_from(gradient, options);
    } else {
      backward_from(Tensor(gradient), options);
    }
  }

  /// Registers `hook` on the gradient flowing into this tensor: it runs once per backward pass on
  /// the tensor's total incoming gradient (before it is accumulated into a leaf's grad() or
  /// captured by grad()), in registration order, on the thread running the pass; it may return a
  /// replacement gradient of the same shape, or an undefined Tensor to keep it. Returns an id for
  /// remove_hook().
  std::size_t register_hook(std::function<Tensor(const Tensor&)> hook);
  /// Registers `hook` on a leaf, run once its gradient of the pass is final and accumulated into
  /// grad() (before the rest of the pass ends); it receives the leaf. Returns an id.
  std::size_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook);
  /// Removes a hook registered on this tensor; false if there was none with this id.
  bool remove_hook(std::size_t id);

  // ---- operations as methods (defined with the ops; see ops.hpp for the formulas). Each records
  // where it was called from, for anomaly mode. ----
  /// matmul(*this, other).
  Tensor matmul(const Tensor& other, Location loc = Location::current()) const;
  /// Transpose of a matrix (dims reversed for dim <= 2).
  Tensor T(Location loc = Location::current()) const;
  /// transpose(*this, dim0, dim1).
  Tensor transpose(int dim0, int dim1, Location loc = Location::current()) const;
  /// reshape(*this, shape).
  Tensor reshape(const Dims& shape, Location loc = Location::current()) const;
  /// flatten(*this, start_dim, end_dim).
  Tensor flatten(int start_dim = 0, int end_dim = -1, Location loc = Location::current()) const;
  /// unsqueeze(*this, dim).
  Tensor unsqueeze(int dim, Location loc = Location::current()) const;
  /// squeeze(*this).
  Tensor squeeze(Location loc = Location::current()) const;
  /// squeeze(*this, dim).
  Tensor squeeze(int dim, Location loc = Location::current()) const;
  /// broadcast_to(*this, shape).
  Tensor broadcast_to(const Shape& shape, Location loc = Location::current()) const;
  /// index_select(*this, dim, index).
  Tensor index_select(int dim, const std::vector<std::size_t>& index,
                      Location loc = Location::current()) const;
  /// slice(*this, dim, start, end, step).
  Tensor slice(int dim, std::int64_t start, std::int64_t end, std::int64_t step = 1,
               Location loc = Location::current()) const;
  /// permute(*this, dims).
  Tensor permute(const std::vector<int>& dims, Location loc = Location::current()) const;
  /// tril(*this, diagonal).
  Tensor tril(std::int64_t diagonal = 0, Location loc = Location::current()) const;
  /// triu(*this, diagonal).
  Tensor triu(std::int64_t diagonal = 0, Location loc = Location::current()) const;
  /// masked_fill(*this, mask, value).
  Tensor masked_fill(const Tensor& mask, V value, Location loc = Location::current()) const;

  /// Sum of all elements -> [].
  Tensor sum(Location loc = Location::current()) const;
  /// Sum over `dim`.
  Tensor sum(int dim, bool keepdim = false, Location loc = Location::current()) const;
  /// Sum over `dims`.
  Tensor sum(const std::vector<int>& dims, bool keepdim = false,
             Location loc = Location::current()) const;
  /// Mean of all elements -> [].
  Tensor mean(Location loc = Location::current()) const;
  /// Mean over `dim`.
  Tensor mean(int dim, bool keepdim = false, Location loc = Location::current()) const;
  /// Mean over `dims`.
  Tensor mean(const std::vector<int>& dims, bool keepdim = false,
              Location loc = Location::current()) const;
  /// logsumexp over `dim`.
  Tensor logsumexp(int dim, bool keepdim = false, Location loc = Location::current()) const;
  /// logsumexp over `dims` (an empty list: all of them).
  Tensor logsumexp(const std::vector<int>& dims, bool keepdim = false,
                   Location loc = Location::current()) const;
  /// Unbiased variance of all elements -> [].
  Tensor var(Location loc = Location::current()) const;
  /// Variance over `dim`, divided by N - correction.
  Tensor var(int dim, V correction = V(1), bool keepdim = false,
             Location loc = Location::current()) const;
  /// Variance over `dims`, divided by N - correction.
  Tensor var(const std::vector<int>& dims, V correction = V(1), bool keepdim = false,
             Location loc = Location::current()) const;
  /// Unbiased standard deviation of all elements -> [].
  Tensor std(Location loc = Location::current()) const;
  /// Standard deviation over `dim`, from the variance divided by N - correction.
  Tensor std(int dim, V correction = V(1), bool keepdim = false,
             Location loc = Location::current()) const;
  /// Standard deviation over `dims`, from the variance divided by N - correction.
  Tensor std(const std::vector<int>& dims, V correction = V(1), bool keepdim = false,
             Location loc = Location::current()) const;
  /// Largest element -> [].
  Tensor max(Location loc = Location::current()) const;
  /// Maximum over `dim`.
  Tensor max(int dim, bool keepdim = false, Location loc = Location::current()) const;
  /// Smallest element -> [].
  Tensor min(Location loc = Location::current()) const;
  /// Minimum over `dim`.
  Tensor min(int dim, bool keepdim = false, Location loc = Location::current()) const;

  /// -x.
  Tensor neg(Location loc = Location::current()) const;
  /// e^x.
  Tensor exp(Location loc = Location::current()) const;
  /// Natural log.
  Tensor log(Location loc = Location::current()) const;
  /// Square root.
  Tensor sqrt(Location loc = Location::current()) const;
  /// Sine.
  Tensor sin(Location loc = Location::current()) const;
  /// Cosine.
  Tensor cos(Location loc = Location::current()) const;
  /// Error function.
  Tensor erf(Location loc = Location::current()) const;
  /// |x|.
  Tensor abs(Location loc = Location::current()) const;
  /// x^exponent.
  Tensor pow(V exponent, Location loc = Location::current()) const;
  /// x^exponent elementwise (broadcasting).
  Tensor pow(const Tensor& exponent, Location loc = Location::current()) const;
  /// min(max(x, lo), hi).
  Tensor clamp(V lo, V hi, Location loc = Location::current()) const;
  /// 1 / (1 + e^-x).
  Tensor sigmoid(Location loc = Location::current()) const;
  /// Hyperbolic tangent.
  Tensor tanh(Location loc = Location::current()) const;
  /// max(x, 0).
  Tensor relu(Location loc = Location::current()) const;
  /// x > 0 ? x : negative_slope * x.
  Tensor leaky_relu(V negative_slope = V(0.01), Location loc = Location::current()) const;
  /// softmax(*this, dim).
  Tensor softmax(int dim, Location loc = Location::current()) const;
  /// log_softmax(*this, dim).
  Tensor log_softmax(int dim, Location loc = Location::current()) const;
  /// gelu(*this, approximate): exact, or the tanh form when approximate.
  Tensor gelu(bool approximate = false, Location loc = Location::current()) const;
  /// gelu(*this, approximate) with PyTorch's "none" or "tanh".
  Tensor gelu(const char* approximate, Location loc = Location::current()) const;
  /// x * sigmoid(x).
  Tensor silu(Location loc = Location::current()) const;
  /// softplus(*this, beta, threshold).
  Tensor softplus(V beta = V(1), V threshold = V(20), Location loc = Location::current()) const;

  // ---- the rest of torch::Tensor's method forms: if PyTorch writes t.f(...), so can you ----
  /// The single element converted to U, as t.item<U>(); an integer U truncates toward zero and
  /// raises ValueError for NaN, infinity or a value out of U's range.
  template <class U>
  requires std::is_arithmetic_v<U> U item()
  const {
    const V v = item();
    if constexpr (std::is_integral_v<U>) {
      const double t = std::trunc(static_cast<double>(v));
      const double lo = static_cast<double>(std::numeric_limits<U>::min());
      const double hi = std::ldexp(1.0, std::numeric_limits<U>::digits);
      if (!(t >= lo && t < hi)) detail::item_out_of_range(static_cast<double>(v));
    }
    return static_cast<U>(v);
  }
  /// argmax(*this, dim, keepdim): indices as whole numbers in V.
  Tensor argmax(int dim, bool keepdim = false) const;
  /// Index of the largest element of the flattened tensor -> [].
  Tensor argmax() const;
  /// argmin(*this, dim, keepdim).
  Tensor argmin(int dim, bool keepdim = false) const;
  /// Index of the smallest element of the flattened tensor -> [].
  Tensor argmin() const;
  /// max(*this, dims, keepdim), as torch's amax.
  Tensor amax(const std::vector<int>& dims = {}, bool keepdim = false,
              Location loc = Location::current()) const;
  /// min(*this, dims, keepdim), as torch's amin.
  Tensor amin(const std::vector<int>& dims = {}, bool keepdim = false,
              Location loc = Location::current()) const;
  /// add(*this, other).
  Tensor add(const Tensor& other, Location loc = Location::current()) const;
  /// *this + s.
  Tensor add(V s, Location loc = Location::current()) const;
  /// sub(*this, other).
  Tensor sub(const Tensor& other, Location loc = Location::current()) const;
  /// *this - s.
  Tensor sub(V s, Location loc = Location::current()) const;
  /// mul(*this, other).
  Tensor mul(const Tensor& other, Location loc = Location::current()) const;
  /// *this * s.
  Tensor mul(V s, Location loc = Location::current()) const;
  /// div(*this, other).
  Tensor div(const Tensor& other, Location loc = Location::current()) const;
  /// *this / s.
  Tensor div(V s, Location loc = Location::current()) const;
  /// maximum(*this, other).
  Tensor maximum(const Tensor& other, Location loc = Location::current()) const;
  /// minimum(*this, other).
  Tensor minimum(const Tensor& other, Location loc = Location::current()) const;
  /// where(condition, *this, other): this where condition != 0, else other.
  Tensor where(const Tensor& condition, const Tensor& other,
               Location loc = Location::current()) const;
  /// heaviside(*this, value_at_zero).
  Tensor heaviside(V value_at_zero, Location loc = Location::current()) const;
  /// gt(*this, other).
  Tensor gt(const Tensor& other) const;
  /// 1 where *this > s.
  Tensor gt(V s) const;
  /// lt(*this, other).
  Tensor lt(const Tensor& other) const;
  /// 1 where *this < s.
  Tensor lt(V s) const;
  /// ge(*this, other).
  Tensor ge(const Tensor& other) const;
  /// 1 where *this >= s.
  Tensor ge(V s) const;
  /// le(*this, other).
  Tensor le(const Tensor& other) const;
  /// 1 where *this <= s.
  Tensor le(V s) const;
  /// eq(*this, other).
  Tensor eq(const Tensor& other) const;
  /// 1 where *this == s.
  Tensor eq(V s) const;
  /// T(), spelt as torch's t().
  Tensor t(Location loc = Location::current()) const { return T(loc); }
  // ---- end of the method forms ----

  /// The shared implementation (for the engine and custom operations).
  const std::shared_ptr<detail::TensorImpl<V>>& impl() const { return impl_; }
  /// A handle on an existing implementation (shares it).
  explicit Tensor(std::shared_ptr<detail::TensorImpl<V>> impl) : impl_(std::move(impl)) {}

 private:
  void backward_from(const Tensor& gradient, BackwardOptions options) const;
  detail::TensorImpl<V>& checked(const char* what) const;
  std::shared_ptr<detail::TensorImpl<V>> impl_;
};

/// Prints the value and, for a non-leaf, the producing op: `tensor([1, 2], grad_fn=<mul>)`.
template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t);

extern template class Tensor<float>;
extern template class Tensor<double>;

}  // namespace xgrad
