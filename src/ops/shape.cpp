// Shape ops: reshape and its relatives, broadcast_to, concat/stack, index_select and slice,
// permute, the triangles (tril/triu), masked_fill and embedding (a row gather).
// Forward and backward side by side. No backward here reads a saved value: each one only moves
// gradient entries back to where they came from, so the lambdas capture shapes and indices only.
// Those moves are themselves recorded ops (regrid, the piece cut from a join and its padding,
// the index gather and its scatter-add), each the other's derivative, so that the gradients are
// differentiable again under create_graph.
//
// Every Array is a row-major xarray, so its buffer holds its elements contiguously in row-major
// order; the reshape family relies on that to share its input's elements, and concat, stack,
// index_select and slice to move whole runs with std::copy.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"

namespace xgrad {

namespace {

/// "[4,-1]" for a requested reshape.
std::string dims_str(const Dims& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

/// Product of shape[begin..end) (1 for an empty range).
std::size_t extent_product(const Shape& shape, std::size_t begin, std::size_t end) {
  std::size_t p = 1;
  for (std::size_t i = begin; i < end; ++i) p *= shape[i];
  return p;
}

/// Records an op whose output holds a's elements in the same order under `shape`
/// (reshape, flatten, unsqueeze, squeeze): a view sharing a's storage, as every Array is
/// contiguous. Backward: the gradient reshaped to a's shape, a view too.
template <class T>
Tensor<T> regrid(OpName op, const Tensor<T>& a, const Shape& shape) {
  const Shape in_shape = a.shape();
  return record<T>(
      op, share(a, shape), {a},
      [in_shape, at = op.where](const Tensor<T>& grad, Grads<T>& g) {
        // view ops: grad.reshape(self.sizes())
        if (g.needs(0)) g.to(0, regrid<T>({"reshape", at}, grad, in_shape));
      },
      Saves::none());
}

/// The geometry of a gather along one dim of a row-major array: `outer` blocks of `extent` rows
/// of `inner` contiguous elements each.
struct Rows {
  std::size_t outer;
  std::size_t extent;
  std::size_t inner;
};

Rows rows_of(const Shape& shape, std::size_t dim) {
  return {extent_product(shape, 0, dim), shape[dim], extent_product(shape, dim + 1, shape.size())};
}

/// dst[o, j, :] = src[o, index[j], :] (dst has index.size() rows per block). Along dim 0 this is
/// one std::copy per selected row.
template <class T>
void gather_rows(const T* src, T* dst, const Rows& r, const std::vector<std::size_t>& index) {
  if (r.inner == 0) return;
  for (std::size_t o = 0; o < r.outer; ++o) {
    const T* block = src + o * r.extent * r.inner;
    for (std::size_t j : index) {
      const T* row = block + j * r.inner;
      dst = std::copy(row, row + r.inner, dst);
    }
  }
}

/// dst[o, index[j], :] += src[o, j, :]; repeated indices add up.
template <class T>
void scatter_add_rows(const T* src, T* dst, const Rows& r, const std::vector<std::size_t>& index) {
  if (r.inner == 0) return;
  for (std::size_t o = 0; o < r.outer; ++o) {
    T* block = dst + o * r.extent * r.inner;
    for (std::size_t j : index) {
      T* row = block + j * r.inner;
      for (std::size_t i = 0; i < r.inner; ++i) row[i] += src[i];
      src += r.inner;
    }
  }
}

/// A selection of rows along one dim of a tensor of shape `whole`, as a pair of internal ops
/// that are each other's derivative: the gather (index_select, slice) and the scatter-add of
/// rows into zeros of the whole shape (its derivative). The indices must be in range.
struct Selection {
  const char* gather;   // op names (string literals)
  const char* scatter;  //
  Location at;          // where the user's op was called
  std::size_t dim;
  Shape whole;  // the shape gathered from (and scattered into)
  Rows r;       // its geometry along dim
  std::shared_ptr<const std::vector<std::size_t>> index;  // shared by every op of the pair
};

template <class T>
Tensor<T> scatter_op(const Selection& s, const Tensor<T>& part);

/// Internal op (index_select, slice): out[o, j, :] = a[o, index[j], :].
template <class T>
Tensor<T> gather_op(const Selection& s, const Tensor<T>& a) {
  Shape out_shape = s.whole;
  out_shape[s.dim] = s.index->size();
  Array<T> out = Array<T>::from_shape(out_shape);
  gather_rows(a.value().data(), out.data(), s.r, *s.index);
  return record<T>(
      {s.gather, s.at}, std::move(out), {a},
      [s](const Tensor<T>& grad, Grads<T>& g) {
        // index_select: zeros(self.sizes()).index_add_(dim, index, grad)
        if (g.needs(0)) g.to(0, scatter_op<T>(s, grad));
      },
      Saves::none());
}

/// Internal op (the gather's derivative): zeros of the whole shape with part[o, j, :] added
/// into row index[j] of each block; repeated indices add up.
template <class T>
Tensor<T> scatter_op(const Selection& s, const Tensor<T>& part) {
  Array<T> whole(s.whole, T(0));
  scatter_add_rows(part.value().data(), whole.data(), s.r, *s.index);
  return record<T>(
      {s.scatter, s.at}, std::move(whole), {part},
      [s](const Tensor<T>& grad, Grads<T>& g) {
        // index_add (into zeros), source: grad.index_select(dim, index)
        if (g.needs(0)) g.to(0, gather_op<T>(s, grad));
      },
      Saves::none());
}

/// Records the selection of `index` along `dim` of `a` (index_select, slice; the scatter that is
/// its derivative is named `backward`). The indices must be in range.
template <class T>
Tensor<T> select_rows(OpName op, const char* backward, const Tensor<T>& a, std::size_t dim,
                      std::vector<std::size_t> index) {
  Shape in_shape = a.shape();
  const Rows r = rows_of(in_shape, dim);
  return gather_op<T>(Selection{op.name, backward, op.where, dim, std::move(in_shape), r,
                                std::make_shared<const std::vector<std::size_t>>(std::move(index))},
                      a);
}

/// For each of `count` blocks: copies `len` contiguous elements from src + b * src_stride to
/// dst + b * dst_stride. Concat and stack move whole runs this way instead of stepping through
/// strided views element by element (which is 20-50x slower along an inner dim).
template <class T>
void copy_blocks(const T* src, std::size_t src_stride, T* dst, std::size_t dst_stride,
                 std::size_t len, std::size_t count) {
  if (len == 0) return;
  if (len < 16) {  // short runs (stack along the last dim): no call per run
    for (std::size_t b = 0; b < count; ++b) {
      const T* from = src + b * src_stride;
      T* to = dst + b * dst_stride;
      for (std::size_t i = 0; i < len; ++i) to[i] = from[i];
    }
    return;
  }
  for (std::size_t b = 0; b < count; ++b) {
    const T* from = src + b * src_stride;
    std::copy(from, from + len, dst + b * dst_stride);
  }
}

/// One input's share of a joined buffer: in each of `outer` blocks of `stride` elements, the
/// `len` contiguous elements from `offset`. Two internal ops, each the other's derivative, move
/// it: the piece cut from the whole (a join's derivative) and the piece padded with zeros to
/// the whole shape.
struct Piece {
  const char* take;  // op names (string literals)
  const char* put;   //
  Location at;       // where the user's op was called
  Shape piece;       // the input's shape
  Shape whole;       // the joined shape
  std::size_t outer;
  std::size_t stride;
  std::size_t offset;
  std::size_t len;
};

template <class T>
Tensor<T> put_piece(const Piece& p, const Tensor<T>& piece);

/// Internal op (split / unbind: concat's and stack's derivative): the piece cut from `whole`.
template <class T>
Tensor<T> take_piece(const Piece& p, const Tensor<T>& whole) {
  Array<T> part = Array<T>::from_shape(p.piece);
  if (whole.value().size() != 0) {  // (no pointer arithmetic on an empty buffer)
    copy_blocks(whole.value().data() + p.offset, p.stride, part.data(), p.len, p.len, p.outer);
  }
  return record<T>(
      {p.take, p.at}, std::move(part), {whole},
      [p](const Tensor<T>& grad, Grads<T>& g) {
        // narrow / select: zeros(self.sizes()) with grad copied into the piece
        if (g.needs(0)) g.to(0, put_piece<T>(p, grad));
      },
      Saves::none());
}

/// Internal op (take_piece's derivative): zeros of the whole shape with `piece` copied in.
template <class T>
Tensor<T> put_piece(const Piece& p, const Tensor<T>& piece) {
  Array<T> whole(p.whole, T(0));
  if (whole.size() != 0) {
    copy_blocks(piece.value().data(), p.len, whole.data() + p.offset, p.stride, p.len, p.outer);
  }
  return record<T>(
      {p.put, p.at}, std::move(whole), {piece},
      [p](const Tensor<T>& grad, Grads<T>& g) {
        // the padding's derivative: grad cut back to the piece
        if (g.needs(0)) g.to(0, take_piece<T>(p, grad));
      },
      Saves::none());
}

/// Records the joining of `tensors` (validated by the caller) into `out_shape`, seen as `outer`
/// blocks in which tensor k contributes extents[k] consecutive rows of `inner` elements
/// (concat: the extents along dim; stack: 1 each). Backward: the gradient cut back into pieces
/// (internal ops named `take`, whose derivatives are named `put`).
template <class T>
Tensor<T> join(OpName op, const char* take, const char* put, const std::vector<Tensor<T>>& tensors,
               const Shape& out_shape, std::size_t outer, std::size_t inner,
               const std::vector<std::size_t>& extents) {
  std::size_t total = 0;
  for (std::size_t e : extents) total += e;
  const std::size_t out_stride = total * inner;
  Array<T> out = Array<T>::from_shape(out_shape);
  std::vector<Piece> pieces;
  pieces.reserve(tensors.size());
  std::size_t offset = 0;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const std::size_t len = extents[k] * inner;
    pieces.push_back(
        {take, put, op.where, tensors[k].shape(), out_shape, outer, out_stride, offset, len});
    if (out.size() != 0) {  // (no pointer arithmetic on an empty buffer)
      copy_blocks(tensors[k].value().data(), len, out.data() + offset, out_stride, len, outer);
    }
    offset += len;
  }
  return record<T>(
      op, std::move(out), tensors,
      [pieces = std::move(pieces)](const Tensor<T>& grad, Grads<T>& g) {
        // cat / stack: grad split along dim into the inputs' extents
        for (std::size_t k = 0; k < pieces.size(); ++k) {
          if (g.needs(k)) g.to(k, take_piece<T>(pieces[k], grad));
        }
      },
      Saves::none());
}

}  // namespace

// ---- reshape and relatives: same elements, same order, new shape ----

template <class T>
Tensor<T> reshape(const Tensor<T>& a, const Dims& shape, Location loc) {
  const ops::Entry op{"reshape", loc};
  const Shape in_shape = a.shape();
  const std::size_t total = a.numel();
  const std::string request = dims_str(shape) + " for a tensor of shape " + shape_str(in_shape);
  std::size_t inferred = shape.size();  // position of the -1, if any
  std::size_t known = 1;                // product of the other extents
  bool overflow = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred != shape.size()) {
        throw ShapeError("xgrad::reshape: only one dimension can be -1, got " + request);
      }
      inferred = i;
    } else if (shape[i] < 0) {
      throw ShapeError("xgrad::reshape: invalid extent " + std::to_string(shape[i]) + " in " +
                       request);
    } else {
      overflow =
          __builtin_mul_overflow(known, static_cast<std::size_t>(shape[i]), &known) || overflow;
    }
  }
  const std::string mismatch = "xgrad::reshape: cannot reshape " + shape_str(in_shape) + " (" +
                               std::to_string(total) + " elements) into " + dims_str(shape);
  Shape out(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i != inferred) out[i] = static_cast<std::size_t>(shape[i]);
  }
  if (inferred != shape.size()) {
    if (known == 0 && !overflow && total == 0) {
      throw ShapeError(mismatch + ": the -1 extent is ambiguous when the others multiply to 0");
    }
    if (overflow || known == 0 || total % known != 0) throw ShapeError(mismatch);
    out[inferred] = total / known;
  } else if (overflow || known != total) {
    throw ShapeError(mismatch);
  }
  return regrid(op, a, out);
}

template <class T>
Tensor<T> flatten(const Tensor<T>& a, int start_dim, int end_dim, Location loc) {
  const ops::Entry op{"flatten", loc};
  const Shape in_shape = a.shape();
  // As in PyTorch, a 0-d tensor takes dims 0 and -1 and flattens to [1].
  const std::size_t rank = std::max<std::size_t>(in_shape.size(), 1);
  const std::size_t s = ops::normalize_dim("flatten", start_dim, rank, in_shape);
  const std::size_t e = ops::normalize_dim("flatten", end_dim, rank, in_shape);
  if (s > e) {
    throw ShapeError("xgrad::flatten: start_dim " + std::to_string(start_dim) +
                     " comes after end_dim " + std::to_string(end_dim) + " for a tensor of shape " +
                     shape_str(in_shape));
  }
  if (in_shape.empty()) return regrid(op, a, Shape{1});
  const auto first = in_shape.begin();
  Shape out(first, first + static_cast<std::ptrdiff_t>(s));
  out.push_back(extent_product(in_shape, s, e + 1));
  out.insert(out.end(), first + static_cast<std::ptrdiff_t>(e + 1), in_shape.end());
  return regrid(op, a, out);
}

template <class T>
Tensor<T> unsqueeze(const Tensor<T>& a, int dim, Location loc) {
  const ops::Entry op{"unsqueeze", loc};
  const Shape in_shape = a.shape();
  const std::size_t d = ops::normalize_dim("unsqueeze", dim, in_shape.size() + 1, in_shape);
  Shape out = in_shape;
  out.insert(out.begin() + static_cast<std::ptrdiff_t>(d), 1);
  return regrid(op, a, out);
}

template <class T>
Tensor<T> squeeze(const Tensor<T>& a, Location loc) {
  const ops::Entry op{"squeeze", loc};
  Shape out;
  for (std::size_t n : a.shape()) {
    if (n != 1) out.push_back(n);
  }
  return regrid(op, a, out);
}

template <class T>
Tensor<T> squeeze(const Tensor<T>& a, int dim, Location loc) {
  const ops::Entry op{"squeeze", loc};
  const Shape in_shape = a.shape();
  if (in_shape.empty()) {
    // As in PyTorch, a 0-d tensor accepts dim 0 or -1 and stays 0-d.
    ops::normalize_dim("squeeze", dim, 1, in_shape);
    return regrid(op, a, in_shape);
  }
  const std::size_t d = ops::normalize_dim("squeeze", dim, in_shape.size(), in_shape);
  if (in_shape[d] != 1) {
    throw ShapeError("xgrad::squeeze: dim " + std::to_string(dim) + " has size " +
                     std::to_string(in_shape[d]) + ", not 1, in a tensor of shape " +
                     shape_str(in_shape));
  }
  Shape out = in_shape;
  out.erase(out.begin() + static_cast<std::ptrdiff_t>(d));
  return regrid(op, a, out);
}

// ---- broadcast_to ----

template <class T>
Tensor<T> broadcast_to(const Tensor<T>& a, const Shape& shape, Location loc) {
  const ops::Entry op{"broadcast_to", loc};
  const Shape in_shape = a.shape();
  bool ok = in_shape.size() <= shape.size();
  for (std::size_t i = 0; ok && i < in_shape.size(); ++i) {
    const std::size_t target = shape[shape.size() - in_shape.size() + i];
    ok = in_shape[i] == target || in_shape[i] == 1;
  }
  if (!ok) {
    throw ShapeError("xgrad::broadcast_to: cannot broadcast a tensor of shape " +
                     shape_str(in_shape) + " to shape " + shape_str(shape));
  }
  detail::check_element_count("broadcast_to", shape, sizeof(T));
  Array<T> out = xt::broadcast(a.value(), shape);
  return record<T>(
      op, std::move(out), {a},
      [](const Tensor<T>& grad, Grads<T>& g) {
        if (g.needs(0)) g.to(0, grad);  // expand: grad summed to self's shape (by the engine)
      },
      Saves::none());
}

// ---- concat / stack ----

template <class T>
Tensor<T> concat(const std::vector<Tensor<T>>& tensors, int dim, Location loc) {
  const ops::Entry op{"concat", loc};
  if (tensors.empty()) {
    throw ValueError("xgrad::concat: expects at least one tensor, got an empty list");
  }
  const Shape first = tensors[0].shape();
  if (first.empty()) {
    throw ShapeError(
        "xgrad::concat: tensor 0 has shape [] but a 0-d tensor cannot be "
        "concatenated (use stack)");
  }
  const std::size_t rank = first.size();
  const std::size_t d = ops::normalize_dim("concat", dim, rank, first);
  std::vector<std::size_t> extents;
  extents.reserve(tensors.size());
  Shape out_shape = first;
  out_shape[d] = 0;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const Shape s = tensors[k].shape();
    if (s.size() != rank) {
      throw ShapeError("xgrad::concat: tensor " + std::to_string(k) + " has shape " + shape_str(s) +
                       " (rank " + std::to_string(s.size()) + ") but tensor 0 has shape " +
                       shape_str(first) + " (rank " + std::to_string(rank) + ")");
    }
    for (std::size_t i = 0; i < rank; ++i) {
      if (i != d && s[i] != first[i]) {
        throw ShapeError("xgrad::concat: tensor " + std::to_string(k) + " has shape " +
                         shape_str(s) + " but tensor 0 has shape " + shape_str(first) +
                         "; all extents but dim " + std::to_string(d) + " must agree");
      }
    }
    extents.push_back(s[d]);
    out_shape[d] += s[d];
  }
  return join(op, "split", "split_backward", tensors, out_shape, extent_product(first, 0, d),
              extent_product(first, d + 1, rank), extents);
}

template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& tensors, int dim, Location loc) {
  const ops::Entry op{"stack", loc};
  if (tensors.empty()) {
    throw ValueError("xgrad::stack: expects at least one tensor, got an empty list");
  }
  const Shape first = tensors[0].shape();
  const std::size_t rank = first.size() + 1;
  const std::size_t d = ops::normalize_dim("stack", dim, rank, first);
  for (std::size_t k = 1; k < tensors.size(); ++k) {
    const Shape s = tensors[k].shape();
    if (s != first) {
      throw ShapeError("xgrad::stack: tensor " + std::to_string(k) + " has shape " + shape_str(s) +
                       " but tensor 0 has shape " + shape_str(first) +
                       "; stacked tensors must all have the same shape");
    }
  }
  Shape out_shape = first;
  out_shape.insert(out_shape.begin() + static_cast<std::ptrdiff_t>(d), tensors.size());
  return join(op, "unbind", "unbind_backward", tensors, out_shape, extent_product(first, 0, d),
              extent_product(first, d, first.size()), std::vector<std::size_t>(tensors.size(), 1));
}

// ---- index_select / slice ----

template <class T>
Tensor<T> index_select(const Tensor<T>& a, int dim, const std::vector<std::size_t>& index,
                       Location loc) {
  const ops::Entry op{"index_select", loc};
  const Shape in_shape = a.shape();
  const std::size_t d = ops::normalize_dim("index_select", dim, in_shape.size(), in_shape);
  for (std::size_t j = 0; j < index.size(); ++j) {
    if (index[j] >= in_shape[d]) {
      throw ValueError("xgrad::index_select: index " + std::to_string(index[j]) + " (at position " +
                       std::to_string(j) + ") is out of range for dim " + std::to_string(dim) +
                       " of size " + std::to_string(in_shape[d]) + " (shape " +
                       shape_str(in_shape) + ")");
    }
  }
  return select_rows(op, "index_select_backward", a, d, index);
}

template <class T>
Tensor<T> slice(const Tensor<T>& a, int dim, std::int64_t start, std::int64_t end,
                std::int64_t step, Location loc) {
  const ops::Entry op{"slice", loc};
  const Shape in_shape = a.shape();
  const std::size_t d = ops::normalize_dim("slice", dim, in_shape.size(), in_shape);
  if (step <= 0) {
    throw ValueError("xgrad::slice: step must be positive, got " + std::to_string(step) +
                     " (tensor of shape " + shape_str(in_shape) + ")");
  }
  // Python slice rules: a negative bound counts from the end, then both are clipped to [0, n].
  const auto n = static_cast<std::int64_t>(in_shape[d]);
  auto clip = [n](std::int64_t i) -> std::int64_t {
    if (i < 0) i += n;
    return std::clamp<std::int64_t>(i, 0, n);
  };
  const std::int64_t lo = clip(start);
  const std::int64_t hi = clip(end);
  const std::int64_t count = hi > lo ? (hi - lo - 1) / step + 1 : 0;
  std::vector<std::size_t> index(static_cast<std::size_t>(count));
  for (std::int64_t j = 0; j < count; ++j) {
    index[static_cast<std::size_t>(j)] = static_cast<std::size_t>(lo + j * step);
  }
  return select_rows(op, "slice_backward", a, d, std::move(index));
}

template <class T>
Tensor<T> permute(const Tensor<T>& a, const std::vector<int>& dims, Location loc) {
  const ops::Entry op{"permute", loc};
  const Shape s = a.shape();
  if (dims.size() != s.size()) {
    throw ShapeError("xgrad::permute: " + std::to_string(dims.size()) +
                     " dims given for a tensor of shape " + shape_str(s) + " (one per dim needed)");
  }
  std::vector<std::size_t> perm(s.size());
  std::vector<int> inverse(s.size(), -1);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    perm[i] = ops::normalize_dim("permute", dims[i], s.size(), s);
    if (inverse[perm[i]] != -1) {
      throw ShapeError("xgrad::permute: dim " + std::to_string(dims[i]) +
                       " appears twice for a tensor of shape " + shape_str(s));
    }
    inverse[perm[i]] = static_cast<int>(i);
  }
  return record<T>(
      op, Array<T>(xt::transpose(a.value(), perm)), {a},
      [inverse, loc](const Tensor<T>& grad, Grads<T>& g) {
        if (g.needs(0)) g.to(0, permute(grad, inverse, loc));  // permute: grad permuted back
      },
      Saves::none());
}

namespace {
// Keeps the elements (i, j) of every matrix in the last two dims with lo <= j - i <= hi, zeroing
// the rest. Linear and self-adjoint: its derivative is the same mask on the gradient.
template <class T>
Tensor<T> band(OpName op, const Tensor<T>& a, std::int64_t lo, std::int64_t hi) {
  const Shape s = a.shape();
  if (s.size() < 2) {
    throw ShapeError(std::string("xgrad::") + op.name + ": needs at least 2 dims, got shape " +
                     shape_str(s));
  }
  const std::size_t rows = s[s.size() - 2];
  const std::size_t cols = s.back();
  Array<T> out(a.value());
  T* p = out.data();
  const std::size_t count = rows * cols == 0 ? 0 : out.size() / (rows * cols);
  for (std::size_t m = 0; m < count; ++m) {
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t j = 0; j < cols; ++j) {
        const auto d = static_cast<std::int64_t>(j) - static_cast<std::int64_t>(i);
        if (d < lo || d > hi) p[j] = T(0);
      }
      p += cols;
    }
  }
  return record<T>(
      op, std::move(out), {a},
      [op, lo, hi](const Tensor<T>& grad, Grads<T>& g) {
        if (g.needs(0)) g.to(0, band(op, grad, lo, hi));  // tril/triu: the same mask on grad
      },
      Saves::none());
}
constexpr std::int64_t kNoBound = std::numeric_limits<std::int64_t>::max();
}  // namespace

template <class T>
Tensor<T> tril(const Tensor<T>& a, std::int64_t diagonal, Location loc) {
  const ops::Entry op{"tril", loc};
  return band(op, a, -kNoBound, diagonal);
}

template <class T>
Tensor<T> triu(const Tensor<T>& a, std::int64_t diagonal, Location loc) {
  const ops::Entry op{"triu", loc};
  return band(op, a, diagonal, kNoBound);
}

template <class T>
Tensor<T> masked_fill(const Tensor<T>& a, const Tensor<T>& mask, Scalar<T> value, Location loc) {
  const ops::Entry op{"masked_fill", loc};
  const Shape s = a.shape();
  const Shape m = mask.shape();
  bool fits = m.size() <= s.size();
  for (std::size_t i = 0; fits && i < m.size(); ++i) {
    const std::size_t e = m[m.size() - 1 - i];
    fits = e == 1 || e == s[s.size() - 1 - i];
  }
  if (!fits) {
    throw ShapeError("xgrad::masked_fill: mask of shape " + shape_str(m) +
                     " does not broadcast to the tensor's shape " + shape_str(s));
  }
  // where() keeps the value of the branch not taken out of the result and its gradient at 0.
  return where(mask.detach(), Tensor<T>::scalar(value), a, loc);
}

template <class T>
Tensor<T> embedding(const Tensor<T>& indices, const Tensor<T>& weight, Location loc) {
  const ops::Entry op{"embedding", loc};
  const Shape ws = weight.shape();
  if (ws.size() != 2) {
    throw ShapeError("xgrad::embedding: weight must be 2-D [num_embeddings, dim], got " +
                     shape_str(ws));
  }
  std::vector<std::size_t> rows(indices.numel());
  const T* p = indices.value().data();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!(p[i] >= T(0) && p[i] < static_cast<T>(ws[0]) && p[i] == std::floor(p[i]))) {
      throw ValueError("xgrad::embedding: index " + std::to_string(p[i]) + " (at position " +
                       std::to_string(i) + ") is not a whole number in [0, " +
                       std::to_string(ws[0]) + ") for a weight of shape " + shape_str(ws));
    }
    rows[i] = static_cast<std::size_t>(p[i]);
  }
  Dims out;
  for (std::size_t e : indices.shape()) out.push_back(static_cast<std::int64_t>(e));
  out.push_back(static_cast<std::int64_t>(ws[1]));
  return reshape(select_rows(op, "embedding_backward", weight, 0, rows), out, loc);
}

template <class T>
Tensor<T> embedding(const std::vector<std::int64_t>& indices, const Tensor<T>& weight,
                    Location loc) {
  const ops::Entry op{"embedding", loc};
  const Shape ws = weight.shape();
  if (ws.size() != 2) {
    throw ShapeError("xgrad::embedding: weight must be 2-D [num_embeddings, dim], got " +
                     shape_str(ws));
  }
  std::vector<std::size_t> rows(indices.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (indices[i] < 0 || static_cast<std::size_t>(indices[i]) >= ws[0]) {
      throw ValueError("xgrad::embedding: index " + std::to_string(indices[i]) + " (at position " +
                       std::to_string(i) + ") is out of range [0, " + std::to_string(ws[0]) +
                       ") for a weight of shape " + shape_str(ws));
    }
    rows[i] = static_cast<std::size_t>(indices[i]);
  }
  return select_rows(op, "embedding_backward", weight, 0, rows);
}

#define XGRAD_INSTANTIATE_SHAPE(T)                                                             \
  template Tensor<T> reshape<T>(const Tensor<T>&, const Dims&, Location);                      \
  template Tensor<T> flatten<T>(const Tensor<T>&, int, int, Location);                         \
  template Tensor<T> unsqueeze<T>(const Tensor<T>&, int, Location);                            \
  template Tensor<T> squeeze<T>(const Tensor<T>&, Location);                                   \
  template Tensor<T> squeeze<T>(const Tensor<T>&, int, Location);                              \
  template Tensor<T> broadcast_to<T>(const Tensor<T>&, const Shape&, Location);                \
  template Tensor<T> concat<T>(const std::vector<Tensor<T>>&, int, Location);                  \
  template Tensor<T> stack<T>(const std::vector<Tensor<T>>&, int, Location);                   \
  template Tensor<T> index_select<T>(const Tensor<T>&, int, const std::vector<std::size_t>&,   \
                                     Location);                                                \
  template Tensor<T> slice<T>(const Tensor<T>&, int, std::int64_t, std::int64_t, std::int64_t, \
                              Location);                                                       \
  template Tensor<T> permute<T>(const Tensor<T>&, const std::vector<int>&, Location);          \
  template Tensor<T> tril<T>(const Tensor<T>&, std::int64_t, Location);                        \
  template Tensor<T> triu<T>(const Tensor<T>&, std::int64_t, Location);                        \
  template Tensor<T> masked_fill<T>(const Tensor<T>&, const Tensor<T>&, Scalar<T>, Location);  \
  template Tensor<T> embedding<T>(const Tensor<T>&, const Tensor<T>&, Location);               \
  template Tensor<T> embedding<T>(const std::vector<std::int64_t>&, const Tensor<T>&, Location);

XGRAD_INSTANTIATE_SHAPE(float)
XGRAD_INSTANTIATE_SHAPE(double)

}  // namespace xgrad
