#pragma once
// The graph node and the one entry point by which an operation joins the graph: record().
// An op computes its value, then hands record() a backward function that maps the gradient of
// its output to the gradients of its inputs. The engine (engine.cpp) orders, sweeps, reduces
// broadcast gradients to their input's shape and frees saved state; it knows no formula.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad {

template <class T>
class Grads;
template <class T>
class Engine;

/// Maps the gradient of an op's output to its inputs' gradients through Grads::to().
/// It must not capture Tensor handles (inputs and output are reachable through Grads), so that
/// graphs never form cycles and can be torn down iteratively.
template <class T>
using BackwardFn = std::function<void(const Array<T>& grad, Grads<T>& g)>;

/// The inputs of an op as record() takes them: a braced list {a, b} or a std::vector, viewed
/// in place (the handles are not copied; the list must outlive the call, as an argument does).
template <class T>
class TensorList {
 public:
// The braced list's array lives until the end of the full expression that calls record(), which
// is all a view taken for the call needs; GCC warns about any such view.
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning group
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
  /// A view of a braced list {a, b}.
  TensorList(std::initializer_list<Tensor<T>> list)  // NOLINT: implicit by design
      : data_(list.begin()), size_(list.size()) {}
#pragma GCC diagnostic pop
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

/// One recorded operation: its inputs, its saved output and its backward function.
template <class T>
class Node {
 public:
  /// Built by record(), not directly: `name` must outlive the node (a string literal).
  Node(const char* name, TensorList<T> inputs, std::shared_ptr<detail::Storage<T>> output,
       BackwardFn<T> backward, Location where = {});
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
  /// Input i, in record() order.
  const std::shared_ptr<detail::TensorImpl<T>>& input(std::size_t i) const {
    return edges_.at(i).impl;
  }
  /// True once backward freed the saved state (without retain_graph).
  bool released() const { return released_; }

 private:
  template <class>
  friend class Engine;
  template <class>
  friend class Grads;

  void release();

  const char* name_;
  Location where_;
  // Each input with what it looked like when recorded: the version catches a value changed in
  // place, the shape a value replaced by one of another shape. The shape type keeps up to 4 dims
  // inline, so the inputs of a node take one allocation.
  struct Edge {
    std::shared_ptr<detail::TensorImpl<T>> impl;
    std::uint64_t version;
    typename Array<T>::shape_type shape;
  };
  std::vector<Edge> edges_;
  std::shared_ptr<detail::Storage<T>> output_;
  std::uint64_t output_version_ = 0;
  BackwardFn<T> backward_;
  bool released_ = false;

  // Scratch state of the backward pass in progress.
  std::uint64_t pass_ = 0;
  std::size_t pending_ = 0;
  std::optional<Array<T>> grad_;
  const Array<T>* seed_ = nullptr;  // a root's gradient as the caller gave it (not copied)
};

/// What a backward function sees: the op's inputs and output values, which inputs need a
/// gradient, and to() to hand one back.
template <class T>
class Grads {
 public:
  /// Value of input i as it was in the forward pass.
  /// Throws GraphError if it was modified in place since.
  const Array<T>& in(std::size_t i) const {
    check_index(i);
    const auto& edge = node_.edges_[i];
    const auto& storage = *edge.impl->storage;
    if (storage.version != edge.version) modified(i);
    return storage.data;
  }
  /// Value of the op's output; throws GraphError if it was modified in place since.
  const Array<T>& out() const {
    if (node_.output_->version != node_.output_version_) modified(size());
    return node_.output_->data;
  }
  /// Shape of input i as it was in the forward pass (its gradient's shape).
  const typename Array<T>::shape_type& shape(std::size_t i) const {
    check_index(i);
    return node_.edges_[i].shape;
  }
  /// True when input i needs a gradient; compute nothing for it otherwise.
  bool needs(std::size_t i) const {
    check_index(i);
    return node_.edges_[i].impl->requires_grad;
  }
  /// Number of inputs.
  std::size_t size() const { return node_.edges_.size(); }

  /// Adds `gradient` to input i's gradient. It may have the output's (broadcast) shape: the
  /// engine sums it down to the input's shape.
  void to(std::size_t i, Array<T>&& gradient);
  /// Same, from an xtensor expression: evaluated only when input i needs a gradient.
  template <class E>
  void to(std::size_t i, E&& expression) {
    if (needs(i)) to(i, Array<T>(std::forward<E>(expression)));
  }

 private:
  friend class Engine<T>;
  Grads(Node<T>& node, Engine<T>& engine) : node_(node), engine_(engine) {}
  /// Reports a saved value (input i, or the output for i == size()) changed after recording.
  [[noreturn]] void modified(std::size_t i) const;
  void check_index(std::size_t i) const {
    if (i >= node_.edges_.size()) bad_index(i);
  }
  [[noreturn]] void bad_index(std::size_t i) const;
  Node<T>& node_;
  Engine<T>& engine_;
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
/// gradient, the output gets a node holding `backward`; otherwise `backward` is dropped. In
/// anomaly mode the node also keeps op.where.
template <class T>
Tensor<T> record(OpName op, Array<T>&& value, TensorList<T> inputs, BackwardFn<T> backward);

/// True when an op over these inputs would be recorded (grad mode on and one requires grad).
template <class T>
bool needs_graph(TensorList<T> inputs);

}  // namespace xgrad
