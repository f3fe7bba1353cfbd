// Each process's share of an epoch, as torch.utils.data.distributed.DistributedSampler cuts it:
// positions rank, rank + W, rank + 2W, ... of the epoch's order, padded or cut to a multiple of W.

#include <string>

#include <xgrad/distributed/sampler.hpp>

namespace xgrad::dist {

DistributedSampler::DistributedSampler(const ProcessGroup& group, bool drop_last)
    : DistributedSampler(static_cast<std::size_t>(group.rank()),
                         static_cast<std::size_t>(group.size()), drop_last) {}

DistributedSampler::DistributedSampler(std::size_t rank, std::size_t world_size, bool drop_last)
    : rank_(rank), world_size_(world_size), drop_last_(drop_last) {
  if (world_size == 0 || rank >= world_size) {
    throw ValueError("xgrad::dist::DistributedSampler: rank " + std::to_string(rank) +
                     " is not a rank of a group of " + std::to_string(world_size));
  }
}

std::size_t DistributedSampler::size(std::size_t num_samples) const {
  return drop_last_ ? num_samples / world_size_ : (num_samples + world_size_ - 1) / world_size_;
}

std::vector<std::size_t> DistributedSampler::select(std::vector<std::size_t> order,
                                                    std::uint64_t /*epoch*/) const {
  const std::size_t per_process = size(order.size());
  std::vector<std::size_t> share;
  share.reserve(per_process);
  // Padding repeats the epoch's first samples (position p of the padded order is p mod N).
  for (std::size_t k = 0; k < per_process; ++k) {
    share.push_back(order[(rank_ + k * world_size_) % order.size()]);
  }
  return share;
}

}  // namespace xgrad::dist
