#pragma once
// Every differentiable operation. Binary elementwise ops broadcast like NumPy; a gradient that
// flows back to a broadcast input is summed over the broadcast dimensions by the engine.
// Dimensions may be negative (counted from the end), as in PyTorch.

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad {

/// How a loss reduces its per-element values.
enum class Reduction {
  None,  ///< one loss per element, in the input's shape
  Mean,  ///< the mean over all elements
  Sum,   ///< the sum over all elements
};

// ---- arithmetic (broadcasting) ----
/// a + b
template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// a - b
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// a * b
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// a / b
template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// a + s
template <class T>
Tensor<T> add(const Tensor<T>& a, Scalar<T> s, Location loc = Location::current());
/// a * s
template <class T>
Tensor<T> mul(const Tensor<T>& a, Scalar<T> s, Location loc = Location::current());
/// a / s
template <class T>
Tensor<T> div(const Tensor<T>& a, Scalar<T> s, Location loc = Location::current());
/// s - a
template <class T>
Tensor<T> rsub(Scalar<T> s, const Tensor<T>& a, Location loc = Location::current());
/// s / a
template <class T>
Tensor<T> rdiv(Scalar<T> s, const Tensor<T>& a, Location loc = Location::current());
/// -a
template <class T>
Tensor<T> neg(const Tensor<T>& a, Location loc = Location::current());
/// a ^ p for a scalar exponent.
template <class T>
Tensor<T> pow(const Tensor<T>& a, Scalar<T> p, Location loc = Location::current());
/// a ^ b elementwise (broadcasting); d/db = a^b log(a), taken as 0 where a == 0.
template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// e ^ a
template <class T>
Tensor<T> exp(const Tensor<T>& a, Location loc = Location::current());
/// natural log; -inf at 0.
template <class T>
Tensor<T> log(const Tensor<T>& a, Location loc = Location::current());
/// square root
template <class T>
Tensor<T> sqrt(const Tensor<T>& a, Location loc = Location::current());
/// sin(a)
template <class T>
Tensor<T> sin(const Tensor<T>& a, Location loc = Location::current());
/// cos(a)
template <class T>
Tensor<T> cos(const Tensor<T>& a, Location loc = Location::current());
/// Error function, 2/sqrt(pi) * integral of e^(-t^2) from 0 to a.
template <class T>
Tensor<T> erf(const Tensor<T>& a, Location loc = Location::current());
/// |a|; gradient sign(a), 0 at 0.
template <class T>
Tensor<T> abs(const Tensor<T>& a, Location loc = Location::current());
/// min(max(a, lo), hi); gradient passes where lo <= a <= hi.
template <class T>
Tensor<T> clamp(const Tensor<T>& a, Scalar<T> lo, Scalar<T> hi, Location loc = Location::current());
/// Elementwise maximum (broadcasting); a tie sends half the gradient to each side.
template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// Elementwise minimum (broadcasting); a tie sends half the gradient to each side.
template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// cond != 0 ? a : b (all three broadcast). The branch not taken receives an exact zero gradient,
/// and a NaN or Inf it holds never reaches the result.
template <class T>
Tensor<T> where(const Tensor<T>& cond, const Tensor<T>& a, const Tensor<T>& b,
                Location loc = Location::current());

// ---- comparisons: 1 where true, 0 where false; no gradient ----
/// a > b
template <class T>
Tensor<T> gt(const Tensor<T>& a, const Tensor<T>& b);
/// a < b
template <class T>
Tensor<T> lt(const Tensor<T>& a, const Tensor<T>& b);
/// a >= b
template <class T>
Tensor<T> ge(const Tensor<T>& a, const Tensor<T>& b);
/// a <= b
template <class T>
Tensor<T> le(const Tensor<T>& a, const Tensor<T>& b);
/// a == b
template <class T>
Tensor<T> eq(const Tensor<T>& a, const Tensor<T>& b);

// ---- activations ----
/// 1 / (1 + e^-a), computed without overflow for any finite a.
template <class T>
Tensor<T> sigmoid(const Tensor<T>& a, Location loc = Location::current());
/// hyperbolic tangent
template <class T>
Tensor<T> tanh(const Tensor<T>& a, Location loc = Location::current());
/// max(a, 0); gradient 0 at a == 0 (as PyTorch).
template <class T>
Tensor<T> relu(const Tensor<T>& a, Location loc = Location::current());
/// a > 0 ? a : slope * a
template <class T>
Tensor<T> leaky_relu(const Tensor<T>& a, Scalar<T> negative_slope = Scalar<T>(0.01),
                     Location loc = Location::current());
/// e^a / sum(e^a) along dim, shifted by the max so that it never overflows.
template <class T>
Tensor<T> softmax(const Tensor<T>& a, int dim, Location loc = Location::current());
/// a - logsumexp(a) along dim; finite for logits of any finite magnitude.
template <class T>
Tensor<T> log_softmax(const Tensor<T>& a, int dim, Location loc = Location::current());
/// a * Phi(a), Phi the standard normal CDF: a / 2 * (1 + erf(a / sqrt(2))). With approximate,
/// PyTorch's approximate='tanh' form a / 2 * (1 + tanh(sqrt(2 / pi) * (a + 0.044715 a^3))).
template <class T>
Tensor<T> gelu(const Tensor<T>& a, bool approximate = false, Location loc = Location::current());
/// gelu with PyTorch's spelling of the form: approximate "none" (exact) or "tanh"; any other
/// string is a ValueError.
template <class T>
Tensor<T> gelu(const Tensor<T>& a, const char* approximate, Location loc = Location::current());
/// a * sigmoid(a) (swish), finite for any finite a.
template <class T>
Tensor<T> silu(const Tensor<T>& a, Location loc = Location::current());
/// log(1 + e^(beta a)) / beta, and a itself where beta a > threshold (as PyTorch); computed
/// without overflow for any finite a. beta must be nonzero.
template <class T>
Tensor<T> softplus(const Tensor<T>& a, Scalar<T> beta = Scalar<T>(1),
                   Scalar<T> threshold = Scalar<T>(20), Location loc = Location::current());
/// Inverted dropout on any shape, as F::dropout: in training, each element is zeroed with
/// probability p (drawn from `gen`) and the rest scaled by 1 / (1 - p); the gradient is the same
/// mask. Not training (or p = 0): `a` itself. p outside [0, 1) is a ValueError.
template <class T>
Tensor<T> dropout(const Tensor<T>& a, double p, bool training = true,
                  Generator& gen = default_generator(), Location loc = Location::current());
/// a > threshold ? 1 : 0. Piecewise constant: its gradient is zero everywhere.
template <class T>
Tensor<T> step(const Tensor<T>& a, Scalar<T> threshold = Scalar<T>(0),
               Location loc = Location::current());
/// 0 for a < 0, value_at_zero at 0, 1 for a > 0 (numpy.heaviside). Zero gradient.
template <class T>
Tensor<T> heaviside(const Tensor<T>& a, Scalar<T> value_at_zero,
                    Location loc = Location::current());

// ---- reductions (an empty dims list means all dims) ----
/// Sum over dims; [2,3].sum({1}) -> [2], with keepdim -> [2,1]; sum() -> [].
template <class T>
Tensor<T> sum(const Tensor<T>& a, const std::vector<int>& dims = {}, bool keepdim = false,
              Location loc = Location::current());
/// Mean over dims; raises on an empty reduction instead of returning NaN.
template <class T>
Tensor<T> mean(const Tensor<T>& a, const std::vector<int>& dims = {}, bool keepdim = false,
               Location loc = Location::current());
/// Maximum over dims; ties share the gradient equally. Raises on an empty reduction.
template <class T>
Tensor<T> max(const Tensor<T>& a, const std::vector<int>& dims = {}, bool keepdim = false,
              Location loc = Location::current());
/// Minimum over dims; ties share the gradient equally. Raises on an empty reduction.
template <class T>
Tensor<T> min(const Tensor<T>& a, const std::vector<int>& dims = {}, bool keepdim = false,
              Location loc = Location::current());

/// log(sum(e^a)) over dims, shifted by the max so that it never overflows; an all -inf row (or an
/// empty one) gives -inf. The gradient is softmax(a) over dims.
template <class T>
Tensor<T> logsumexp(const Tensor<T>& a, const std::vector<int>& dims, bool keepdim = false,
                    Location loc = Location::current());
/// Variance over dims: sum((a - mean)^2) / (N - correction), N the elements per result (1:
/// unbiased, 0: biased), as torch.var. Raises on an empty reduction or N - correction <= 0.
template <class T>
Tensor<T> var(const Tensor<T>& a, const std::vector<int>& dims = {},
              Scalar<T> correction = Scalar<T>(1), bool keepdim = false,
              Location loc = Location::current());
/// sqrt(var(a, dims, correction)), as torch.std; the gradient is 0 where the result is 0.
template <class T>
Tensor<T> std(const Tensor<T>& a, const std::vector<int>& dims = {},
              Scalar<T> correction = Scalar<T>(1), bool keepdim = false,
              Location loc = Location::current());

/// Index of the largest element along dim (the first one on ties), as whole numbers in T; no
/// gradient. Raises on an empty dim.
template <class T>
Tensor<T> argmax(const Tensor<T>& a, int dim, bool keepdim = false);
/// Index of the smallest element along dim (the first one on ties); no gradient.
template <class T>
Tensor<T> argmin(const Tensor<T>& a, int dim, bool keepdim = false);

// ---- linear algebra ----
/// Matrix product through BLAS gemm, as torch.matmul: [M,K] x [K,N] -> [M,N]; operands of any
/// rank are stacks of matrices whose leading (batch) dims broadcast like NumPy's:
/// [B,H,T,D] x [B,H,D,T] -> [B,H,T,T], [2,3,4] x [1,4,5] -> [2,3,5], [B,M,K] x [K,N] -> [B,M,N]
/// (an operand without batch dims is shared by every batch, never copied); a 1-D operand is a
/// vector as in NumPy.
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b, Location loc = Location::current());
/// Fully connected layer in one op: x W^T + b, x [..., in], W [out, in], b [out] (optional:
/// pass an undefined tensor) -> [..., out]. One gemm with the bias preloaded; backward is two
/// gemms and a column sum, with no transpose materialised.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = Tensor<T>(),
                 Location loc = Location::current());
/// Swaps two dims.
template <class T>
Tensor<T> transpose(const Tensor<T>& a, int dim0, int dim1, Location loc = Location::current());

// ---- shape ----
/// Same elements in a new shape; one entry may be -1 (inferred).
template <class T>
Tensor<T> reshape(const Tensor<T>& a, const Dims& shape, Location loc = Location::current());
/// Merges dims start_dim..end_dim into one.
template <class T>
Tensor<T> flatten(const Tensor<T>& a, int start_dim = 0, int end_dim = -1,
                  Location loc = Location::current());
/// Inserts a size-1 dim at `dim` (in [-dim()-1, dim()]).
template <class T>
Tensor<T> unsqueeze(const Tensor<T>& a, int dim, Location loc = Location::current());
/// Removes every size-1 dim.
template <class T>
Tensor<T> squeeze(const Tensor<T>& a, Location loc = Location::current());
/// Removes dim `dim`, which must have size 1.
template <class T>
Tensor<T> squeeze(const Tensor<T>& a, int dim, Location loc = Location::current());
/// Repeats size-1 (or missing leading) dims to reach `shape`.
template <class T>
Tensor<T> broadcast_to(const Tensor<T>& a, const Shape& shape, Location loc = Location::current());
/// Joins tensors along an existing dim; all other extents must agree.
template <class T>
Tensor<T> concat(const std::vector<Tensor<T>>& tensors, int dim = 0,
                 Location loc = Location::current());
/// Joins same-shaped tensors along a new dim.
template <class T>
Tensor<T> stack(const std::vector<Tensor<T>>& tensors, int dim = 0,
                Location loc = Location::current());
/// Picks entries `index` along dim (repeats allowed: their gradients add up).
template <class T>
Tensor<T> index_select(const Tensor<T>& a, int dim, const std::vector<std::size_t>& index,
                       Location loc = Location::current());
/// Elements start, start+step, ... < end along dim (Python slice rules, negative start/end count
/// from the end, out-of-range bounds are clipped; step > 0).
template <class T>
Tensor<T> slice(const Tensor<T>& a, int dim, std::int64_t start, std::int64_t end,
                std::int64_t step = 1, Location loc = Location::current());
/// Reorders the dims: result dim i is a's dim dims[i] (a permutation of 0..dim()-1; negative
/// entries count from the end), as torch.permute.
template <class T>
Tensor<T> permute(const Tensor<T>& a, const std::vector<int>& dims,
                  Location loc = Location::current());
/// The lower triangle of the last two dims: elements (i, j) with j - i <= diagonal kept, the
/// rest 0 (diagonal 0: the main diagonal, > 0 above it, < 0 below), as torch.tril.
template <class T>
Tensor<T> tril(const Tensor<T>& a, std::int64_t diagonal = 0, Location loc = Location::current());
/// The upper triangle of the last two dims: elements with j - i >= diagonal kept, as torch.triu.
template <class T>
Tensor<T> triu(const Tensor<T>& a, std::int64_t diagonal = 0, Location loc = Location::current());
/// a with `value` where mask != 0; mask broadcasts to a's shape (as Tensor.masked_fill). No
/// gradient flows to the filled elements, and -inf is a valid value (attention masks).
template <class T>
Tensor<T> masked_fill(const Tensor<T>& a, const Tensor<T>& mask, Scalar<T> value,
                      Location loc = Location::current());
/// Rows of `weight` [num_embeddings, dim] picked by `indices` (whole numbers in [0,
/// num_embeddings), any shape S) -> S + [dim], as F::embedding. Repeated indices add their
/// gradients.
template <class T>
Tensor<T> embedding(const Tensor<T>& indices, const Tensor<T>& weight,
                    Location loc = Location::current());
/// embedding with the indices as a list: [indices.size(), dim].
template <class T>
Tensor<T> embedding(const std::vector<std::int64_t>& indices, const Tensor<T>& weight,
                    Location loc = Location::current());

// ---- convolution and pooling (images are [N, C, H, W], or [C, H, W] unbatched) ----
/// A height and a width: one number for both (`2`) or a pair (`{2, 1}`), as PyTorch's int or
/// tuple arguments.
struct Size2 {
  /// The same extent for height and width.
  Size2(std::int64_t both) : h(both), w(both) {}  // NOLINT: implicit by design
  /// Height and width.
  Size2(std::int64_t height, std::int64_t width) : h(height), w(width) {}
  /// Height.
  std::int64_t h;
  /// Width.
  std::int64_t w;
};
/// Every kernel_size window of x [N, C, H, W] as a column: [N, C*kh*kw, L], L the number of
/// window positions, rows ordered (channel, kernel row, kernel column), as F::unfold (im2col).
/// Zero padding.
template <class T>
Tensor<T> unfold(const Tensor<T>& x, Size2 kernel_size, Size2 dilation = 1, Size2 padding = 0,
                 Size2 stride = 1, Location loc = Location::current());
/// The inverse arrangement of unfold, overlapping windows summed: columns [N, C*kh*kw, L] ->
/// [N, C, output_size.h, output_size.w], as F::fold (col2im).
template <class T>
Tensor<T> fold(const Tensor<T>& cols, Size2 output_size, Size2 kernel_size, Size2 dilation = 1,
               Size2 padding = 0, Size2 stride = 1, Location loc = Location::current());
/// 2-D cross-correlation, as F::conv2d: x [N, C, H, W], weight [O, C / groups, kh, kw], bias [O]
/// (optional: an undefined tensor) -> [N, O, OH, OW], OH = (H + 2 padding.h - dilation.h (kh -
/// 1) - 1) / stride.h + 1. Lowered onto unfold and one matrix product per group over the whole
/// batch: the unfolded input, N * C * kh * kw * OH * OW elements, is kept for the backward when
/// the weight needs a gradient.
template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = Tensor<T>(),
                 Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1, std::int64_t groups = 1,
                 Location loc = Location::current());
/// Maximum over each kernel_size window, as F::max_pool2d; stride 0 means kernel_size (the
/// default), padding (at most half the kernel) never wins. Each window's gradient goes to its
/// first largest element, or to its last NaN, as in PyTorch.
template <class T>
Tensor<T> max_pool2d(const Tensor<T>& x, Size2 kernel_size, Size2 stride = 0, Size2 padding = 0,
                     Size2 dilation = 1, Location loc = Location::current());
/// Mean over each kernel_size window, as F::avg_pool2d; stride 0 means kernel_size. With
/// count_include_pad the zero padding counts in the mean (PyTorch's default), else only the
/// window's elements inside the image.
template <class T>
Tensor<T> avg_pool2d(const Tensor<T>& x, Size2 kernel_size, Size2 stride = 0, Size2 padding = 0,
                     bool count_include_pad = true, Location loc = Location::current());

// ---- normalisation ----
/// Batch normalisation over every dim but 1 (the channels) of x [N, C, ...], as F::batch_norm.
/// Training: normalised by the batch's mean and biased variance, and running_mean / running_var
/// (if defined, [C], updated in place without gradient) move `momentum` of the way to the
/// batch's mean and unbiased variance. Evaluation: normalised by the running statistics. weight
/// and bias ([C], optional) scale and shift.
template <class T>
Tensor<T> batch_norm(const Tensor<T>& x, const Tensor<T>& running_mean,
                     const Tensor<T>& running_var, const Tensor<T>& weight = Tensor<T>(),
                     const Tensor<T>& bias = Tensor<T>(), bool training = false,
                     double momentum = 0.1, double eps = 1e-5, Location loc = Location::current());
/// Normalises over the trailing dims given by normalized_shape (the mean and biased variance of
/// each leading index), then scales by weight and shifts by bias (both of normalized_shape,
/// optional), as F::layer_norm.
template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Shape& normalized_shape,
                     const Tensor<T>& weight = Tensor<T>(), const Tensor<T>& bias = Tensor<T>(),
                     double eps = 1e-5, Location loc = Location::current());

/// Multi-head scaled dot-product attention, as torch.nn.MultiheadAttention computes it between
/// its projections: query [N, T, E], key and value [N, S, E], E split into num_heads heads of
/// d = E / num_heads; per head softmax(q k^T / sqrt(d)) v, the heads joined again -> [N, T, E].
/// attn_mask (optional) broadcasts to [N, num_heads, T, S]: nonzero entries are positions not
/// attended to; is_causal also masks every key after the query's position (T == S). A query
/// row with every key masked gives NaN, as in PyTorch.
template <class T>
Tensor<T> multi_head_attention(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                               std::int64_t num_heads, const Tensor<T>& attn_mask = Tensor<T>(),
                               bool is_causal = false, Location loc = Location::current());
/// multi_head_attention() of a packed projection qkv [N, T, 3E]: query, key and value are its
/// three blocks of E columns, read in place.
template <class T>
Tensor<T> multi_head_self_attention(const Tensor<T>& qkv, std::int64_t num_heads,
                                    const Tensor<T>& attn_mask = Tensor<T>(),
                                    bool is_causal = false, Location loc = Location::current());

// ---- losses (prediction first, target second; a target that requires grad gets one too) ----
/// (input - target)^2, shapes must match.
template <class T>
Tensor<T> mse(const Tensor<T>& input, const Tensor<T>& target,
              Reduction reduction = Reduction::Mean, Location loc = Location::current());
/// -(y log p + (1 - y) log(1 - p)) on probabilities p in [0, 1]; each log clamped at -100 as
/// PyTorch does, so p = 0 or 1 gives a finite loss.
template <class T>
Tensor<T> bce(const Tensor<T>& input, const Tensor<T>& target,
              Reduction reduction = Reduction::Mean, Location loc = Location::current());
/// bce(sigmoid(x), y) computed as max(x, 0) - x y + log(1 + e^-|x|): finite for any finite
/// logit; at x = +-inf its limit: 0 when y agrees (y = 1 at +inf, y = 0 at -inf), else +inf
/// (for y in [0, 1]); never NaN for a non-NaN x and y.
template <class T>
Tensor<T> bce_with_logits(const Tensor<T>& input, const Tensor<T>& target,
                          Reduction reduction = Reduction::Mean,
                          Location loc = Location::current());
/// -log_softmax(logits)[n, target[n]] for logits [N, C] and class indices in [0, C).
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<std::int64_t>& target,
                        Reduction reduction = Reduction::Mean, Location loc = Location::current());
/// cross_entropy(logits, {2, 0, 1}): class indices written inline.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, std::initializer_list<std::int64_t> target,
                        Reduction reduction = Reduction::Mean, Location loc = Location::current()) {
  return cross_entropy(logits, std::vector<std::int64_t>(target), reduction, loc);
}
/// cross_entropy with the class indices held in a tensor of shape [N] (whole numbers).
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<T>& target,
                        Reduction reduction = Reduction::Mean, Location loc = Location::current());
/// -log_probs[n, target[n]] for log-probabilities [N, C].
template <class T>
Tensor<T> nll(const Tensor<T>& log_probs, const std::vector<std::int64_t>& target,
              Reduction reduction = Reduction::Mean, Location loc = Location::current());

// ---- labels of any integer type (int, uint8_t from IDX files, ...) ----
/// cross_entropy with class indices of any integer type, converted to int64_t.
template <class T, std::integral I>
requires(!std::is_same_v<I, std::int64_t>) Tensor<T> cross_entropy(
    const Tensor<T>& logits, const std::vector<I>& target, Reduction reduction = Reduction::Mean,
    Location loc = Location::current()) {
  return cross_entropy(logits, std::vector<std::int64_t>(target.begin(), target.end()), reduction,
                       loc);
}
/// nll with class indices of any integer type, converted to int64_t.
template <class T, std::integral I>
requires(!std::is_same_v<I, std::int64_t>) Tensor<T> nll(const Tensor<T>& log_probs,
                                                         const std::vector<I>& target,
                                                         Reduction reduction = Reduction::Mean,
                                                         Location loc = Location::current()) {
  return nll(log_probs, std::vector<std::int64_t>(target.begin(), target.end()), reduction, loc);
}
/// One row per label with a 1 at the label's column: labels [N] -> [N, num_classes], as
/// F::one_hot. num_classes -1 means the largest label + 1. No gradient. `one_hot<float>(labels,
/// 10)`.
template <class T>
Tensor<T> one_hot(const std::vector<std::int64_t>& labels, std::int64_t num_classes = -1);
/// one_hot of labels of any integer type.
template <class T, std::integral I>
requires(!std::is_same_v<I, std::int64_t>) Tensor<T> one_hot(const std::vector<I>& labels,
                                                             std::int64_t num_classes = -1) {
  return one_hot<T>(std::vector<std::int64_t>(labels.begin(), labels.end()), num_classes);
}
/// one_hot<float>({2, 0, 1}, 3): labels written inline.
template <class T>
Tensor<T> one_hot(std::initializer_list<std::int64_t> labels, std::int64_t num_classes = -1) {
  return one_hot<T>(std::vector<std::int64_t>(labels), num_classes);
}
/// one_hot of labels held as whole numbers in a tensor: shape S -> S + [num_classes].
template <class T>
Tensor<T> one_hot(const Tensor<T>& labels, std::int64_t num_classes = -1);

// ---- operators ----
// NOTE: an operator cannot have a defaulted parameter, so to know where `a + b` was written one
// operand of each arithmetic operator is a Located<...>. Its implicit constructor's defaulted
// std::source_location argument is evaluated where the conversion happens: at the operator.
// The Located operand is not deduced (std::type_identity_t), so the conversion is allowed and T
// comes from the other operand; unary minus, with no other operand, has one overload per type.

/// An operand together with the place (file, line) of the expression it appears in.
template <class X>
struct Located {
  /// Wraps `v`; the default argument takes the place of the conversion.
  Located(const X& v, Location l = Location::current()) : value(v), loc(l) {}  // NOLINT: implicit
  /// The operand (it must outlive the expression).
  const X& value;
  /// Where the expression is written.
  Location loc;
};
/// A Located operand that takes no part in template argument deduction.
template <class X>
using LocatedArg = std::type_identity_t<Located<X>>;

/// a + b: add()
template <class T>
Tensor<T> operator+(const Tensor<T>& a, LocatedArg<Tensor<T>> b) {
  return add(a, b.value, b.loc);
}
/// a - b: sub()
template <class T>
Tensor<T> operator-(const Tensor<T>& a, LocatedArg<Tensor<T>> b) {
  return sub(a, b.value, b.loc);
}
/// a * b: mul()
template <class T>
Tensor<T> operator*(const Tensor<T>& a, LocatedArg<Tensor<T>> b) {
  return mul(a, b.value, b.loc);
}
/// a / b: div()
template <class T>
Tensor<T> operator/(const Tensor<T>& a, LocatedArg<Tensor<T>> b) {
  return div(a, b.value, b.loc);
}
/// a + s
template <class T>
Tensor<T> operator+(const Tensor<T>& a, LocatedArg<T> s) {
  return add(a, s.value, s.loc);
}
/// s + a
template <class T>
Tensor<T> operator+(LocatedArg<T> s, const Tensor<T>& a) {
  return add(a, s.value, s.loc);
}
/// a - s
template <class T>
Tensor<T> operator-(const Tensor<T>& a, LocatedArg<T> s) {
  return add(a, -s.value, s.loc);
}
/// s - a: rsub()
template <class T>
Tensor<T> operator-(LocatedArg<T> s, const Tensor<T>& a) {
  return rsub(s.value, a, s.loc);
}
/// a * s
template <class T>
Tensor<T> operator*(const Tensor<T>& a, LocatedArg<T> s) {
  return mul(a, s.value, s.loc);
}
/// s * a
template <class T>
Tensor<T> operator*(LocatedArg<T> s, const Tensor<T>& a) {
  return mul(a, s.value, s.loc);
}
/// a / s
template <class T>
Tensor<T> operator/(const Tensor<T>& a, LocatedArg<T> s) {
  return div(a, s.value, s.loc);
}
/// s / a: rdiv()
template <class T>
Tensor<T> operator/(LocatedArg<T> s, const Tensor<T>& a) {
  return rdiv(s.value, a, s.loc);
}
/// -a: neg()
inline Tensor<float> operator-(Located<Tensor<float>> a) {
  return neg(a.value, a.loc);
}
/// -a: neg()
inline Tensor<double> operator-(Located<Tensor<double>> a) {
  return neg(a.value, a.loc);
}
/// gt(a, b): 1 where a > b, else 0
template <class T>
Tensor<T> operator>(const Tensor<T>& a, const Tensor<T>& b) {
  return gt(a, b);
}
/// lt(a, b): 1 where a < b, else 0
template <class T>
Tensor<T> operator<(const Tensor<T>& a, const Tensor<T>& b) {
  return lt(a, b);
}
/// ge(a, b): 1 where a >= b, else 0
template <class T>
Tensor<T> operator>=(const Tensor<T>& a, const Tensor<T>& b) {
  return ge(a, b);
}
/// le(a, b): 1 where a <= b, else 0
template <class T>
Tensor<T> operator<=(const Tensor<T>& a, const Tensor<T>& b) {
  return le(a, b);
}

}  // namespace xgrad
