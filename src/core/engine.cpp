// The backward engine: a pass (GraphTask) orders the graph, sweeps it once in reverse, reduces each
// gradient to its input's shape, accumulates, runs hooks and frees what it no longer needs. It
// knows no operation: the few sums it records under create_graph (undoing broadcasting, adding
// two contributions) are the engine's own bookkeeping made differentiable.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <span>
#include <string>
#include <unordered_map>

#include <xgrad/autograd.hpp>
#include <xgrad/node.hpp>
#include <xgrad/profiler.hpp>

namespace xgrad {

namespace {
// Both flags in one thread-local so that record() reads them with one TLS access.
struct Modes {
  bool grad = true;
  bool anomaly = false;
};
thread_local Modes modes;
// Relaxed: a count, not a synchronisation point; a node may die on another thread than the one
// that made it, so the count cannot be thread-local.
std::atomic<std::int64_t> live_node_count{0};

// Grad mode set for the duration of a derivative: off for a plain pass, on under create_graph.
struct GradMode {
  explicit GradMode(bool on) : previous_(modes.grad) { modes.grad = on; }
  ~GradMode() { modes.grad = previous_; }
  GradMode(const GradMode&) = delete;
  GradMode& operator=(const GradMode&) = delete;
  bool previous_;
};

template <class S1, class S2>
bool shapes_equal(const S1& a, const S2& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

template <class S>
Shape to_shape(const S& s) {
  return Shape(s.begin(), s.end());
}

// The axes along which a gradient of shape `gs` is summed to reach `target` (the leading dims
// the input did not have and the dims where it had extent 1), or nullopt when it cannot.
template <class S1, class S2>
std::optional<std::vector<std::size_t>> reduction_axes(const S1& gs, const S2& target) {
  if (gs.size() < target.size()) return std::nullopt;
  const std::size_t lead = gs.size() - target.size();
  std::vector<std::size_t> axes;
  for (std::size_t i = 0; i < lead; ++i) axes.push_back(i);
  for (std::size_t j = 0; j < target.size(); ++j) {
    if (target[j] == gs[j + lead]) continue;
    if (target[j] != 1) return std::nullopt;
    axes.push_back(j + lead);
  }
  return axes;
}

template <class T, class S>
Array<T> sum_to_array(const Array<T>& g, const S& target, const std::vector<std::size_t>& axes) {
  // xtensor's reducers misbehave on empty arrays; the sum of nothing is zero anyway.
  if (g.size() == 0) return Array<T>(to_shape(target), T(0));
  Array<T> reduced = xt::sum(g, axes);
  reduced.reshape(target);
  return reduced;
}

template <class T>
Tensor<T> expand_to(const Tensor<T>& g, const Shape& target);

// Undoes broadcasting, recorded: its derivative broadcasts back (expand_to), whose derivative is
// this sum again, so gradients of any order reduce the same way.
template <class T>
Tensor<T> sum_to(const Tensor<T>& g, const Shape& target, const std::vector<std::size_t>& axes) {
  return record<T>(
      "sum_to", sum_to_array(g.value(), target, axes), {g},
      [](const Tensor<T>& grad, Grads<T>& ctx) {
        if (ctx.needs(0)) ctx.to(0, expand_to(grad, to_shape(ctx.shape(0))));
      },
      Saves::none());
}

template <class T>
Tensor<T> expand_to(const Tensor<T>& g, const Shape& target) {
  Array<T> out = xt::broadcast(g.value(), target);
  return record<T>(
      "expand", std::move(out), {g},
      [](const Tensor<T>& grad, Grads<T>& ctx) {
        if (!ctx.needs(0)) return;
        const Shape target_shape = to_shape(ctx.shape(0));
        auto axes = reduction_axes(grad.value().shape(), target_shape);
        ctx.to(0, sum_to(grad, target_shape, *axes));
      },
      Saves::none());
}

// a + b of two gradients of one shape, recorded (under create_graph) like an add.
template <class T>
Tensor<T> add_grads(const Tensor<T>& a, const Tensor<T>& b) {
  Array<T> sum = a.value() + b.value();
  return record<T>(
      "accumulate_grad", std::move(sum), {a, b},
      [](const Tensor<T>& grad, Grads<T>& ctx) {
        ctx.to(0, grad);
        ctx.to(1, grad);
      },
      Saves::none());
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

// True when nothing else holds the tensor or its value (a view's elements, or an array moved out
// of one, are held by others too) and it has no history, so that adding into it in place is
// unobservable.
template <class T>
bool exclusively_owned(const std::shared_ptr<detail::TensorImpl<T>>& impl) {
  return impl.use_count() == 1 && impl->storage.use_count() == 1 &&
         !impl->storage->data.storage().shared() && !impl->requires_grad;
}
}  // namespace

namespace detail {
// Pointer -> index, open addressing with linear probing: a pass looks a node up once per edge,
// and a map reused pass after pass allocates nothing once it has grown.
class PtrIndex {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  // The index stored for `key`, or `value` stored now; second is true when inserted.
  std::pair<std::size_t, bool> emplace(const void* key, std::size_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    std::size_t i = hash(key) & (slots_.size() - 1);
    while (slots_[i].first != nullptr) {
      if (slots_[i].first == key) return {slots_[i].second, false};
      i = (i + 1) & (slots_.size() - 1);
    }
    slots_[i] = {key, value};
    ++size_;
    return {value, true};
  }
  std::size_t find(const void* key) const {
    if (slots_.empty()) return npos;
    std::size_t i = hash(key) & (slots_.size() - 1);
    while (slots_[i].first != nullptr) {
      if (slots_[i].first == key) return slots_[i].second;
      i = (i + 1) & (slots_.size() - 1);
    }
    return npos;
  }
  void clear() {
    // A map grown by one huge pass is dropped rather than wiped slot by slot after every pass.
    if (slots_.size() > (std::size_t{1} << 16)) {
      std::vector<Slot>().swap(slots_);
    } else if (size_ != 0) {
      std::fill(slots_.begin(), slots_.end(), Slot{nullptr, 0});
    }
    size_ = 0;
  }

 private:
  using Slot = std::pair<const void*, std::size_t>;
  static std::size_t hash(const void* key) {
    auto x = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(key));
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return static_cast<std::size_t>(x);
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<std::size_t>(16, old.size() * 2), Slot{nullptr, 0});
    size_ = 0;
    for (const auto& [k, v] : old) {
      if (k != nullptr) emplace(k, v);
    }
  }
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};
}  // namespace detail
using detail::PtrIndex;

bool is_grad_enabled() {
  return modes.grad;
}
NoGradGuard::NoGradGuard() : previous_(modes.grad) {
  modes.grad = false;
}
NoGradGuard::~NoGradGuard() {
  modes.grad = previous_;
}

EnableGradGuard::EnableGradGuard() : previous_(modes.grad) {
  modes.grad = true;
}
EnableGradGuard::~EnableGradGuard() {
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
Node<T>::Node(const char* name, TensorList<T> inputs,
              const std::shared_ptr<detail::Storage<T>>& output, BackwardFn<T> backward,
              Saves saves, Location where)
    : name_(name), where_(where), backward_(std::move(backward)) {
  edges_.reserve(inputs.size());
  std::size_t i = 0;
  for (const auto& in : inputs) {
    const auto& impl = in.impl();
    Edge e{nullptr, nullptr, nullptr, impl->storage->counter(), impl->storage->data.shape()};
    if (impl->requires_grad) {
      if (impl->grad_fn) {
        e.fn = impl->grad_fn;
      } else {
        e.leaf = impl;
      }
    }
    if (saves.reads(i)) e.saved = impl;
    edges_.push_back(std::move(e));
    ++i;
  }
  if (saves.output) {
    output_ = output;
    output_version_ = output->counter();
  }
  live_node_count.fetch_add(1, std::memory_order_relaxed);
}

template <class T>
Node<T>::~Node() {
  live_node_count.fetch_sub(1, std::memory_order_relaxed);
  // Destroying a tensor destroys its node, which drops its inputs' nodes, which drop theirs...
  // Done naively that recursion overflows the stack on a long chain. Instead, take over the
  // inputs of every node about to die with us, so each destructor below finds nothing to free.
  std::vector<std::shared_ptr<Node>> pending;
  for (auto& e : edges_) {
    if (e.fn) pending.push_back(std::move(e.fn));
  }
  edges_.clear();
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    if (n.use_count() == 1) {
      for (auto& e : n->edges_) {
        if (e.fn) pending.push_back(std::move(e.fn));
      }
      n->edges_.clear();
    }
  }
}

template <class T>
void Node<T>::release() {
  released_ = true;
  backward_ = nullptr;
  edges_.clear();
  output_.reset();
}

template <class T>
void Grads<T>::bad_index(std::size_t i) const {
  throw GraphError(std::string("xgrad::backward: the derivative of '") + node_.name_ +
                   "' refers to input " + std::to_string(i) + " but the op has " +
                   std::to_string(node_.edges_.size()) + " input(s)");
}

template <class T>
void Grads<T>::not_saved(std::size_t i) const {
  const bool is_output = i == node_.edges_.size();
  throw GraphError(std::string("xgrad::backward: the derivative of '") + node_.name_ + "' reads " +
                   (is_output ? std::string("its output") : "input " + std::to_string(i)) +
                   ", which record() was told it does not save (Saves)");
}

template <class T>
void Grads<T>::modified(std::size_t i) const {
  const bool is_output = i == node_.edges_.size();
  const auto& storage = is_output ? *node_.output_ : *node_.edges_[i].saved->storage;
  const auto saved = is_output ? node_.output_version_ : node_.edges_[i].version;
  throw GraphError(std::string("xgrad::backward: ") +
                   (is_output ? std::string("the output") : "input " + std::to_string(i)) +
                   " of '" + node_.name_ + "' (shape " + shape_str(to_shape(storage.data.shape())) +
                   ") was modified in place after '" + node_.name_ + "' saved it (version " +
                   std::to_string(storage.counter()) + ", saved at version " +
                   std::to_string(saved) + ")");
}

template <class T>
const Array<T>& Grads<T>::value(std::size_t i) const {
  check_index(i);
  const auto& edge = node_.edges_[i];
  if (!edge.saved) not_saved(i);
  const auto& storage = *edge.saved->storage;
  if (storage.counter() != edge.version) modified(i);
  return storage.data;
}

template <class T>
const Array<T>& Grads<T>::out_value() const {
  if (!node_.output_) not_saved(size());
  if (node_.output_->counter() != node_.output_version_) modified(size());
  return node_.output_->data;
}

template <class T>
Tensor<T> Grads<T>::in(std::size_t i) const {
  value(i);  // checks
  // The input as the op saw it: under create_graph a leaf or a node's output that gradients
  // flow back through, otherwise a value (grad mode is off, so nothing records).
  return Tensor<T>(node_.edges_[i].saved);
}

template <class T>
Tensor<T> Grads<T>::out() const {
  out_value();  // checks
  auto impl = detail::make_small<detail::TensorImpl<T>>();
  impl->storage = node_.output_;
  if (create_graph()) {
    // NOTE: a new handle pointing at this node, not the op's own output tensor: the node never
    // owns a tensor that owns it, so no cycle forms.
    impl->requires_grad = true;
    impl->grad_fn = node_.shared_from_this();
  }
  return Tensor<T>(std::move(impl));
}

// ---- the pass ----

namespace {
// The callbacks queued during the pass running on this thread; a nested pass (one started in a
// hook or a derivative) has its own list and puts the outer one back when it ends.
thread_local std::vector<std::function<void()>>* queued_callbacks = nullptr;
}  // namespace

void queue_callback(std::function<void()> fn) {
  if (!fn) throw ValueError("xgrad::queue_callback: the function is empty");
  if (!queued_callbacks) {
    throw GraphError("xgrad::queue_callback: no backward pass is running on this thread");
  }
  queued_callbacks->push_back(std::move(fn));
}

template <class T>
class GraphTask {
 public:
  using Impl = detail::TensorImpl<T>;
  // An output the pass starts from and the gradient given for it.
  using Root = std::pair<std::shared_ptr<Impl>, Tensor<T>>;

  GraphTask(bool retain_graph, bool create_graph)
      : retain_graph_(retain_graph),
        create_graph_(create_graph),
        own_(workspace_.busy ? std::make_unique<Workspace>() : nullptr),
        ws_(own_ ? *own_ : workspace_),
        index_(ws_.index),
        states_(ws_.states),
        leaf_index_(ws_.leaf_index),
        leaves_(ws_.leaves),
        committed_(ws_.committed),
        deferred_(ws_.deferred) {
    ws_.busy = true;
  }
  ~GraphTask() { ws_.clear(); }
  GraphTask(const GraphTask&) = delete;
  GraphTask& operator=(const GraphTask&) = delete;

  // grad(): the inputs whose gradients are captured instead of accumulated into grad().
  void capture(const std::shared_ptr<Impl>& impl, std::size_t slot) {
    capture_ = true;
    if (impl->grad_fn) {
      node_sinks_.emplace(impl->grad_fn.get(), slot);
    } else {
      leaf_sinks_.emplace(impl.get(), slot);
    }
    if (captured_.size() <= slot) captured_.resize(slot + 1);
  }
  std::vector<Tensor<T>>& captured() { return captured_; }

  // Runs the pass from `roots`, each with the gradient given for it.
  void run(std::span<const Root> roots) {
    // The engine's own work (ordering, accumulating, hooks) is this region's self time.
    const profiler::record_function region("backward pass");
    std::vector<std::function<void()>> callbacks;
    struct Queue {  // this pass's callback list while it runs, the outer pass's afterwards
      std::vector<std::function<void()>>* outer;
      ~Queue() { queued_callbacks = outer; }
    } queue{std::exchange(queued_callbacks, &callbacks)};
    discover(roots);
    if (capture_) prune();
    try {
      sweep(roots);
      commit_deferred();
    } catch (...) {
      // A pass that fails leaves every grad() as it was.
      for (auto it = committed_.rbegin(); it != committed_.rend(); ++it) {
        it->first->grad = std::move(it->second);
      }
      throw;
    }
    for (std::size_t i = 0; i < callbacks.size(); ++i) {  // a callback may queue another
      const auto fn = std::move(callbacks[i]);
      fn();
    }
  }

  bool create_graph() const { return create_graph_; }
  bool anomaly() const { return anomaly_; }

  bool needs(const Node<T>& node, std::size_t i) const {
    const auto& e = node.edges_[i];
    if (e.fn) return !capture_ || needed(e.fn.get());
    if (e.leaf) return e.leaf->requires_grad && (!capture_ || leaf_sinks_.count(e.leaf.get()) != 0);
    return false;
  }

  void deliver(Node<T>& node, std::size_t i, Tensor<T> g) {
    auto& edge = node.edges_[i];
    const auto& target = edge.shape;
    if (edge.leaf && !shapes_equal(edge.leaf->storage->data.shape(), target)) {
      throw GraphError(std::string("xgrad::backward: input ") + std::to_string(i) + " of '" +
                       node.name_ + "' had shape " + shape_str(to_shape(target)) +
                       " when it was used but has shape " +
                       shape_str(to_shape(edge.leaf->storage->data.shape())) +
                       " now; it was replaced in place after the forward pass");
    }
    if (!shapes_equal(g.value().shape(), target)) {
      auto axes = reduction_axes(g.value().shape(), target);
      if (!axes) {
        throw ShapeError(std::string("xgrad::backward: '") + node.name_ +
                         "' produced a gradient of shape " + shape_str(g.shape()) +
                         " that does not reduce to its input's shape " +
                         shape_str(to_shape(target)));
      }
      if (create_graph_) {
        g = sum_to(g, to_shape(target), *axes);
      } else {
        g = Tensor<T>(sum_to_array(g.value(), target, *axes));
      }
    }
    if (anomaly_) [[unlikely]]
      check_finite(node, i, g.value());
    if (edge.fn) {
      const std::size_t at = index_.find(edge.fn.get());
      if (at != PtrIndex::npos) accumulate(states_[at].grad, std::move(g));
    } else {
      accumulate(leaf_state(edge.leaf).grad, std::move(g));
    }
  }

  // A gradient computed on arrays under create_graph: it joins the graph through a node that
  // refuses to be differentiated, with the op's own edges so that a second pass reaches it.
  Tensor<T> mark_not_differentiable(Node<T>& node, Array<T>&& g) {
    Tensor<T> out(std::move(g));
    auto err = detail::make_small<Node<T>>(
        node.name_, TensorList<T>(std::vector<Tensor<T>>{}), out.impl()->storage,
        [name = node.name_](const Tensor<T>&, Grads<T>&) {
          throw GraphError(std::string("xgrad::backward: the derivative of '") + name +
                           "' was computed on arrays, so its gradient cannot be differentiated "
                           "again; write the derivative with xgrad ops on Grads::in(), out() and "
                           "the incoming gradient");
        },
        Saves::none(), node.where_);
    for (const auto& e : node.edges_) {
      typename Node<T>::Edge copy{e.fn, e.leaf, nullptr, e.version, e.shape};
      err->edges_.push_back(std::move(copy));
    }
    out.impl()->requires_grad = true;
    out.impl()->grad_fn = std::move(err);
    return out;
  }

 private:
  struct NodeState {
    std::shared_ptr<Node<T>> node;
    std::size_t pending = 0;
    Tensor<T> grad;
    bool needed = true;
  };
  struct LeafState {
    std::shared_ptr<Impl> impl;
    std::size_t pending = 0;
    Tensor<T> grad;
  };

  bool retain_graph_;
  bool create_graph_;
  // Read once per pass: anomaly mode off costs one predictable branch per gradient.
  const bool anomaly_ = modes.anomaly;
  bool capture_ = false;
  std::unordered_map<const Node<T>*, std::size_t> node_sinks_;
  std::unordered_map<const Impl*, std::size_t> leaf_sinks_;
  std::vector<Tensor<T>> captured_;

  // The pass's bookkeeping, in lists that the thread reuses pass after pass (a pass started
  // while another runs on the thread, inside a hook or a derivative, gets its own).
  struct Workspace {
    PtrIndex index;
    std::vector<NodeState> states;
    PtrIndex leaf_index;
    std::vector<LeafState> leaves;
    std::vector<std::size_t> ready;
    std::vector<Node<T>*> stack;
    std::vector<std::pair<std::shared_ptr<Impl>, std::shared_ptr<Impl>>> committed;
    std::vector<std::pair<std::shared_ptr<Impl>, Tensor<T>>> deferred;
    bool busy = false;
    void clear() {
      index.clear();
      leaf_index.clear();
      release(committed);
      release(deferred);
      // Lists grown by a huge graph are given back; everyday sizes are kept for the next pass.
      release(states);
      release(leaves);
      release(ready);
      release(stack);
      busy = false;
    }
    template <class L>
    static void release(L& list) {
      if (list.capacity() > 4096) {
        L().swap(list);
      } else {
        list.clear();
      }
    }
  };
  static thread_local Workspace workspace_;
  std::unique_ptr<Workspace> own_;
  Workspace& ws_;
  PtrIndex& index_;
  std::vector<NodeState>& states_;
  PtrIndex& leaf_index_;
  std::vector<LeafState>& leaves_;
  // Each leaf whose grad() this pass changed, with the gradient it had before.
  std::vector<std::pair<std::shared_ptr<Impl>, std::shared_ptr<Impl>>>& committed_;
  std::vector<std::pair<std::shared_ptr<Impl>, Tensor<T>>>& deferred_;

  bool needed(const Node<T>* n) const {
    const std::size_t at = index_.find(n);
    return at != PtrIndex::npos && states_[at].needed;
  }

  LeafState& leaf_state(const std::shared_ptr<Impl>& impl) {
    const auto [at, inserted] = leaf_index_.emplace(impl.get(), leaves_.size());
    if (inserted) leaves_.push_back({impl, 0, Tensor<T>()});
    return leaves_[at];
  }

  // Every node reachable from the roots, each with the number of edges into it from the others
  // (it runs once they have all delivered), and every leaf with the same count.
  void discover(std::span<const Root> roots) {
    auto& stack = ws_.stack;
    auto visit = [&](const std::shared_ptr<Node<T>>& n) {
      const auto [at, inserted] = index_.emplace(n.get(), states_.size());
      if (!inserted) return at;
      if (n->released_) {
        throw GraphError(std::string("xgrad::backward: the graph through '") + n->name_ +
                         "' was freed by an earlier backward; pass retain_graph=true to the first "
                         "backward to run through it again");
      }
      states_.push_back({n, 0, Tensor<T>(), true});
      stack.push_back(n.get());
      return at;
    };
    for (const auto& [impl, g] : roots) {
      if (impl->grad_fn) visit(impl->grad_fn);
    }
    while (!stack.empty()) {
      Node<T>* n = stack.back();
      stack.pop_back();
      for (const auto& e : n->edges_) {
        if (e.fn) {
          ++states_[visit(e.fn)].pending;
        } else if (e.leaf) {
          ++leaf_state(e.leaf).pending;
        }
      }
    }
  }

  // grad(): marks the nodes from which no captured input can be reached, so that they are
  // skipped (computing a network's weight gradients for a gradient with respect to its input
  // would be waste). A node is needed when it is a sink or one of its edges leads to one;
  // children come before parents in reverse topological order, which Kahn's order gives.
  void prune() {
    std::vector<std::size_t> pending(states_.size());
    for (std::size_t i = 0; i < states_.size(); ++i) pending[i] = states_[i].pending;
    std::vector<std::size_t> order;
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < states_.size(); ++i) {
      if (pending[i] == 0) ready.push_back(i);
    }
    while (!ready.empty()) {
      const std::size_t i = ready.back();
      ready.pop_back();
      order.push_back(i);
      for (const auto& e : states_[i].node->edges_) {
        if (!e.fn) continue;
        const std::size_t j = index_.find(e.fn.get());
        if (--pending[j] == 0) ready.push_back(j);
      }
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      NodeState& s = states_[*it];
      bool need = node_sinks_.count(s.node.get()) != 0;
      for (const auto& e : s.node->edges_) {
        if (need) break;
        if (e.fn) need = states_[index_.find(e.fn.get())].needed;
        if (e.leaf) need = leaf_sinks_.count(e.leaf.get()) != 0;
      }
      s.needed = need;
    }
  }

  void sweep(std::span<const Root> roots) {
    for (const auto& [impl, g] : roots) {
      if (anomaly_) [[unlikely]] {
        const std::size_t bad = first_non_finite(g.value());
        if (bad != std::string::npos) {
          throw AnomalyError(
              "xgrad::backward (anomaly mode): the gradient given for an output of "
              "shape " +
              shape_str(g.shape()) + " holds " + value_str(g.value().data()[bad]) +
              " at flat index " + std::to_string(bad));
        }
      }
      if (impl->grad_fn) {
        accumulate(states_[index_.find(impl->grad_fn.get())].grad, g);
      } else if (impl->requires_grad) {
        accumulate(leaf_state(impl).grad, g);
      }
    }
    // Leaves reached by no node (a root that is a leaf) are final at once.
    for (std::size_t i = 0; i < leaves_.size(); ++i) {
      if (leaves_[i].pending == 0) finish_leaf(leaves_[i]);
    }
    auto& ready = ws_.ready;
    for (std::size_t i = 0; i < states_.size(); ++i) {
      if (states_[i].pending == 0) ready.push_back(i);
    }
    while (!ready.empty()) {
      NodeState& s = states_[ready.back()];
      ready.pop_back();
      Node<T>& n = *s.node;
      if (s.grad.defined()) {
        Tensor<T> g = std::move(s.grad);
        s.grad = Tensor<T>();
        if (n.hooks_) g = run_hooks(*n.hooks_, std::move(g));
        if (capture_) {
          const auto it = node_sinks_.find(&n);
          if (it != node_sinks_.end()) accumulate(captured_[it->second], g);
        }
        if (s.needed) {
          const GradMode mode(create_graph_);
          Grads<T> ctx(n, *this);
          const profiler::record_function region(n.name_, true);
          n.backward_(g, ctx);
        }
      }
      for (const auto& e : n.edges_) {
        if (e.fn) {
          const std::size_t at = index_.find(e.fn.get());
          if (--states_[at].pending == 0) ready.push_back(at);
        } else if (e.leaf) {
          LeafState& leaf = leaves_[leaf_index_.find(e.leaf.get())];
          if (--leaf.pending == 0) finish_leaf(leaf);
        }
      }
      if (!retain_graph_) n.release();
    }
  }

  // A leaf's gradient of this pass is final: its hooks run, then it is captured (grad()) or
  // added to grad(), and the post-accumulate hooks run.
  void finish_leaf(LeafState& leaf) {
    if (!leaf.grad.defined()) return;
    Impl& impl = *leaf.impl;
    Tensor<T> g = std::move(leaf.grad);
    leaf.grad = Tensor<T>();
    if (impl.hooks) g = run_hooks(*impl.hooks, std::move(g));
    if (capture_) {
      const auto it = leaf_sinks_.find(&impl);
      if (it != leaf_sinks_.end()) accumulate(captured_[it->second], std::move(g));
      return;
    }
    if (impl.grad && !shapes_equal(impl.grad->storage->data.shape(), g.value().shape())) {
      throw GraphError("xgrad::backward: a leaf's accumulated gradient has shape " +
                       shape_str(to_shape(impl.grad->storage->data.shape())) +
                       " but its value now has shape " + shape_str(g.shape()) +
                       "; call clear_grad() after reshaping a parameter");
    }
    if (!impl.hooks || impl.hooks->post_accumulate.empty()) {
      // Nothing waits for this leaf: its gradient is added when the whole pass has succeeded,
      // in place where nothing else holds grad(), so that a failing pass changes nothing.
      deferred_.emplace_back(leaf.impl, std::move(g));
      return;
    }
    commit(leaf.impl, std::move(g));
    for (const auto& [id, hook] : impl.hooks->post_accumulate) hook(Tensor<T>(leaf.impl));
  }

  // Adds a final gradient to a leaf's grad(), out of place, remembering the previous one so that
  // a pass failing later can put it back.
  void commit(const std::shared_ptr<Impl>& leaf, Tensor<T> g) {
    Impl& impl = *leaf;
    std::shared_ptr<Impl> previous = impl.grad;
    impl.grad = merged(previous, std::move(g)).impl();
    committed_.emplace_back(leaf, std::move(previous));
  }

  // The leaf gradients held back until the pass succeeded.
  void commit_deferred() {
    for (auto& [leaf, g] : deferred_) {
      Impl& impl = *leaf;
      if (impl.grad && !create_graph_ && !g.requires_grad() && exclusively_owned(impl.grad)) {
        xt::noalias(impl.grad->storage->data) += g.value();
        ++impl.grad->storage->counter();
      } else {
        impl.grad = merged(impl.grad, std::move(g)).impl();
      }
    }
  }

  // previous + g as a new tensor (recorded under create_graph or when previous has a graph);
  // g itself when there is no previous gradient, unless something else still holds it (a seed
  // the caller gave, a gradient handed to two inputs): then a copy.
  Tensor<T> merged(const std::shared_ptr<Impl>& previous, Tensor<T> g) {
    if (!previous) {
      if (!create_graph_ && !exclusively_owned(g.impl())) return Tensor<T>(Array<T>(g.value()));
      return g;
    }
    if (create_graph_ || previous->grad_fn) {
      const GradMode mode(create_graph_);
      return add_grads(Tensor<T>(previous), g);
    }
    return Tensor<T>(Array<T>(previous->storage->data + g.value()));
  }

  Tensor<T> run_hooks(detail::Hooks<T>& hooks, Tensor<T> g) {
    for (const auto& [id, hook] : hooks.grad) {
      Tensor<T> replaced = hook(g);
      if (!replaced.defined()) continue;
      if (!shapes_equal(replaced.value().shape(), g.value().shape())) {
        throw ShapeError("xgrad::backward: a hook returned a gradient of shape " +
                         shape_str(replaced.shape()) + " for a gradient of shape " +
                         shape_str(g.shape()));
      }
      g = std::move(replaced);
    }
    return g;
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

  void accumulate(Tensor<T>& slot, Tensor<T> g) {
    if (!slot.defined()) {
      slot = std::move(g);
    } else if (create_graph_) {
      const GradMode mode(true);
      slot = add_grads(slot, g);
    } else if (exclusively_owned(slot.impl())) {
      xt::noalias(slot.mutable_value()) += g.value();
    } else {
      slot = Tensor<T>(Array<T>(slot.value() + g.value()));
    }
  }
};

template <class T>
thread_local typename GraphTask<T>::Workspace GraphTask<T>::workspace_;

template <class T>
bool Grads<T>::needs(std::size_t i) const {
  check_index(i);
  return task_.needs(node_, i);
}

template <class T>
bool Grads<T>::create_graph() const {
  return task_.create_graph();
}

template <class T>
bool Grads<T>::owns_grad(const Tensor<T>& grad) const {
  return !task_.create_graph() && grad.defined() && exclusively_owned(grad.impl());
}

template <class T>
void Grads<T>::to(std::size_t i, Tensor<T> gradient) {
  if (!needs(i)) return;
  if (!gradient.defined()) {
    throw GraphError(std::string("xgrad::backward: the derivative of '") + node_.name_ +
                     "' handed an undefined gradient to input " + std::to_string(i));
  }
  task_.deliver(node_, i, std::move(gradient));
}

template <class T>
void Grads<T>::to(std::size_t i, Array<T>&& gradient) {
  if (!needs(i)) return;
  if (task_.create_graph()) {
    task_.deliver(node_, i, task_.mark_not_differentiable(node_, std::move(gradient)));
  } else {
    task_.deliver(node_, i, Tensor<T>(std::move(gradient)));
  }
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
Tensor<T> record(OpName op, Array<T>&& value, TensorList<T> inputs, BackwardFn<T> backward,
                 Saves saves) {
  return record<T>(op, Tensor<T>(std::move(value)), inputs, std::move(backward), saves);
}

template <class T>
Tensor<T> record(OpName op, Tensor<T> out, TensorList<T> inputs, BackwardFn<T> backward,
                 Saves saves) {
  if (!backward) {
    throw GraphError(std::string("xgrad::record: '") + op.name +
                     "' was given no backward function");
  }
  if (!out.defined() || out.requires_grad()) {
    throw GraphError(std::string("xgrad::record: the output given for '") + op.name + "' is " +
                     (out.defined() ? "already part of a graph" : "undefined"));
  }
  if (!needs_graph(inputs)) return out;
  const auto& impl = out.impl();
  impl->requires_grad = true;
  impl->grad_fn = detail::make_small<Node<T>>(op.name, inputs, impl->storage, std::move(backward),
                                              saves, modes.anomaly ? op.where : Location());
  return out;
}

template <class T>
Tensor<T> share(const Tensor<T>& a, const Shape& shape) {
  if (!a.defined()) throw Error("xgrad::share: the tensor is undefined");
  const auto& source = a.impl()->storage;
  const auto count =
      std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>());
  if (count != source->data.size()) {
    throw ShapeError("xgrad::share: shape " + shape_str(shape) + " does not have the " +
                     std::to_string(source->data.size()) + " elements of shape " +
                     shape_str(a.shape()));
  }
  // A view's version counter is its base's: a chain of reshapes shares one counter.
  const std::shared_ptr<detail::Storage<T>>& base = source->base ? source->base : source;
  typename Array<T>::inner_shape_type extents(shape.begin(), shape.end());
  typename Array<T>::inner_strides_type strides(extents.size());
  xt::compute_strides(extents, xt::layout_type::row_major, strides);
  detail::Buffer<T> elements = [&] {
    // Making elements shared changes the source's buffer: one thread at a time.
    static std::mutex mutex;
    const std::lock_guard lock(mutex);
    return detail::Buffer<T>::share(source->data.storage());
  }();
  auto storage = detail::make_small<detail::Storage<T>>(
      Array<T>(std::move(elements), std::move(extents), std::move(strides)));
  storage->base = base;
  auto impl = detail::make_small<detail::TensorImpl<T>>();
  impl->storage = std::move(storage);
  return Tensor<T>(std::move(impl));
}

template <class V>
void Tensor<V>::backward(BackwardOptions options) const {
  const auto& v = value();
  if (v.size() != 1) {
    throw GraphError("xgrad::backward: the output has shape " + shape_str(shape()) + " (" +
                     std::to_string(v.size()) +
                     " elements); a non-scalar output needs an explicit gradient");
  }
  backward_from(Tensor<V>(Array<V>(v.shape(), V(1))), options);
}

template <class V>
void Tensor<V>::backward_from(const Tensor<V>& gradient, BackwardOptions options) const {
  const auto& impl = checked("backward");
  if (!gradient.defined()) throw Error("xgrad::backward: the gradient given is undefined");
  if (!impl.requires_grad) {
    throw GraphError("xgrad::backward: the tensor of shape " + shape_str(shape()) +
                     " does not require grad; no input of its graph has requires_grad set");
  }
  if (!shapes_equal(gradient.value().shape(), impl.storage->data.shape())) {
    throw ShapeError("xgrad::backward: gradient of shape " + shape_str(gradient.shape()) +
                     " for an output of shape " + shape_str(shape()));
  }
  GraphTask<V> task(options.retain_graph.value_or(options.create_graph), options.create_graph);
  const typename GraphTask<V>::Root root{impl_, gradient};
  task.run({&root, 1});
}

template <class T>
std::vector<Tensor<T>> grad(const std::vector<Tensor<T>>& outputs,
                            const std::vector<Tensor<T>>& inputs,
                            const std::vector<Tensor<T>>& grad_outputs, GradOptions options) {
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size()) {
    throw ValueError("xgrad::grad: " + std::to_string(outputs.size()) + " outputs but " +
                     std::to_string(grad_outputs.size()) + " grad_outputs");
  }
  GraphTask<T> task(options.retain_graph.value_or(options.create_graph), options.create_graph);
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
      const auto& other = inputs[j].impl();
      const bool same = other == impl || (impl->grad_fn && other->grad_fn == impl->grad_fn);
      if (same) first[i] = first[j];
    }
    if (first[i] == i) task.capture(impl, i);
  }
  std::vector<typename GraphTask<T>::Root> roots;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const auto& out = outputs[k];
    if (!out.defined()) throw Error("xgrad::grad: output " + std::to_string(k) + " is undefined");
    if (!out.requires_grad()) {
      throw GraphError("xgrad::grad: output " + std::to_string(k) + " (shape " +
                       shape_str(out.shape()) + ") does not require grad");
    }
    if (grad_outputs.empty()) {
      if (out.numel() != 1) {
        throw GraphError("xgrad::grad: output " + std::to_string(k) + " has shape " +
                         shape_str(out.shape()) + "; a non-scalar output needs a grad_output");
      }
      roots.emplace_back(out.impl(), Tensor<T>(Array<T>(out.value().shape(), T(1))));
    } else {
      const auto& go = grad_outputs[k];
      if (!go.defined() || !shapes_equal(go.value().shape(), out.value().shape())) {
        throw ShapeError("xgrad::grad: grad_output " + std::to_string(k) + " has shape " +
                         (go.defined() ? shape_str(go.shape()) : std::string("(undefined)")) +
                         " but output has shape " + shape_str(out.shape()));
      }
      roots.emplace_back(out.impl(), go);
    }
  }
  task.run(roots);
  auto& captured = task.captured();
  std::vector<Tensor<T>> result;
  result.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::size_t f = first[i];
    if (f < captured.size() && captured[f].defined()) {
      result.push_back(captured[f]);
    } else if (options.allow_unused) {
      result.push_back(Tensor<T>::zeros(inputs[i].shape()));
    } else {
      throw GraphError("xgrad::grad: input " + std::to_string(i) + " (shape " +
                       shape_str(inputs[i].shape()) +
                       ") is not reachable from the outputs; pass allow_unused=true for zeros");
    }
  }
  return result;
}

// ---- hooks ----

template <class V>
std::size_t Tensor<V>::register_hook(std::function<Tensor(const Tensor&)> hook) {
  auto& impl = checked("register_hook");
  if (!impl.requires_grad) {
    throw GraphError("xgrad::register_hook: the tensor of shape " + shape_str(shape()) +
                     " does not require grad, so no gradient will flow into it");
  }
  auto& hooks = impl.grad_fn ? impl.grad_fn->hooks() : impl.hooks;
  if (!hooks) hooks = std::make_shared<detail::Hooks<V>>();
  const std::size_t id = hooks->next_id++;
  hooks->grad.emplace_back(id, std::move(hook));
  return id;
}

template <class V>
std::size_t Tensor<V>::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) {
  auto& impl = checked("register_post_accumulate_grad_hook");
  if (impl.grad_fn || !impl.requires_grad) {
    throw GraphError(
        "xgrad::register_post_accumulate_grad_hook: only a leaf that requires grad accumulates a "
        "gradient (this tensor of shape " +
        shape_str(shape()) +
        (impl.grad_fn ? " is the output of '" + std::string(impl.grad_fn->name()) + "')"
                      : " does not require grad)"));
  }
  if (!impl.hooks) impl.hooks = std::make_shared<detail::Hooks<V>>();
  const std::size_t id = impl.hooks->next_id++;
  impl.hooks->post_accumulate.emplace_back(id, std::move(hook));
  return id;
}

template <class V>
bool Tensor<V>::remove_hook(std::size_t id) {
  auto& impl = checked("remove_hook");
  auto& hooks = impl.grad_fn ? impl.grad_fn->hooks() : impl.hooks;
  if (!hooks) return false;
  const auto erase = [id](auto& list) {
    const auto before = list.size();
    std::erase_if(list, [id](const auto& entry) { return entry.first == id; });
    return list.size() != before;
  };
  const bool a = erase(hooks->grad);
  const bool b = erase(hooks->post_accumulate);
  return a || b;
}

#define XGRAD_INSTANTIATE_ENGINE(T)                                                          \
  template class Node<T>;                                                                    \
  template class Grads<T>;                                                                   \
  template bool needs_graph<T>(TensorList<T>);                                               \
  template Tensor<T> record<T>(OpName, Array<T>&&, TensorList<T>, BackwardFn<T>, Saves);     \
  template Tensor<T> record<T>(OpName, Tensor<T>, TensorList<T>, BackwardFn<T>, Saves);      \
  template Tensor<T> share<T>(const Tensor<T>&, const Shape&);                               \
  template void Tensor<T>::backward(BackwardOptions) const;                                  \
  template void Tensor<T>::backward_from(const Tensor<T>&, BackwardOptions) const;           \
  template std::size_t Tensor<T>::register_hook(std::function<Tensor<T>(const Tensor<T>&)>); \
  template std::size_t Tensor<T>::register_post_accumulate_grad_hook(                        \
      std::function<void(const Tensor<T>&)>);                                                \
  template bool Tensor<T>::remove_hook(std::size_t);                                         \
  template std::vector<Tensor<T>> grad<T>(const std::vector<Tensor<T>>&,                     \
                                          const std::vector<Tensor<T>>&,                     \
                                          const std::vector<Tensor<T>>&, GradOptions);

XGRAD_INSTANTIATE_ENGINE(float)
XGRAD_INSTANTIATE_ENGINE(double)

}  // namespace xgrad
