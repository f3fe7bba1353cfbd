#pragma once
// The graph node and the one entry point by which an operation joins the graph: record().
// An op computes its value, then hands record() its derivative: a function that maps the
// gradient of its output to the gradients of its inputs. The engine orders, sweeps,
// reduces broadcast gradients to their input's shape and frees saved state; it knows no formula.
//
// A derivative written with xgrad's own ops on the tensors that Grads hands it serves both kinds
// of pass: a plain backward runs it with grad mode off, so nothing is recorded; a pass with
// create_graph runs it with grad mode on, so the gradient is a graph again and can be
// differentiated to any order.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include <xgrad/memory.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad {

template <class T>
class Grads;
template <class T>
class GraphTask;

/// Maps the gradient of an op's output to its inputs' gradients through Grads::to().
/// It must not capture Tensor handles (inputs and output are reachable through Grads), so that
/// graphs never form cycles and can be torn down iteratively.
template <class T>
using BackwardFn = std::function<void(const Tensor<T>& grad, Grads<T>& g)>;

/// Which values an op's derivative reads, so that its node keeps those and nothing else (an add
/// keeps no input alive). Default: every input and the output, the safe choice for custom ops.
struct Saves {
  /// Bit i set: input i's value is read (Grads::in / Grads::value).
  std::uint32_t inputs = ~std::uint32_t{0};
  /// The output's value is read (Grads::out / Grads::out_value).
  bool output = true;
  /// Reads nothing (add, sub, neg, reshape, ...).
  static constexpr Saves none() { return {0, false}; }
  /// Reads the output only (exp, tanh, sigmoid, sqrt, softmax, ...).
  static constexpr Saves result() { return {0, true}; }
  /// Reads the listed inputs, and the output when `output` is set.
  static constexpr Saves in(std::initializer_list<unsigned> which, bool output = false) {
    std::uint32_t bits = 0;
    for (unsigned i : which) bits |= std::uint32_t{1} << i;
    return {bits, output};
  }
  /// True when input i is read.
  constexpr bool reads(std::size_t i) const { return i >= 32 || ((inputs >> i) & 1u) != 0; }
};

/// The inputs of an op as record() takes them: a braced list {a, b} or a std::vector, viewed
/// in place (the handles are not copied; the list must outlive the call, as an argument does).
template <class T>
class TensorList {
 public:
// The braced list's array lives until the end of the full expression that calls record(), which
// is all a view taken for the call needs; GCC warns about any such view.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
  /// A view of a braced list {a, b}.
  TensorList(std::initializer_list<Tensor<T>> list)  // NOLINT: implicit by design
      : data_(list.begin()), size_(list.size()) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  /// A view of a vector.
  TensorList(const std::vector<Tensor<T>>& list)  // NOLINT: implicit by design
      : data_(list.data()), size_(list.size()) {}
  /// First input.
  const Tensor<T>* begin() const {
    return data_;
  }
  /// One past the last input.
  const Tensor<T>* end() const {
    return data_ + size_;
  }
  /// Number of inputs.
  std::size_t size() const {
    return size_;
  }

 private:
  const Tensor<T>* data_;
  std::size_t size_;
};

namespace detail {
/// Hooks registered on a tensor: on its incoming gradient, and (leaves) once it is accumulated.
template <class T>
struct Hooks {
  std::vector<std::pair<std::size_t, std::function<Tensor<T>(const Tensor<T>&)>>> grad;
  std::vector<std::pair<std::size_t, std::function<void(const Tensor<T>&)>>> post_accumulate;
  std::size_t next_id = 1;
};
}  // namespace detail

/// One recorded operation: where its inputs' gradients go, the values its derivative reads and
/// the derivative itself. A node holds no state of any backward pass: that lives in the pass.
template <class T>
class Node : public std::enable_shared_from_this<Node<T>> {
 public:
  /// Built by record(), not directly: `name` must outlive the node (a string literal).
  Node(const char* name, TensorList<T> inputs, const std::shared_ptr<detail::Storage<T>>& output,
       BackwardFn<T> backward, Saves saves, Location where = {});
  /// Frees the chain of nodes behind this one without recursion.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// The op name given to record() ("matmul").
  const char* name() const { return name_; }
  /// Where the op was called from when anomaly mode was on as it was recorded (line 0 if not).
  const Location& where() const { return where_; }
  /// Number of inputs (0 once backward freed the node).
  std::size_t num_inputs() const { return edges_.size(); }
  /// The node that produced input i, or null for a leaf or an input that needs no gradient.
  const std::shared_ptr<Node>& input_node(std::size_t i) const { return edges_.at(i).fn; }
  /// True once backward freed the saved state (without retain_graph).
  bool released() const { return released_; }
  /// The hooks of the tensor this node produced (null until one is registered).
  std::shared_ptr<detail::Hooks<T>>& hooks() { return hooks_; }

 private:
  template <class>
  friend class GraphTask;
  template <class>
  friend class Grads;

  void release();

  const char* name_;
  Location where_;
  // Where input i's gradient goes (the producing node, or the leaf itself; neither when the
  // input needs none), the value the derivative reads (only if it does) and what the input
  // looked like when recorded: the version catches a value changed in place, the shape is
  // the gradient's.
  struct Edge {
    std::shared_ptr<Node> fn;
    std::shared_ptr<detail::TensorImpl<T>> leaf;
    // The input itself when its value is read: a tensor's storage never changes, so the handle
    // pins the value as well as its storage would, and Grads::in() hands it out as it is.
    std::shared_ptr<detail::TensorImpl<T>> saved;
    std::uint64_t version;
    typename Array<T>::shape_type shape;
  };
  std::vector<Edge, detail::SmallAllocator<Edge>> edges_;
  std::shared_ptr<detail::Storage<T>> output_;  // only when the derivative reads it
  std::uint64_t output_version_ = 0;
  BackwardFn<T> backward_;
  std::shared_ptr<detail::Hooks<T>> hooks_;
  bool released_ = false;
};

/// What a derivative sees: the op's inputs and output, which inputs need a gradient, whether
/// the pass records the gradients (create_graph), and to() to hand one back.
template <class T>
class Grads {
 public:
  /// Input i as a tensor. In a pass with create_graph it is connected to the graph (its
  /// gradient flows back through whatever produced it), otherwise a plain value.
  /// Throws GraphError if the op did not save it or it was modified in place since.
  Tensor<T> in(std::size_t i) const;
  /// The op's output as a tensor, connected to this very node under create_graph.
  Tensor<T> out() const;
  /// Value of input i as it was in the forward pass (no tensor is made: the fast path).
  const Array<T>& value(std::size_t i) const;
  /// Value of the op's output.
  const Array<T>& out_value() const;
  /// Shape of input i as it was in the forward pass (its gradient's shape).
  const typename Array<T>::shape_type& shape(std::size_t i) const {
    check_index(i);
    return node_.edges_[i].shape;
  }
  /// True when input i needs a gradient in this pass; compute nothing for it otherwise.
  bool needs(std::size_t i) const;
  /// True when the pass records its gradients (create_graph): a derivative that takes a fast
  /// path on arrays must take its tensor form instead.
  bool create_graph() const;
  /// Number of inputs.
  std::size_t size() const { return node_.edges_.size(); }
  /// True in a plain pass when `grad` is the pass's own gradient that nothing else holds: the
  /// derivative may then write its result into grad's array and hand grad on, instead of
  /// allocating another (elementwise derivatives, whose result has grad's shape, do).
  bool owns_grad(const Tensor<T>& grad) const;

  /// Adds `gradient` to input i's gradient. It may have the output's (broadcast) shape: the
  /// engine sums it down to the input's shape.
  void to(std::size_t i, Tensor<T> gradient);
  /// Same from an array. Under create_graph an array carries no graph, so a gradient handed
  /// over this way is marked: differentiating through it again raises GraphError.
  void to(std::size_t i, Array<T>&& gradient);
  /// Same, from an xtensor expression: evaluated only when input i needs a gradient.
  template <class E>
  requires(!std::is_same_v<std::decay_t<E>, Tensor<T>> &&
           !std::is_same_v<std::decay_t<E>, Array<T>>) void to(std::size_t i, E&& expression) {
    if (needs(i)) to(i, Array<T>(std::forward<E>(expression)));
  }

 private:
  friend class GraphTask<T>;
  Grads(Node<T>& node, GraphTask<T>& task) : node_(node), task_(task) {}
  /// Reports a saved value (input i, or the output for i == size()) changed after recording.
  [[noreturn]] void modified(std::size_t i) const;
  [[noreturn]] void not_saved(std::size_t i) const;
  void check_index(std::size_t i) const {
    if (i >= node_.edges_.size()) bad_index(i);
  }
  [[noreturn]] void bad_index(std::size_t i) const;
  Node<T>& node_;
  GraphTask<T>& task_;
};

/// An op's name and the place it was called from. A plain name converts to it and takes the
/// line where it is written: record("my_op", ...) locates a custom op on that line, while the
/// built-in ops pass {"log", loc} with the caller's place.
struct OpName {
  /// A name, located where the conversion happens.
  OpName(const char* n, Location w = Location::current()) : name(n), where(w) {}  // NOLINT
  /// The op name (a string literal: nodes keep the pointer).
  const char* name;
  /// Where the op was called from.
  Location where;
};

/// Builds the op's output tensor from `value`. When grad mode is on and any input requires a
/// gradient, the output gets a node holding `backward` and the values `saves` names; otherwise
/// `backward` is dropped. In anomaly mode the node also keeps op.where.
template <class T>
Tensor<T> record(OpName op, Array<T>&& value, TensorList<T> inputs, BackwardFn<T> backward,
                 Saves saves = {});

/// record() for an output that is already a tensor without history: a view made by share().
/// GraphError if `output` has a history or requires grad.
template <class T>
Tensor<T> record(OpName op, Tensor<T> output, TensorList<T> inputs, BackwardFn<T> backward,
                 Saves saves = {});

/// A tensor over a's elements under another shape with as many elements (the output of a view
/// op: reshape, flatten, squeeze, unsqueeze): no copy, no history. Writes through either are
/// seen by both, and both share one version counter, so an op that saved one notices in-place
/// writes through the other. ShapeError if the element counts differ.
template <class T>
Tensor<T> share(const Tensor<T>& a, const Shape& shape);

/// True when an op over these inputs would be recorded (grad mode on and one requires grad).
template <class T>
bool needs_graph(TensorList<T> inputs);

/// record() for a derivative given as a lambda (or any function object): it becomes a
/// BackwardFn only when the op is recorded, so that an op run without a graph (grad mode off,
/// as in every derivative of a plain backward) copies nothing its lambda captured.
template <class T, class Out, class F>
requires((std::is_same_v<Out, Array<T>> ||
          std::is_same_v<Out, Tensor<T>>)&&std::is_class_v<std::decay_t<F>> &&
         !std::is_same_v<std::decay_t<F>, BackwardFn<T>> &&
         std::is_invocable_v<F&, const Tensor<T>&, Grads<T>&>)
    Tensor<T> record(OpName op, Out&& value, TensorList<T> inputs, F&& backward, Saves saves = {}) {
  if (!needs_graph(inputs)) return Tensor<T>(std::move(value));
  return record<T>(op, std::move(value), inputs, BackwardFn<T>(std::forward<F>(backward)), saves);
}

}  // namespace xgrad
