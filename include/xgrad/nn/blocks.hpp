#pragma once
// Layers of image and sequence models: Conv2d, MaxPool2d, AvgPool2d, BatchNorm1d/BatchNorm2d,
// LayerNorm, Embedding and MultiheadAttention. Parameter and buffer names, layouts and default
// initialisation are PyTorch's, so that a state_dict maps one to one (BatchNorm's
// num_batches_tracked is a count in the module's float type, where PyTorch keeps an int64: it is
// read from PyTorch's files and written as a float, which torch's load_state_dict converts).

#include <cstdint>
#include <string>

#include <xgrad/nn/layers.hpp>
#include <xgrad/nn/module.hpp>
#include <xgrad/ops.hpp>

namespace xgrad::nn {

/// Options of Conv2d beyond the channel counts and kernel size, as torch.nn.Conv2d's keywords:
/// `Conv2d<float>(1, 16, 3, {.padding = 1})`.
struct Conv2dOptions {
  /// Step between windows.
  Size2 stride = 1;
  /// Zero padding on each side.
  Size2 padding = 0;
  /// Spacing between kernel taps.
  Size2 dilation = 1;
  /// Channel groups (in and out channels must be multiples of it).
  std::int64_t groups = 1;
  /// Whether the layer adds a bias.
  bool bias = true;
};

/// 2-D convolution layer: weight [out, in / groups, kh, kw], bias [out], both drawn from
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in / groups * kh * kw, as PyTorch does.
template <class T>
class Conv2d : public Module<T> {
 public:
  /// A layer from in_channels to out_channels with kernel_size windows, drawn from `gen`.
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size,
         Conv2dOptions options = {}, Generator& gen = default_generator());
  /// conv2d(input, weight, bias, stride, padding, dilation, groups).
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))".
  std::string describe() const override;
  /// The weight, a handle sharing the parameter.
  Tensor<T> weight() const { return weight_; }
  /// The bias (undefined without one).
  Tensor<T> bias() const { return bias_; }

 private:
  std::int64_t in_, out_;
  Size2 kernel_;
  Conv2dOptions opt_;
  Tensor<T> weight_, bias_;
};

/// Max pooling layer: max_pool2d(input, kernel_size, stride, padding, dilation); stride 0 means
/// kernel_size.
template <class T>
class MaxPool2d : public Module<T> {
 public:
  /// Windows of kernel_size, moved by stride (kernel_size when 0).
  explicit MaxPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0, Size2 dilation = 1);
  /// max_pool2d(input, ...).
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))".
  std::string describe() const override;

 private:
  Size2 kernel_, stride_, padding_, dilation_;
};

/// Average pooling layer: avg_pool2d(input, kernel_size, stride, padding, count_include_pad).
template <class T>
class AvgPool2d : public Module<T> {
 public:
  /// Windows of kernel_size, moved by stride (kernel_size when 0).
  explicit AvgPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0,
                     bool count_include_pad = true);
  /// avg_pool2d(input, ...).
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "AvgPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))".
  std::string describe() const override;

 private:
  Size2 kernel_, stride_, padding_;
  bool include_pad_;
};

/// Batch normalisation over the channels (dim 1) of [N, C] or [N, C, L] (BatchNorm1d) and
/// [N, C, H, W] (BatchNorm2d) inputs: parameters weight (ones) and bias (zeros), buffers
/// running_mean (zeros), running_var (ones) and num_batches_tracked, as torch.nn.BatchNorm*d.
/// Training mode normalises by the batch and updates the running statistics; evaluation mode
/// normalises by them.
template <class T>
class BatchNorm : public Module<T> {
 public:
  /// num_features channels; momentum and eps as batch_norm(); affine adds weight and bias.
  BatchNorm(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1,
            bool affine = true);
  /// batch_norm(input, running_mean, running_var, weight, bias, is_training(), momentum, eps),
  /// after checking the input's rank for this layer.
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=true)".
  std::string describe() const override;
  /// The running mean, a handle sharing the buffer.
  Tensor<T> running_mean() const { return running_mean_; }
  /// The running (unbiased) variance, a handle sharing the buffer.
  Tensor<T> running_var() const { return running_var_; }
  /// The scale (undefined without affine).
  Tensor<T> weight() const { return weight_; }
  /// The shift (undefined without affine).
  Tensor<T> bias() const { return bias_; }

 protected:
  /// The name in errors and describe(), and the input ranks the layer takes.
  BatchNorm(const char* name, std::size_t rank_lo, std::size_t rank_hi, std::int64_t num_features,
            double eps, double momentum, bool affine);

 private:
  const char* name_;
  std::size_t rank_lo_, rank_hi_;
  std::int64_t features_;
  double eps_, momentum_;
  Tensor<T> weight_, bias_, running_mean_, running_var_, tracked_;
};

/// BatchNorm over [N, C] or [N, C, L] inputs.
template <class T>
class BatchNorm1d : public BatchNorm<T> {
 public:
  /// As BatchNorm.
  explicit BatchNorm1d(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true)
      : BatchNorm<T>("BatchNorm1d", 2, 3, num_features, eps, momentum, affine) {}
};

/// BatchNorm over [N, C, H, W] inputs.
template <class T>
class BatchNorm2d : public BatchNorm<T> {
 public:
  /// As BatchNorm.
  explicit BatchNorm2d(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true)
      : BatchNorm<T>("BatchNorm2d", 4, 4, num_features, eps, momentum, affine) {}
};

/// Layer normalisation over the trailing normalized_shape dims, with weight (ones) and bias
/// (zeros) of that shape when elementwise_affine, as torch.nn.LayerNorm.
template <class T>
class LayerNorm : public Module<T> {
 public:
  /// Normalises the trailing dims `normalized_shape`.
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  /// layer_norm(input, normalized_shape, weight, bias, eps).
  Tensor<T> forward(const Tensor<T>& input) override;
  /// "LayerNorm([64], eps=1e-05, elementwise_affine=true)".
  std::string describe() const override;
  /// The scale (undefined without elementwise_affine).
  Tensor<T> weight() const { return weight_; }
  /// The shift (undefined without elementwise_affine).
  Tensor<T> bias() const { return bias_; }

 private:
  Shape shape_;
  double eps_;
  Tensor<T> weight_, bias_;
};

/// A lookup table of num_embeddings vectors of embedding_dim, weight ~ N(0, 1) as PyTorch draws
/// it: forward(indices) with whole numbers of any shape S gives S + [embedding_dim].
template <class T>
class Embedding : public Module<T> {
 public:
  /// A table drawn from `gen`.
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim,
            Generator& gen = default_generator());
  /// embedding(indices, weight).
  Tensor<T> forward(const Tensor<T>& indices) override;
  /// "Embedding(27, 64)".
  std::string describe() const override;
  /// The table, [num_embeddings, embedding_dim].
  Tensor<T> weight() const { return weight_; }

 private:
  std::int64_t num_, dim_;
  Tensor<T> weight_;
};

/// Options of MultiheadAttention beyond the width and head count.
struct MultiheadAttentionOptions {
  /// Whether the input and output projections add biases.
  bool bias = true;
  /// Position t attends to positions <= t only (a causal mask), in forward(x).
  bool causal = false;
};

/// Multi-head scaled dot-product attention on batch-first inputs [N, T, E] (or [T, E]), as
/// torch.nn.MultiheadAttention(batch_first=true): parameters in_proj_weight [3E, E] (Xavier
/// uniform), in_proj_bias [3E] (zeros) and the child out_proj (Linear(E, E), bias zeros).
template <class T>
class MultiheadAttention : public Module<T> {
 public:
  /// embed_dim split over num_heads heads (num_heads must divide it).
  MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads,
                     MultiheadAttentionOptions options = {}, Generator& gen = default_generator());
  /// Self-attention: forward(x, x, x), with the causal mask if the options ask for it.
  Tensor<T> forward(const Tensor<T>& x) override;
  /// Attention of query [N, T, E] over key and value [N, S, E]. attn_mask (optional) broadcasts
  /// to [N, heads, T, S]: nonzero entries are positions not attended to (as a bool mask in
  /// PyTorch). is_causal adds the causal mask (T == S).
  Tensor<T> forward(const Tensor<T>& query, const Tensor<T>& key, const Tensor<T>& value,
                    const Tensor<T>& attn_mask = Tensor<T>(), bool is_causal = false);
  /// "MultiheadAttention(embed_dim=64, num_heads=4, causal=true)".
  std::string describe() const override;

 private:
  std::int64_t embed_, heads_;
  MultiheadAttentionOptions opt_;
  Tensor<T> in_proj_weight_, in_proj_bias_;
  Handle<Linear<T>> out_proj_;
};

extern template class Conv2d<float>;
extern template class Conv2d<double>;
extern template class MaxPool2d<float>;
extern template class MaxPool2d<double>;
extern template class AvgPool2d<float>;
extern template class AvgPool2d<double>;
extern template class BatchNorm<float>;
extern template class BatchNorm<double>;
extern template class LayerNorm<float>;
extern template class LayerNorm<double>;
extern template class Embedding<float>;
extern template class Embedding<double>;
extern template class MultiheadAttention<float>;
extern template class MultiheadAttention<double>;

}  // namespace xgrad::nn
