// Shuffling is Fisher-Yates over mt19937_64 with rejection sampling, not std::shuffle: the
// standard fixes mt19937_64's output and seed_seq's mixing but not std::shuffle's algorithm or
// uniform_int_distribution's, so this order is the same with every standard library.

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include <xgrad/data/dataloader.hpp>
#include <xgrad/profiler.hpp>

#include "core/parallel.hpp"

namespace xgrad::data {

namespace {

/// Uniform on [0, bound) without modulo bias.
std::uint64_t below(std::mt19937_64& gen, std::uint64_t bound) {
  const std::uint64_t limit =
      std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % bound;
  for (;;) {
    const std::uint64_t r = gen();
    if (r < limit) return r % bound;
  }
}

}  // namespace

template <class T>
DataLoader<T>::DataLoader(Tensor<T> inputs, Tensor<T> targets, DataLoaderOptions options)
    : options_(options) {
  if (options.batch_size == 0) {
    throw ValueError("xgrad::DataLoader: batch_size must be positive, got 0");
  }
  const Shape in_shape = inputs.shape();
  const Shape tg_shape = targets.shape();
  if (in_shape.empty() || tg_shape.empty()) {
    throw ShapeError("xgrad::DataLoader: inputs " + shape_str(in_shape) + " and targets " +
                     shape_str(tg_shape) + " need a leading dim of samples");
  }
  if (in_shape[0] != tg_shape[0]) {
    throw ShapeError("xgrad::DataLoader: inputs " + shape_str(in_shape) + " and targets " +
                     shape_str(tg_shape) + " hold different numbers of samples (" +
                     std::to_string(in_shape[0]) + " vs " + std::to_string(tg_shape[0]) + ")");
  }
  // Detached: batches must not drag the producers' graphs along.
  inputs_ = inputs.detach();
  targets_ = targets.detach();
  samples_ = in_shape[0];
}

template <class T>
DataLoader<T>::DataLoader(Tensor<T> inputs, Tensor<T> targets, DataLoaderOptions options,
                          std::shared_ptr<const Sampler> sampler)
    : DataLoader(std::move(inputs), std::move(targets), options) {
  if (!sampler) throw ValueError("xgrad::DataLoader: the sampler is null");
  sampler_ = std::move(sampler);
}

template <class T>
std::size_t DataLoader<T>::size() const {
  const std::size_t b = options_.batch_size;
  const std::size_t n = epoch_samples();
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

template <class T>
std::vector<std::size_t> DataLoader<T>::order(std::uint64_t epoch) const {
  std::vector<std::size_t> idx(samples_);
  std::iota(idx.begin(), idx.end(), std::size_t(0));
  if (options_.shuffle) {
    const std::uint64_t s = options_.seed;
    std::seed_seq seq{std::uint32_t(s), std::uint32_t(s >> 32), std::uint32_t(epoch),
                      std::uint32_t(epoch >> 32)};
    std::mt19937_64 gen(seq);
    for (std::size_t i = samples_; i > 1; --i) {
      std::swap(idx[i - 1], idx[below(gen, i)]);
    }
  }
  if (!sampler_) return idx;
  auto selected = sampler_->select(std::move(idx), epoch);
  const std::size_t expected = sampler_->size(samples_);
  if (selected.size() != expected) {
    throw ValueError("xgrad::DataLoader: the sampler selected " + std::to_string(selected.size()) +
                     " samples for epoch " + std::to_string(epoch) + " but its size() is " +
                     std::to_string(expected));
  }
  for (const std::size_t i : selected) {
    if (i >= samples_) {
      throw ValueError("xgrad::DataLoader: the sampler selected sample " + std::to_string(i) +
                       " of " + std::to_string(samples_));
    }
  }
  return selected;
}

template <class T>
typename DataLoader<T>::Iterator DataLoader<T>::begin() {
  auto idx = std::make_shared<const std::vector<std::size_t>>(order(epoch_));
  ++epoch_;
  return Iterator(this, std::move(idx), 0);
}

namespace {

/// Copies rows order[first..last) of src (rows of `row` elements) into a new [last-first, ...].
template <class T>
Tensor<T> gather_rows(const Array<T>& src, const std::vector<std::size_t>& order, std::size_t first,
                      std::size_t last) {
  Shape shape(src.shape().begin(), src.shape().end());
  const std::size_t row = shape[0] == 0 ? 0 : src.size() / shape[0];
  shape[0] = last - first;
  Array<T> out = Array<T>::from_shape(shape);
  const T* from = src.data();
  T* const to = out.data();
  // The rows are scattered over a data set larger than the caches: each row's first lines are
  // requested a few rows ahead, so that the copy does not wait on memory row after row.
  constexpr std::size_t kAhead = 4;
  constexpr std::size_t kLine = 64 / sizeof(T);
  const auto prefetch = [&](std::size_t i) {
    const T* r = from + order[i] * row;
    for (std::size_t e = 0; e < row; e += kLine) __builtin_prefetch(r + e);
  };
  // Split over xgrad's threads in pieces of at least 16k elements: the copy waits on memory,
  // and two cores wait for two rows at once.
  const std::size_t grain =
      std::max<std::size_t>(1, (std::size_t{1} << 14) / std::max<std::size_t>(row, 1));
  xgrad::detail::parallel_for(last - first, grain, 1, [&](std::size_t lo, std::size_t hi) {
    const std::size_t a = first + lo, b = first + hi;
    for (std::size_t i = a; i < std::min(b, a + kAhead); ++i) prefetch(i);
    for (std::size_t i = a; i < b; ++i) {
      if (i + kAhead < b) prefetch(i + kAhead);
      std::copy(from + order[i] * row, from + (order[i] + 1) * row, to + (i - first) * row);
    }
  });
  return Tensor<T>(std::move(out));
}

}  // namespace

template <class T>
Batch<T> DataLoader<T>::gather(const std::vector<std::size_t>& order, std::size_t batch) const {
  const profiler::record_function region("DataLoader.batch");
  const std::size_t first = batch * options_.batch_size;
  const std::size_t last = std::min(order.size(), first + options_.batch_size);
  return {gather_rows(inputs_.value(), order, first, last),
          gather_rows(targets_.value(), order, first, last)};
}

template class DataLoader<float>;
template class DataLoader<double>;

}  // namespace xgrad::data
