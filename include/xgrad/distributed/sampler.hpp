#pragma once
/// @file
/// Each process's share of every epoch, for a DataLoader.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <xgrad/data/dataloader.hpp>
#include <xgrad/distributed/process_group.hpp>

namespace xgrad::dist {

/// Gives process `rank` of `world_size` the samples at positions rank, rank + world_size,
/// rank + 2 world_size, ... of each epoch's order (the DataLoader's, identical on every process
/// for the same seed), so that the shares are disjoint and together make up the epoch. With
/// batch b per process, batch k of every process together are the samples of batch k of a
/// single process with batch b * world_size. An epoch whose sample count does not divide by
/// world_size is padded with its first samples (each process visits ceil(N / world_size); a
/// few samples are seen twice), or, with drop_last, cut to floor(N / world_size) per process.
/// Every process so visits the same number of samples, which data-parallel training needs.
class DistributedSampler : public data::Sampler {
 public:
  /// The share of this process of `group`.
  explicit DistributedSampler(const ProcessGroup& group, bool drop_last = false);
  /// The share of process `rank` of `world_size` (ValueError unless rank < world_size).
  DistributedSampler(std::size_t rank, std::size_t world_size, bool drop_last = false);

  /// Samples per epoch on every process.
  std::size_t size(std::size_t num_samples) const override;
  /// This process's samples of the epoch's order.
  std::vector<std::size_t> select(std::vector<std::size_t> order,
                                  std::uint64_t epoch) const override;

 private:
  std::size_t rank_;
  std::size_t world_size_;
  bool drop_last_;
};

}  // namespace xgrad::dist
