// The backward engine: orders the graph, sweeps it once in reverse, reduces each gradient to its
// input's shape, accumulates, and frees what it no longer needs. It knows no operation.

#include <atomic>
#include <cmath>
#include <string>
#include <unordered_map>

#include <xgrad/autograd.hpp>
#include <xgrad/node.hpp>

namespace xgrad {

namespace {
// Both flags in one thread-local so that record() reads them with one TLS access.
struct Modes {
  bool grad = true;
  bool anomaly = false;
};
thread_local Modes modes;
std::atomic<std::uint64_t> pass_counter{0};
// Relaxed: a count, not a synchronisation point; a node may die on another thread than the one
// that made it, so the count cannot be thread-local.
std::atomic<std::int64_t> live_node_count{0};

template <class S1, class S2>
bool shapes_equal(const S1& a, const S2& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

template <class S>
Shape to_shape(const S& s) {
  return Shape(s.begin(), s.end());
}

// Undoes broadcasting: sums the leading dims the input did not have and the dims where it had
// extent 1. Any other mismatch is a bug in the op's backward, reported by name.
template <class T, class S>
Array<T> sum_to(Array<T>&& g, const S& target, const char* op) {
  const auto& gs = g.shape();
  auto fail = [&] {
    return ShapeError(std::string("xgrad::backward: '") + op + "' produced a gradient of shape " +
                      shape_str(to_shape(gs)) + " that does not reduce to its input's shape " +
                      shape_str(to_shape(target)));
  };
  if (gs.size() < target.size()) throw fail();
  const std::size_t lead = gs.size() - target.size();
  std::vector<std::size_t> axes;
  for (std::size_t i = 0; i < lead; ++i) axes.push_back(i);
  for (std::size_t j = 0; j < target.size(); ++j) {
    if (target[j] == gs[j + lead]) continue;
    if (target[j] != 1) throw fail();
    axes.push_back(j + lead);
  }
  // xtensor's reducers misbehave on empty arrays; the sum of nothing is zero anyway.
  if (g.size() == 0) return Array<T>(to_shape(target), T(0));
  Array<T> reduced = xt::sum(g, axes);
  reduced.reshape(target);
  return reduced;
}

std::string location_str(const Location& where) {
  if (where.line() == 0) return "an unknown place (anomaly mode was off when it was recorded)";
  return std::string(where.file_name()) + ":" + std::to_string(where.line());
}

// Index of the first NaN or infinite element, or npos.
template <class T>
std::size_t first_non_finite(const Array<T>& g) {
  const T* p = g.data();
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(p[i])) return i;
  }
  return std::string::npos;
}

template <class T>
std::string value_str(T v) {
  return std::isnan(v) ? "NaN" : (v > 0 ? "inf" : "-inf");
}
}  // namespace

bool is_grad_enabled() {
  return modes.grad;
}
NoGradGuard::NoGradGuard() : previous_(modes.grad) {
  modes.grad = false;
}
NoGradGuard::~NoGradGuard() {
  modes.grad = previous_;
}

bool is_anomaly_enabled() {
  return modes.anomaly;
}
AnomalyGuard::AnomalyGuard(bool enabled) : previous_(modes.anomaly) {
  modes.anomaly = enabled;
}
AnomalyGuard::~AnomalyGuard() {
  modes.anomaly = previous_;
}

std::size_t live_nodes() {
  return static_cast<std::size_t>(live_node_count.load(std::memory_order_relaxed));
}

// ---- Node ----

template <class T>
Node<T>::Node(const char* name, TensorList<T> inputs, std::shared_ptr<detail::Storage<T>> output,
              BackwardFn<T> backward, Location where)
    : name_(name), where_(where), output_(std::move(output)), backward_(std::move(backward)) {
  edges_.reserve(inputs.size());
  for (const auto& in : inputs) {
    const auto& impl = in.impl();
    edges_.push_back({impl, impl->storage->version, impl->storage->data.shape()});
  }
  output_version_ = output_->version;
  live_node_count.fetch_add(1, std::memory_order_relaxed);
}

template <class T>
Node<T>::~Node() {
  live_node_count.fetch_sub(1, std::memory_order_relaxed);
  // Destroying a tensor destroys its node, which drops its inputs, whose nodes drop theirs...
  // Done naively that recursion overflows the stack on a long chain. Instead, take over the
  // inputs of every node about to die with us, so each destructor below finds nothing to free.
  std::vector<Edge> pending = std::move(edges_);
  while (!pending.empty()) {
    std::shared_ptr<detail::TensorImpl<T>> impl = std::move(pending.back().impl);
    pending.pop_back();
    if (impl.use_count() == 1 && impl->grad_fn && impl->grad_fn.use_count() == 1) {
      auto& next = impl->grad_fn->edges_;
      for (auto& in : next) pending.push_back(std::move(in));
      next.clear();
    }
  }
}

template <class T>
void Node<T>::release() {
  released_ = true;
  backward_ = nullptr;
  edges_.clear();
  output_.reset();
  grad_.reset();
  seed_ = nullptr;
}

template <class T>
void Grads<T>::bad_index(std::size_t i) const {
  throw GraphError(std::string("xgrad::backward: the backward function of '") + node_.name_ +
                   "' refers to input " + std::to_string(i) + " but the op has " +
                   std::to_string(node_.edges_.size()) + " input(s)");
}

template <class T>
void Grads<T>::modified(std::size_t i) const {
  const bool is_output = i == node_.edges_.size();
  const auto& storage = is_output ? *node_.output_ : *node_.edges_[i].impl->storage;
  const auto saved = is_output ? node_.output_version_ : node_.edges_[i].version;
  throw GraphError(std::string("xgrad::backward: ") +
                   (is_output ? std::string("the output") : "input " + std::to_string(i)) +
                   " of '" + node_.name_ + "' (shape " + shape_str(to_shape(storage.data.shape())) +
                   ") was modified in place after '" + node_.name_ + "' saved it (version " +
                   std::to_string(storage.version) + ", saved at version " + std::to_string(saved) +
                   ")");
}

// ---- Engine ----

template <class T>
class Engine {
 public:
  using Impl = detail::TensorImpl<T>;
  using Slot = std::optional<Array<T>>;

  bool retain_graph = false;
  // Read once per pass: anomaly mode off costs one predictable branch per gradient.
  const bool anomaly = modes.anomaly;
  // grad(): gradients go to these slots instead of the leaves' grad().
  bool capture = false;
  std::unordered_map<const Impl*, Slot*> leaf_slots;
  std::unordered_map<const Node<T>*, Slot*> node_slots;

  // Each root with the gradient given for it, which outlives the pass and is not copied.
  using Roots = std::vector<std::pair<std::shared_ptr<Impl>, const Array<T>*>>;

  void run(const Roots& roots) {
    const std::uint64_t pass = ++pass_counter;
    pass_ = pass;
    // Every node of the pass stays alive until the sweep ends even when release() drops the
    // tensors that owned it, and dies afterwards with its inputs already cleared. The lists are
    // the thread's, reused pass after pass; a pass started inside a backward function (which
    // finds them busy) gets its own.
    Scratch own;
    Scratch& scratch = scratch_.busy ? own : scratch_;
    const ScratchLease lease(scratch);
    auto& nodes = scratch.nodes;
    auto& stack = scratch.stack;
    auto visit = [&](const std::shared_ptr<Node<T>>& n) {
      if (n->pass_ == pass) return;
      if (n->released_) {
        throw GraphError(std::string("xgrad::backward: the graph through '") + n->name_ +
                         "' was freed by an earlier backward; pass retain_graph=true to the first "
                         "backward to run through it again");
      }
      n->pass_ = pass;
      n->pending_ = 0;
      n->grad_.reset();
      n->seed_ = nullptr;
      nodes.push_back(n);
      stack.push_back(n.get());
    };
    for (auto& [impl, g] : roots) {
      if (impl->grad_fn) visit(impl->grad_fn);
    }
    while (!stack.empty()) {
      Node<T>* n = stack.back();
      stack.pop_back();
      for (const auto& edge : n->edges_) {
        const auto& in = edge.impl;
        if (in->grad_fn && in->requires_grad) {
          visit(in->grad_fn);
          ++in->grad_fn->pending_;
        }
      }
    }

    for (const auto& [impl, seed] : roots) {
      const Array<T>& g = *seed;
      if (anomaly) [[unlikely]] {
        const std::size_t bad = first_non_finite(g);
        if (bad != std::string::npos) {
          throw AnomalyError(
              "xgrad::backward (anomaly mode): the gradient given for an output of "
              "shape " +
              shape_str(to_shape(g.shape())) + " holds " + value_str(g.data()[bad]) +
              " at flat index " + std::to_string(bad));
        }
      }
      Node<T>* root = impl->grad_fn.get();
      if (root == nullptr) {
        to_leaf(impl, Array<T>(g));
      } else if (root->seed_ == nullptr && !root->grad_) {
        root->seed_ = &g;
      } else {
        accumulate(root->grad_, Array<T>(g));
      }
    }
    auto& ready = stack;  // empty again
    for (const auto& n : nodes) {
      if (n->pending_ == 0) ready.push_back(n.get());
    }
    while (!ready.empty()) {
      Node<T>* n = ready.back();
      ready.pop_back();
      if (n->seed_ != nullptr && n->grad_) xt::noalias(*n->grad_) += *n->seed_;
      if (n->grad_ || n->seed_ != nullptr) {
        const Array<T>& g = n->grad_ ? *n->grad_ : *n->seed_;
        if (capture) {
          auto it = node_slots.find(n);
          if (it != node_slots.end()) accumulate(*it->second, Array<T>(g));
        }
        // The node's gradient goes once its backward has run, or has thrown.
        struct Drop {
          Node<T>& n;
          ~Drop() {
            n.grad_.reset();
            n.seed_ = nullptr;
          }
        } drop{*n};
        Grads<T> ctx(*n, *this);
        n->backward_(g, ctx);
      }
      for (const auto& edge : n->edges_) {
        const auto& in = edge.impl;
        if (in->grad_fn && in->requires_grad && --in->grad_fn->pending_ == 0) {
          ready.push_back(in->grad_fn.get());
        }
      }
      if (!retain_graph) n->release();
    }
    for (auto& [impl, g] : leaf_grads_) accumulate(impl->grad, std::move(g));
  }

  void deliver(Node<T>& node, std::size_t i, Array<T>&& g) {
    const auto& edge = node.edges_[i];
    Impl& impl = *edge.impl;
    const auto& target = impl.storage->data.shape();
    const auto& recorded = edge.shape;
    if (!shapes_equal(target, recorded)) {
      throw GraphError(std::string("xgrad::backward: input ") + std::to_string(i) + " of '" +
                       node.name_ + "' had shape " + shape_str(to_shape(recorded)) +
                       " when it was used but has shape " + shape_str(to_shape(target)) +
                       " now; it was replaced in place after the forward pass");
    }
    if (!shapes_equal(g.shape(), target)) g = sum_to(std::move(g), target, node.name_);
    if (anomaly) [[unlikely]]
      check_finite(node, i, g);
    if (impl.grad_fn) {
      accumulate(impl.grad_fn->grad_, std::move(g));
    } else {
      to_leaf(edge.impl, std::move(g));
    }
  }

 private:
  struct Scratch {
    std::vector<std::shared_ptr<Node<T>>> nodes;
    std::vector<Node<T>*> stack;
    bool busy = false;
  };
  // Marks the lists busy for the pass; empties them (freeing the pass's nodes) however it ends.
  struct ScratchLease {
    explicit ScratchLease(Scratch& s) : s_(s) { s_.busy = true; }
    ~ScratchLease() {
      s_.nodes.clear();
      s_.stack.clear();
      s_.busy = false;
    }
    ScratchLease(const ScratchLease&) = delete;
    ScratchLease& operator=(const ScratchLease&) = delete;
    Scratch& s_;
  };
  static thread_local Scratch scratch_;

  // Leaf gradients of this pass, added to the leaves' grad() only once the whole sweep has
  // succeeded: a backward that throws halfway (a saved value modified in place, an anomaly)
  // leaves every grad() as it was. The handles keep leaves alive that only the graph held.
  std::vector<std::pair<std::shared_ptr<Impl>, Array<T>>> leaf_grads_;
  std::uint64_t pass_ = 0;

  void to_leaf(const std::shared_ptr<Impl>& impl, Array<T>&& g) {
    if (!impl->requires_grad) return;
    if (capture) {
      auto it = leaf_slots.find(impl.get());
      if (it != leaf_slots.end()) accumulate(*it->second, std::move(g));
      return;
    }
    if (impl->grad && !shapes_equal(impl->grad->shape(), g.shape())) {
      throw GraphError("xgrad::backward: a leaf's accumulated gradient has shape " +
                       shape_str(to_shape(impl->grad->shape())) + " but its value now has shape " +
                       shape_str(to_shape(g.shape())) +
                       "; call clear_grad() after reshaping a parameter");
    }
    // The slot is trusted only if it is this pass's and points back at this leaf: two threads
    // running backward into one shared leaf (a race in itself) must not cross their lists.
    const std::size_t slot = impl->grad_slot;
    if (impl->grad_pass == pass_ && slot < leaf_grads_.size() &&
        leaf_grads_[slot].first.get() == impl.get()) {
      xt::noalias(leaf_grads_[slot].second) += g;
    } else {
      impl->grad_pass = pass_;
      impl->grad_slot = leaf_grads_.size();
      leaf_grads_.emplace_back(impl, std::move(g));
    }
  }

  // The first NaN or infinite gradient, named by the op that produced it and where that op was
  // called from.
  static void check_finite(const Node<T>& node, std::size_t i, const Array<T>& g) {
    const std::size_t bad = first_non_finite(g);
    if (bad == std::string::npos) return;
    throw AnomalyError(std::string("xgrad::backward (anomaly mode): '") + node.name_ +
                       "' created at " + location_str(node.where_) + " produced " +
                       value_str(g.data()[bad]) + " in the gradient of its input " +
                       std::to_string(i) + " (shape " + shape_str(to_shape(g.shape())) +
                       ", flat index " + std::to_string(bad) + ")");
  }

  static void accumulate(Slot& slot, Array<T>&& g) {
    if (!slot) {
      slot = std::move(g);
    } else {
      xt::noalias(*slot) += g;
    }
  }
};

template <class T>
thread_local typename Engine<T>::Scratch Engine<T>::scratch_;

template <class T>
void Grads<T>::to(std::size_t i, Array<T>&& gradient) {
  if (needs(i)) engine_.deliver(node_, i, std::move(gradient));
}

// ---- entry points ----

template <class T>
bool needs_graph(TensorList<T> inputs) {
  if (!modes.grad) return false;
  for (const auto& t : inputs) {
    if (t.requires_grad()) return true;
  }
  return false;
}

template <class T>
Tensor<T> record(OpName op, Array<T>&& value, TensorList<T> inputs, BackwardFn<T> backward) {
  if (!backward) {
    throw GraphError(std::string("xgrad::record: '") + op.name +
                     "' was given no backward function");
  }
  Tensor<T> out(std::move(value));
  if (!needs_graph(inputs)) return out;
  const auto& impl = out.impl();
  impl->requires_grad = true;
  impl->grad_fn = std::make_shared<Node<T>>(op.name, inputs, impl->storage, std::move(backward),
                                            modes.anomaly ? op.where : Location());
  return out;
}

namespace {
template <class V>
void run_backward(const std::shared_ptr<detail::TensorImpl<V>>& impl, const Array<V>& seed,
                  bool retain_graph) {
  if (!impl->requires_grad) {
    throw GraphError("xgrad::backward: the tensor of shape " +
                     shape_str(to_shape(impl->storage->data.shape())) +
                     " does not require grad; no input of its graph has requires_grad set");
  }
  Engine<V> engine;
  engine.retain_graph = retain_graph;
  engine.run({{impl, &seed}});
}
}  // namespace

template <class V>
void Tensor<V>::backward(bool retain_graph) const {
  const auto& v = value();
  if (v.size() != 1) {
    throw GraphError("xgrad::backward: the output has shape " + shape_str(shape()) + " (" +
                     std::to_string(v.size()) +
                     " elements); a non-scalar output needs an explicit gradient");
  }
  run_backward(impl_, Array<V>(v.shape(), V(1)), retain_graph);
}

template <class V>
void Tensor<V>::backward(const Array<V>& gradient, bool retain_graph) const {
  const auto& impl = checked("backward");
  if (impl.requires_grad && !shapes_equal(gradient.shape(), impl.storage->data.shape())) {
    throw ShapeError("xgrad::backward: gradient of shape " + shape_str(to_shape(gradient.shape())) +
                     " for an output of shape " + shape_str(shape()));
  }
  run_backward(impl_, gradient, retain_graph);
}

template <class T>
std::vector<Tensor<T>> grad(const std::vector<Tensor<T>>& outputs,
                            const std::vector<Tensor<T>>& inputs,
                            const std::vector<Array<T>>& grad_outputs, bool retain_graph,
                            bool allow_unused) {
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size()) {
    throw ValueError("xgrad::grad: " + std::to_string(outputs.size()) + " outputs but " +
                     std::to_string(grad_outputs.size()) + " grad_outputs");
  }
  Engine<T> engine;
  engine.retain_graph = retain_graph;
  engine.capture = true;
  std::vector<std::optional<Array<T>>> slots(inputs.size());
  std::vector<std::size_t> first(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& impl = inputs[i].impl();
    if (!impl) throw Error("xgrad::grad: input " + std::to_string(i) + " is undefined");
    if (!impl->requires_grad) {
      throw GraphError("xgrad::grad: input " + std::to_string(i) + " (shape " +
                       shape_str(inputs[i].shape()) + ") does not require grad");
    }
    first[i] = i;
    for (std::size_t j = 0; j < i; ++j) {
      if (inputs[j].impl() == impl) first[i] = first[j];
    }
    if (first[i] != i) continue;
    if (impl->grad_fn) {
      engine.node_slots[impl->grad_fn.get()] = &slots[i];
    } else {
      engine.leaf_slots[impl.get()] = &slots[i];
    }
  }
  typename Engine<T>::Roots roots;
  std::vector<Array<T>> ones;  // the seeds of one-element outputs, alive for the pass
  ones.reserve(outputs.size());
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const auto& out = outputs[k];
    if (!out.requires_grad()) {
      throw GraphError("xgrad::grad: output " + std::to_string(k) + " (shape " +
                       shape_str(out.shape()) + ") does not require grad");
    }
    if (grad_outputs.empty()) {
      if (out.numel() != 1) {
        throw GraphError("xgrad::grad: output " + std::to_string(k) + " has shape " +
                         shape_str(out.shape()) + "; a non-scalar output needs a grad_output");
      }
      ones.emplace_back(out.value().shape(), T(1));
      roots.emplace_back(out.impl(), &ones.back());
    } else {
      if (!shapes_equal(grad_outputs[k].shape(), out.value().shape())) {
        throw ShapeError("xgrad::grad: grad_output " + std::to_string(k) + " has shape " +
                         shape_str(to_shape(grad_outputs[k].shape())) + " but output has shape " +
                         shape_str(out.shape()));
      }
      roots.emplace_back(out.impl(), &grad_outputs[k]);
    }
  }
  engine.run(roots);
  std::vector<Tensor<T>> result;
  result.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto& slot = slots[first[i]];
    if (slot) {
      result.emplace_back(first[i] == i ? std::move(*slot) : Array<T>(result[first[i]].value()));
    } else if (allow_unused) {
      result.push_back(Tensor<T>::zeros(inputs[i].shape()));
    } else {
      throw GraphError("xgrad::grad: input " + std::to_string(i) + " (shape " +
                       shape_str(inputs[i].shape()) +
                       ") is not reachable from the outputs; pass allow_unused=true for zeros");
    }
  }
  return result;
}

#define XGRAD_INSTANTIATE_ENGINE(T)                                               \
  template class Node<T>;                                                         \
  template class Grads<T>;                                                        \
  template class Engine<T>;                                                       \
  template bool needs_graph<T>(TensorList<T>);                                    \
  template Tensor<T> record<T>(OpName, Array<T>&&, TensorList<T>, BackwardFn<T>); \
  template void Tensor<T>::backward(bool) const;                                  \
  template void Tensor<T>::backward(const Array<T>&, bool) const;                 \
  template std::vector<Tensor<T>> grad<T>(const std::vector<Tensor<T>>&,          \
                                          const std::vector<Tensor<T>>&,          \
                                          const std::vector<Array<T>>&, bool, bool);

XGRAD_INSTANTIATE_ENGINE(float)
XGRAD_INSTANTIATE_ENGINE(double)

}  // namespace xgrad
