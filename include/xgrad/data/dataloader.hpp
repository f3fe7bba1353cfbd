#pragma once
// Mini-batches over a pair of in-memory tensors, optionally reshuffled every epoch.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad::data {

/// How a DataLoader cuts and orders its batches.
struct DataLoaderOptions {
  /// Samples per batch (the last one may be smaller unless drop_last).
  std::size_t batch_size = 1;
  /// Draw a new sample order every epoch.
  bool shuffle = false;
  /// Leave out the last batch when it would be smaller than batch_size.
  bool drop_last = false;
  /// With the epoch number, fixes each epoch's order: the same seed gives the same epochs.
  std::uint64_t seed = 0;
};

/// Chooses the samples a DataLoader visits in an epoch out of the epoch's order of all of them
/// (0..N-1, or its shuffle): dist::DistributedSampler gives each process its own share.
class Sampler {
 public:
  /// Samplers are used through the base.
  virtual ~Sampler() = default;
  /// How many samples one epoch over `num_samples` visits.
  virtual std::size_t size(std::size_t num_samples) const = 0;
  /// The samples of epoch `epoch`, in visiting order, picked from `order` (every sample once).
  virtual std::vector<std::size_t> select(std::vector<std::size_t> order,
                                          std::uint64_t epoch) const = 0;
};

/// One mini-batch: rows of the inputs and the targets at the same sample indices.
template <class T>
struct Batch {
  /// Rows of the inputs, [batch, ...].
  Tensor<T> inputs;
  /// Rows of the targets at the same samples.
  Tensor<T> targets;
};

/// Iterates over mini-batches of (inputs, targets), which share their first dim (the samples).
/// Every begin() starts a new epoch; when shuffling, the epoch's order is a permutation drawn from
/// a generator seeded with (seed, epoch number), so runs are reproducible. Each batch holds copies
/// of its own rows only and never requires grad.
template <class T>
class DataLoader {
 public:
  /// Input iterator over one epoch's batches; dereferencing gathers the batch.
  class Iterator {
   public:
    /// Single pass: each begin() is a new epoch.
    using iterator_category = std::input_iterator_tag;
    /// What dereferencing gives.
    using value_type = Batch<T>;
    /// Distance between iterators.
    using difference_type = std::ptrdiff_t;
    /// No pointer: batches are built on dereference.
    using pointer = void;
    /// Batches are returned by value.
    using reference = Batch<T>;

    Iterator() = default;
    /// Gathers the current batch (a copy of its rows).
    Batch<T> operator*() const { return loader_->gather(*order_, index_); }
    /// Moves to the next batch.
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    /// Moves to the next batch.
    void operator++(int) { ++index_; }
    /// Same batch position.
    bool operator==(const Iterator& other) const { return index_ == other.index_; }

   private:
    friend class DataLoader;
    Iterator(const DataLoader* loader, std::shared_ptr<const std::vector<std::size_t>> order,
             std::size_t index)
        : loader_(loader), order_(std::move(order)), index_(index) {}

    const DataLoader* loader_ = nullptr;
    std::shared_ptr<const std::vector<std::size_t>> order_;
    std::size_t index_ = 0;
  };

  /// Raises ShapeError when either tensor is 0-dimensional or their first dims differ, and
  /// ValueError when batch_size is 0. Keeps detached handles on the two tensors (no copy).
  DataLoader(Tensor<T> inputs, Tensor<T> targets, DataLoaderOptions options = {});
  /// The same, visiting only the samples `sampler` selects from each epoch's order.
  DataLoader(Tensor<T> inputs, Tensor<T> targets, DataLoaderOptions options,
             std::shared_ptr<const Sampler> sampler);
  /// The same with a sampler given by value (DataLoader(x, y, {...}, DistributedSampler(world))).
  template <std::derived_from<Sampler> S>
  DataLoader(Tensor<T> inputs, Tensor<T> targets, DataLoaderOptions options, S sampler)
      : DataLoader(std::move(inputs), std::move(targets), options,
                   std::make_shared<const S>(std::move(sampler))) {}

  /// Number of batches in one epoch.
  std::size_t size() const;
  /// Number of samples (the shared first dim).
  std::size_t num_samples() const { return samples_; }
  /// Number of samples one epoch visits: num_samples(), or the sampler's share of them.
  std::size_t epoch_samples() const { return sampler_ ? sampler_->size(samples_) : samples_; }
  /// The options given to the constructor.
  const DataLoaderOptions& options() const { return options_; }
  /// Number of the epoch the next begin() starts (0 at first).
  std::uint64_t epoch() const { return epoch_; }
  /// Makes the next begin() start epoch `epoch` (to resume a run).
  void set_epoch(std::uint64_t epoch) { epoch_ = epoch; }
  /// The samples epoch `epoch` visits, in order: 0..N-1, or its shuffle for that epoch (drawn
  /// from the seed and the epoch number), or what the sampler selects from that.
  std::vector<std::size_t> order(std::uint64_t epoch) const;

  /// Starts the next epoch.
  Iterator begin();
  /// Past the last batch of an epoch.
  Iterator end() const { return Iterator(this, nullptr, size()); }

 private:
  Batch<T> gather(const std::vector<std::size_t>& order, std::size_t batch) const;

  Tensor<T> inputs_;
  Tensor<T> targets_;
  DataLoaderOptions options_;
  std::size_t samples_ = 0;
  std::uint64_t epoch_ = 0;
  std::shared_ptr<const Sampler> sampler_;
};

}  // namespace xgrad::data
