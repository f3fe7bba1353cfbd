#include <algorithm>
#include <cmath>
#include <limits>
#include <locale>
#include <ostream>
#include <sstream>

#include <xgrad/autograd.hpp>
#include <xgrad/node.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad {

Generator& default_generator() {
  thread_local Generator gen;
  return gen;
}

void manual_seed(std::uint64_t seed) {
  default_generator().manual_seed(seed);
}

// ---- Generator state ----

std::string Generator::get_state() const {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out << engine_;
  return out.str();
}

void Generator::set_state(const std::string& state) {
  // The standard's text form: 312 words then the position, separated by spaces. Parsed strictly,
  // since operator>> alone would accept a truncated state followed by anything.
  std::istringstream in(state);
  in.imbue(std::locale::classic());
  std::mt19937_64 engine;
  in >> engine;
  std::string rest;
  if (in.fail() || (in >> rest, !rest.empty())) {
    const std::string shown = state.size() > 40 ? state.substr(0, 37) + "..." : state;
    throw ValueError("xgrad::Generator::set_state: not a state from get_state(): \"" + shown +
                     "\" (" + std::to_string(state.size()) + " characters)");
  }
  engine_ = engine;
}

template <class V>
Tensor<V>::Tensor(Array<V>&& value, bool requires_grad)
    : impl_(detail::make_small<detail::TensorImpl<V>>()) {
  impl_->storage = detail::make_small<detail::Storage<V>>(std::move(value));
  impl_->requires_grad = requires_grad;
}

template <class V>
detail::TensorImpl<V>& Tensor<V>::checked(const char* what) const {
  if (!impl_) throw Error(std::string("xgrad::Tensor::") + what + ": the tensor is undefined");
  return *impl_;
}

// ---- factories ----

namespace detail {
void item_out_of_range(double value) {
  throw ValueError("xgrad::item: value " + std::to_string(value) +
                   " does not fit in the requested integer type");
}

void check_element_count(const char* op, const Shape& shape, std::size_t element_size) {
  std::size_t n = 1;
  bool overflow = false;
  bool empty = false;
  for (std::size_t extent : shape) {
    empty = empty || extent == 0;
    overflow = __builtin_mul_overflow(n, extent, &n) || overflow;
  }
  if (empty) return;
  const auto limit = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
  if (overflow || n > limit / element_size) {
    throw ValueError(std::string("xgrad::") + op + ": shape " + shape_str(shape) +
                     " has more elements than memory can address");
  }
}
}  // namespace detail

template <class V>
Tensor<V> Tensor<V>::zeros(const Shape& shape) {
  detail::check_element_count("zeros", shape, sizeof(V));
  return Tensor(Array<V>(shape, V(0)));
}

template <class V>
Tensor<V> Tensor<V>::ones(const Shape& shape) {
  detail::check_element_count("ones", shape, sizeof(V));
  return Tensor(Array<V>(shape, V(1)));
}

template <class V>
Tensor<V> Tensor<V>::full(const Shape& shape, V value) {
  detail::check_element_count("full", shape, sizeof(V));
  return Tensor(Array<V>(shape, value));
}

template <class V>
Tensor<V> Tensor<V>::arange(V start, V stop, V step) {
  if (step == V(0) || !std::isfinite(step) || !std::isfinite(start) || !std::isfinite(stop)) {
    throw ValueError("xgrad::arange: start " + std::to_string(start) + ", stop " +
                     std::to_string(stop) + ", step " + std::to_string(step) +
                     " must be finite with a non-zero step");
  }
  const double span = std::ceil((static_cast<double>(stop) - start) / step);
  if (span > 1e12) {
    throw ValueError("xgrad::arange: start " + std::to_string(start) + ", stop " +
                     std::to_string(stop) + ", step " + std::to_string(step) + " would give " +
                     std::to_string(span) + " elements");
  }
  const std::size_t n = span > 0 ? static_cast<std::size_t>(span) : 0;
  Array<V> out(Shape{n});
  for (std::size_t i = 0; i < n; ++i)
    out(i) = static_cast<V>(start + static_cast<double>(i) * step);
  return Tensor(std::move(out));
}

template <class V>
Tensor<V> Tensor<V>::linspace(V start, V end, std::size_t steps) {
  if (!std::isfinite(start) || !std::isfinite(end)) {
    throw ValueError("xgrad::linspace: start " + std::to_string(start) + " and end " +
                     std::to_string(end) + " must be finite");
  }
  detail::check_element_count("linspace", Shape{steps}, sizeof(V));
  Array<V> out = Array<V>::from_shape({steps});
  // start + i * step for the first half and end - (steps - 1 - i) * step for the second, as
  // PyTorch does, so that both ends come out exact.
  const V step = steps > 1 ? (end - start) / static_cast<V>(steps - 1) : V(0);
  for (std::size_t i = 0; i < steps; ++i) {
    out(i) = i < steps / 2 ? start + step * static_cast<V>(i)
                           : end - step * static_cast<V>(steps - 1 - i);
  }
  return Tensor(std::move(out));
}

template <class V>
Tensor<V> Tensor<V>::eye(std::size_t n) {
  detail::check_element_count("eye", Shape{n, n}, sizeof(V));
  Array<V> out(Shape{n, n}, V(0));
  for (std::size_t i = 0; i < n; ++i) out(i, i) = V(1);
  return Tensor(std::move(out));
}

template <class V>
Tensor<V> Tensor<V>::rand(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  return rand(shape, gen);
}

template <class V>
Tensor<V> Tensor<V>::rand(const Shape& shape, Generator& gen) {
  detail::check_element_count("rand", shape, sizeof(V));
  Array<V> out(shape);
  std::uniform_real_distribution<V> dist(V(0), V(1));
  for (auto& v : out) v = dist(gen.engine());
  return Tensor(std::move(out));
}

template <class V>
Tensor<V> Tensor<V>::randn(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  return randn(shape, gen);
}

template <class V>
Tensor<V> Tensor<V>::randn(const Shape& shape, Generator& gen) {
  detail::check_element_count("randn", shape, sizeof(V));
  Array<V> out(shape);
  std::normal_distribution<V> dist(V(0), V(1));
  for (auto& v : out) v = dist(gen.engine());
  return Tensor(std::move(out));
}

template <class V>
Tensor<V> Tensor<V>::scalar(V value) {
  Array<V> out = Array<V>::from_shape({});
  out() = value;
  return Tensor(std::move(out));
}

namespace {
// Shape of a nested list, checking that every sibling has the same shape.
template <class V>
void nested_shape(const NestedList<V>& node, std::size_t depth, Shape& shape, bool& first_leaf) {
  if (node.leaf()) {
    if (first_leaf) {
      first_leaf = false;
      shape.resize(depth);
    } else if (shape.size() != depth) {
      throw ValueError("xgrad::from: ragged nested list (a number at depth " +
                       std::to_string(depth) + ", another at depth " +
                       std::to_string(shape.size()) + ")");
    }
    return;
  }
  const std::size_t n = node.items().size();
  if (first_leaf && shape.size() <= depth) shape.resize(depth + 1, n);
  if (shape.size() <= depth || shape[depth] != n) {
    throw ValueError("xgrad::from: ragged nested list (a list of " + std::to_string(n) +
                     " items at depth " + std::to_string(depth) + " where another has " +
                     (shape.size() > depth ? std::to_string(shape[depth]) : std::string("none")) +
                     ")");
  }
  for (const auto& item : node.items()) nested_shape(item, depth + 1, shape, first_leaf);
}

template <class V>
void nested_fill(const NestedList<V>& node, V*& out) {
  if (node.leaf()) {
    *out++ = node.value();
    return;
  }
  for (const auto& item : node.items()) nested_fill(item, out);
}
}  // namespace

template <class V>
Tensor<V> Tensor<V>::from(std::initializer_list<NestedList<V>> values) {
  const NestedList<V> root(values);
  Shape shape;
  bool first_leaf = true;
  nested_shape(root, 0, shape, first_leaf);
  Array<V> out = Array<V>::from_shape(shape);
  V* p = out.data();
  nested_fill(root, p);
  return Tensor(std::move(out));
}

template <class V>
Tensor<V> Tensor<V>::from(const std::vector<V>& values, const Shape& shape) {
  detail::check_element_count("from", shape, sizeof(V));
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  if (n != values.size()) {
    throw ShapeError("xgrad::from: " + std::to_string(values.size()) +
                     " values do not fill shape " + shape_str(shape) + " (" + std::to_string(n) +
                     " elements)");
  }
  Array<V> out = Array<V>::from_shape(shape);
  std::copy(values.begin(), values.end(), out.data());
  return Tensor(std::move(out));
}

// ---- state ----

template <class V>
const Array<V>& Tensor<V>::value() const {
  return checked("value").storage->data;
}

template <class V>
Array<V>& Tensor<V>::mutable_value() {
  auto& impl = checked("mutable_value");
  ++impl.storage->counter();
  return impl.storage->data;
}

template <class V>
Shape Tensor<V>::shape() const {
  const auto& s = checked("shape").storage->data.shape();
  return Shape(s.begin(), s.end());
}

template <class V>
std::size_t Tensor<V>::size(int d) const {
  const auto& s = checked("size").storage->data.shape();
  const int n = static_cast<int>(s.size());
  if (d < -n || d >= n) {
    throw ShapeError("xgrad::size: dim " + std::to_string(d) + " is out of range for shape " +
                     shape_str(Shape(s.begin(), s.end())));
  }
  return s[static_cast<std::size_t>(d < 0 ? d + n : d)];
}

template <class V>
std::size_t Tensor<V>::numel() const {
  return checked("numel").storage->data.size();
}

template <class V>
V Tensor<V>::item() const {
  const auto& v = checked("item").storage->data;
  if (v.size() != 1) {
    throw ShapeError("xgrad::item: a tensor of shape " + shape_str(shape()) + " has " +
                     std::to_string(v.size()) + " elements, not 1");
  }
  return *v.data();
}

template <class V>
std::uint64_t Tensor<V>::version() const {
  return checked("version").storage->counter();
}

template <class V>
bool Tensor<V>::requires_grad() const {
  return checked("requires_grad").requires_grad;
}

template <class V>
Tensor<V>& Tensor<V>::requires_grad_(bool on) {
  auto& impl = checked("requires_grad_");
  if (impl.grad_fn && !on) {
    throw GraphError(std::string("xgrad::requires_grad_: the output of '") + impl.grad_fn->name() +
                     "' is not a leaf; use detach() to stop gradients");
  }
  impl.requires_grad = on;
  return *this;
}

template <class V>
bool Tensor<V>::is_leaf() const {
  return checked("is_leaf").grad_fn == nullptr;
}

template <class V>
const char* Tensor<V>::op_name() const {
  const auto& impl = checked("op_name");
  return impl.grad_fn ? impl.grad_fn->name() : "";
}

template <class V>
bool Tensor<V>::has_grad() const {
  return checked("has_grad").grad != nullptr;
}

template <class V>
Tensor<V> Tensor<V>::grad() const {
  const auto& impl = checked("grad");
  if (!impl.grad) {
    throw GraphError(
        "xgrad::grad: no gradient for this tensor of shape " + shape_str(shape()) +
        (impl.requires_grad ? " yet: call backward() first" : ": it does not require grad"));
  }
  return Tensor(impl.grad);
}

template <class V>
Array<V>& Tensor<V>::mutable_grad() {
  return grad().mutable_value();
}

template <class V>
void Tensor<V>::zero_grad() {
  auto& impl = checked("zero_grad");
  if (impl.grad) Tensor(impl.grad).mutable_value().fill(V(0));
}

template <class V>
void Tensor<V>::clear_grad() {
  checked("clear_grad").grad.reset();
}

template <class V>
Tensor<V> Tensor<V>::detach() const {
  auto impl = detail::make_small<detail::TensorImpl<V>>();
  impl->storage = checked("detach").storage;
  return Tensor(std::move(impl));
}

template <class V>
Tensor<V> Tensor<V>::clone_detached() const {
  return Tensor(Array<V>(value()));
}

template <class T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  os << "tensor(" << t.value();
  if (!t.is_leaf()) {
    os << ", grad_fn=<" << t.op_name() << ">";
  } else if (t.requires_grad()) {
    os << ", requires_grad=true";
  }
  return os << ")";
}

template class Tensor<float>;
template class Tensor<double>;
template std::ostream& operator<<(std::ostream&, const Tensor<float>&);
template std::ostream& operator<<(std::ostream&, const Tensor<double>&);

}  // namespace xgrad
