#include <cmath>
#include <limits>
#include <sstream>

#include <xgrad/nn/blocks.hpp>
#include <xgrad/nn/init.hpp>

namespace xgrad::nn {

namespace {

std::string pair_str(Size2 s) {
  return "(" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")";
}

std::string num_str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::size_t positive(const char* layer, const char* what, std::int64_t v) {
  if (v <= 0) {
    throw ValueError(std::string("xgrad::nn::") + layer + ": " + what + " " + std::to_string(v) +
                     " must be positive");
  }
  return static_cast<std::size_t>(v);
}

}  // namespace

// ---- Conv2d ----

template <class T>
Conv2d<T>::Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size,
                  Conv2dOptions options, Generator& gen)
    : in_(in_channels), out_(out_channels), kernel_(kernel_size), opt_(options) {
  const std::size_t in = positive("Conv2d", "in_channels", in_channels);
  const std::size_t out = positive("Conv2d", "out_channels", out_channels);
  const std::size_t kh = positive("Conv2d", "kernel height", kernel_size.h);
  const std::size_t kw = positive("Conv2d", "kernel width", kernel_size.w);
  const std::size_t groups = positive("Conv2d", "groups", options.groups);
  if (in % groups != 0 || out % groups != 0) {
    throw ValueError("xgrad::nn::Conv2d: groups " + std::to_string(groups) +
                     " must divide in_channels " + std::to_string(in) + " and out_channels " +
                     std::to_string(out));
  }
  // PyTorch's default, kaiming_uniform(a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the
  // same bound for the bias.
  const T bound = T(1) / std::sqrt(static_cast<T>(in / groups * kh * kw));
  weight_ = this->register_parameter("weight",
                                     Tensor<T>(Array<T>::from_shape({out, in / groups, kh, kw})));
  init::uniform_(weight_, -bound, bound, gen);
  if (options.bias) {
    bias_ = this->register_parameter("bias", Tensor<T>(Array<T>::from_shape({out})));
    init::uniform_(bias_, -bound, bound, gen);
  }
}

template <class T>
Tensor<T> Conv2d<T>::forward(const Tensor<T>& input) {
  return conv2d(input, weight_, bias_, opt_.stride, opt_.padding, opt_.dilation, opt_.groups);
}

template <class T>
std::string Conv2d<T>::describe() const {
  std::string s = "Conv2d(" + std::to_string(in_) + ", " + std::to_string(out_) +
                  ", kernel_size=" + pair_str(kernel_) + ", stride=" + pair_str(opt_.stride);
  if (opt_.padding.h != 0 || opt_.padding.w != 0) s += ", padding=" + pair_str(opt_.padding);
  if (opt_.dilation.h != 1 || opt_.dilation.w != 1) s += ", dilation=" + pair_str(opt_.dilation);
  if (opt_.groups != 1) s += ", groups=" + std::to_string(opt_.groups);
  if (!opt_.bias) s += ", bias=false";
  return s + ")";
}

// ---- pooling ----

template <class T>
MaxPool2d<T>::MaxPool2d(Size2 kernel_size, Size2 stride, Size2 padding, Size2 dilation)
    : kernel_(kernel_size),
      stride_(stride.h == 0 && stride.w == 0 ? kernel_size : stride),
      padding_(padding),
      dilation_(dilation) {}

template <class T>
Tensor<T> MaxPool2d<T>::forward(const Tensor<T>& input) {
  return max_pool2d(input, kernel_, stride_, padding_, dilation_);
}

template <class T>
std::string MaxPool2d<T>::describe() const {
  return "MaxPool2d(kernel_size=" + pair_str(kernel_) + ", stride=" + pair_str(stride_) +
         ", padding=" + pair_str(padding_) + ", dilation=" + pair_str(dilation_) + ")";
}

template <class T>
AvgPool2d<T>::AvgPool2d(Size2 kernel_size, Size2 stride, Size2 padding, bool count_include_pad)
    : kernel_(kernel_size),
      stride_(stride.h == 0 && stride.w == 0 ? kernel_size : stride),
      padding_(padding),
      include_pad_(count_include_pad) {}

template <class T>
Tensor<T> AvgPool2d<T>::forward(const Tensor<T>& input) {
  return avg_pool2d(input, kernel_, stride_, padding_, include_pad_);
}

template <class T>
std::string AvgPool2d<T>::describe() const {
  return "AvgPool2d(kernel_size=" + pair_str(kernel_) + ", stride=" + pair_str(stride_) +
         ", padding=" + pair_str(padding_) + (include_pad_ ? "" : ", count_include_pad=false") +
         ")";
}

// ---- BatchNorm ----

template <class T>
BatchNorm<T>::BatchNorm(std::int64_t num_features, double eps, double momentum, bool affine)
    : BatchNorm("BatchNorm", 2, 4, num_features, eps, momentum, affine) {}

template <class T>
BatchNorm<T>::BatchNorm(const char* name, std::size_t rank_lo, std::size_t rank_hi,
                        std::int64_t num_features, double eps, double momentum, bool affine)
    : name_(name),
      rank_lo_(rank_lo),
      rank_hi_(rank_hi),
      features_(num_features),
      eps_(eps),
      momentum_(momentum) {
  const std::size_t c = positive(name, "num_features", num_features);
  if (!(eps >= 0) || !(momentum >= 0 && momentum <= 1)) {
    throw ValueError(std::string("xgrad::nn::") + name + ": eps " + num_str(eps) +
                     " must be >= 0 and momentum " + num_str(momentum) + " in [0, 1]");
  }
  if (affine) {
    weight_ = this->register_parameter("weight", Tensor<T>::full({c}, T(1)));
    bias_ = this->register_parameter("bias", Tensor<T>::full({c}, T(0)));
  }
  running_mean_ = this->register_buffer("running_mean", Tensor<T>::full({c}, T(0)));
  running_var_ = this->register_buffer("running_var", Tensor<T>::full({c}, T(1)));
  tracked_ = this->register_buffer("num_batches_tracked", Tensor<T>::full({}, T(0)));
}

template <class T>
Tensor<T> BatchNorm<T>::forward(const Tensor<T>& input) {
  if (input.dim() < rank_lo_ || input.dim() > rank_hi_) {
    throw ShapeError(std::string("xgrad::nn::") + name_ + ": expected a " +
                     (rank_lo_ == rank_hi_
                          ? std::to_string(rank_lo_) + "-D"
                          : std::to_string(rank_lo_) + "-D or " + std::to_string(rank_hi_) + "-D") +
                     " input, got " + shape_str(input.shape()));
  }
  const bool training = this->is_training();
  Tensor<T> y =
      batch_norm(input, running_mean_, running_var_, weight_, bias_, training, momentum_, eps_);
  if (training) tracked_.mutable_value() += T(1);
  return y;
}

template <class T>
std::string BatchNorm<T>::describe() const {
  return std::string(name_) + "(" + std::to_string(features_) + ", eps=" + num_str(eps_) +
         ", momentum=" + num_str(momentum_) + ", affine=" + (weight_.defined() ? "true" : "false") +
         ")";
}

// ---- LayerNorm ----

template <class T>
LayerNorm<T>::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : shape_(std::move(normalized_shape)), eps_(eps) {
  std::size_t count = 1;
  for (std::size_t e : shape_) count *= e;
  if (shape_.empty() || count == 0 || !(eps >= 0)) {
    throw ValueError("xgrad::nn::LayerNorm: normalized_shape " + shape_str(shape_) + " and eps " +
                     num_str(eps) + ": the shape needs at least one dim and no zero extent, eps " +
                     "must be >= 0");
  }
  if (elementwise_affine) {
    weight_ = this->register_parameter("weight", Tensor<T>::full(shape_, T(1)));
    bias_ = this->register_parameter("bias", Tensor<T>::full(shape_, T(0)));
  }
}

template <class T>
Tensor<T> LayerNorm<T>::forward(const Tensor<T>& input) {
  return layer_norm(input, shape_, weight_, bias_, eps_);
}

template <class T>
std::string LayerNorm<T>::describe() const {
  return "LayerNorm(" + shape_str(shape_) + ", eps=" + num_str(eps_) +
         ", elementwise_affine=" + (weight_.defined() ? "true" : "false") + ")";
}

// ---- Embedding ----

template <class T>
Embedding<T>::Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, Generator& gen)
    : num_(num_embeddings), dim_(embedding_dim) {
  const std::size_t n = positive("Embedding", "num_embeddings", num_embeddings);
  const std::size_t d = positive("Embedding", "embedding_dim", embedding_dim);
  weight_ = this->register_parameter("weight", Tensor<T>(Array<T>::from_shape({n, d})));
  init::normal_(weight_, T(0), T(1), gen);
}

template <class T>
Tensor<T> Embedding<T>::forward(const Tensor<T>& indices) {
  return embedding(indices, weight_);
}

template <class T>
std::string Embedding<T>::describe() const {
  return "Embedding(" + std::to_string(num_) + ", " + std::to_string(dim_) + ")";
}

// ---- MultiheadAttention ----

template <class T>
MultiheadAttention<T>::MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads,
                                          MultiheadAttentionOptions options, Generator& gen)
    : embed_(embed_dim), heads_(num_heads), opt_(options) {
  const std::size_t e = positive("MultiheadAttention", "embed_dim", embed_dim);
  const std::size_t h = positive("MultiheadAttention", "num_heads", num_heads);
  if (e % h != 0) {
    throw ValueError("xgrad::nn::MultiheadAttention: num_heads " + std::to_string(h) +
                     " must divide embed_dim " + std::to_string(e));
  }
  in_proj_weight_ =
      this->register_parameter("in_proj_weight", Tensor<T>(Array<T>::from_shape({3 * e, e})));
  init::xavier_uniform_(in_proj_weight_, T(1), gen);
  if (options.bias)
    in_proj_bias_ = this->register_parameter("in_proj_bias", Tensor<T>::full({3 * e}, T(0)));
  out_proj_ = this->register_module("out_proj", Linear<T>(e, e, options.bias, gen));
  if (options.bias) init::zeros_(out_proj_->bias());
}

template <class T>
Tensor<T> MultiheadAttention<T>::forward(const Tensor<T>& x) {
  return forward(x, x, x, Tensor<T>(), opt_.causal);
}

template <class T>
Tensor<T> MultiheadAttention<T>::forward(const Tensor<T>& query, const Tensor<T>& key,
                                         const Tensor<T>& value, const Tensor<T>& attn_mask,
                                         bool is_causal) {
  const auto e = embed_;
  const auto fail = [&](const std::string& why) {
    throw ShapeError("xgrad::nn::MultiheadAttention: query " + shape_str(query.shape()) + ", key " +
                     shape_str(key.shape()) + ", value " + shape_str(value.shape()) +
                     ", embed_dim " + std::to_string(e) + ": " + why);
  };
  const std::size_t rank = query.dim();
  if ((rank != 2 && rank != 3) || key.dim() != rank || value.dim() != rank) {
    fail("inputs must all be [N, T, E] or all [T, E]");
  }
  const auto as_batch = [&](const Tensor<T>& t) { return rank == 2 ? unsqueeze(t, 0) : t; };
  const Tensor<T> q0 = as_batch(query), k0 = as_batch(key), v0 = as_batch(value);
  const auto t = static_cast<std::int64_t>(q0.size(1));
  const auto s = static_cast<std::int64_t>(k0.size(1));
  if (q0.size(2) != static_cast<std::size_t>(e) || k0.size(2) != static_cast<std::size_t>(e) ||
      v0.size(2) != static_cast<std::size_t>(e)) {
    fail("the last dim must be embed_dim");
  }
  if (k0.size(0) != q0.size(0) || v0.size(0) != q0.size(0) || v0.size(1) != k0.size(1)) {
    fail("batch sizes must agree, and key and value must have the same length");
  }
  if (is_causal && t != s) fail("a causal mask needs query and key of the same length");
  // One projection for self-attention (q, k and v from one product, read in place by the
  // attention); slices of the weight otherwise.
  const auto project = [&](const Tensor<T>& x, std::int64_t part) {
    const Tensor<T> w = slice(in_proj_weight_, 0, part * e, (part + 1) * e);
    const Tensor<T> b =
        in_proj_bias_.defined() ? slice(in_proj_bias_, 0, part * e, (part + 1) * e) : Tensor<T>();
    return linear(x, w, b);
  };
  const Tensor<T> mixed =
      query.impl() == key.impl() && key.impl() == value.impl()
          ? multi_head_self_attention(linear(q0, in_proj_weight_, in_proj_bias_), heads_, attn_mask,
                                      is_causal)
          : multi_head_attention(project(q0, 0), project(k0, 1), project(v0, 2), heads_, attn_mask,
                                 is_causal);
  const Tensor<T> out = out_proj_->forward(mixed);
  return rank == 2 ? squeeze(out, 0) : out;
}

template <class T>
std::string MultiheadAttention<T>::describe() const {
  return "MultiheadAttention(embed_dim=" + std::to_string(embed_) +
         ", num_heads=" + std::to_string(heads_) + (opt_.causal ? ", causal=true" : "") +
         (opt_.bias ? "" : ", bias=false") + ")";
}

#define XGRAD_INSTANTIATE_BLOCKS(T) \
  template class Conv2d<T>;         \
  template class MaxPool2d<T>;      \
  template class AvgPool2d<T>;      \
  template class BatchNorm<T>;      \
  template class LayerNorm<T>;      \
  template class Embedding<T>;      \
  template class MultiheadAttention<T>;

XGRAD_INSTANTIATE_BLOCKS(float)
XGRAD_INSTANTIATE_BLOCKS(double)

}  // namespace xgrad::nn
