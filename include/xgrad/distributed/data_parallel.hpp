#pragma once
/// @file
/// Data-parallel training: every process holds the model and averages its gradients with the
/// others' during backward, as torch.nn.parallel.DistributedDataParallel.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xgrad/distributed/process_group.hpp>
#include <xgrad/nn/module.hpp>

namespace xgrad::dist {

/// Options of DataParallel.
struct DataParallelOptions {
  /// Gradients are exchanged in buckets of about this many bytes, each as soon as all of its
  /// parameters' gradients are final, so that communication overlaps the rest of the backward.
  std::size_t bucket_bytes = std::size_t(25) << 20;
  /// Copy rank 0's parameters to every process when constructed.
  bool broadcast_parameters = true;
  /// Copy rank 0's buffers (BatchNorm's running statistics) to every process when constructed
  /// and at the end of every synchronised backward pass, so that every process holds the same
  /// statistics from one step to the next, as PyTorch's broadcast_buffers (which copies them
  /// before every forward pass: the same values, as the forward passes only update them).
  bool broadcast_buffers = true;
  /// A parameter that got no gradient in a pass on some process is averaged as zero; with false
  /// (the default, as in PyTorch) that raises DistributedError naming it once the exchange ends.
  bool find_unused_parameters = false;
};

/// What the last synchronised backward pass spent on communication.
struct CommStats {
  /// Buckets exchanged.
  std::size_t buckets = 0;
  /// Bytes of gradients exchanged per process.
  std::size_t bytes = 0;
  /// Seconds from the first bucket's start to the last one's completion.
  double comm_seconds = 0;
  /// Seconds the pass waited at its end for exchanges still in flight (the part of the
  /// communication the backward did not hide).
  double wait_seconds = 0;
};

/// Averages the gradients of `model`'s parameters across the group's processes in every
/// backward pass that reaches them: hooks copy each parameter's final gradient into its bucket,
/// start a non-blocking all_reduce per full bucket, and the pass ends (queue_callback) once every
/// bucket has arrived and each parameter's grad() holds the mean over processes. Buckets are
/// started in a fixed order on every process. The model is used directly (model(x)); keep the
/// DataParallel alive for as long as the model trains. Parameters are in reverse registration
/// order in the buckets, as gradients tend to become final in that order.
template <class T>
class DataParallel {
 public:
  /// Registers the hooks; broadcasts rank 0's parameters and buffers unless told not to.
  DataParallel(nn::Module<T>& model, ProcessGroup group, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  /// While the guard lives, backward passes accumulate local gradients without exchanging them
  /// (gradient accumulation over micro-batches); the first pass after it exchanges the sum.
  class NoSync {
   public:
    /// Restores synchronisation.
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    friend class DataParallel;
    explicit NoSync(DataParallel& owner);
    DataParallel& owner_;
    bool previous_;
  };
  /// Turns gradient exchange off until the guard is destroyed.
  NoSync no_sync() { return NoSync(*this); }

  /// The process group.
  const ProcessGroup& group() const;
  /// Number of buckets and the parameter names in each, in exchange order.
  std::vector<std::vector<std::string>> buckets() const;
  /// Names of the parameters that got no gradient on this process in the last synchronised pass.
  std::vector<std::string> unused_parameters() const;
  /// Communication of the last synchronised pass.
  CommStats last_stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

extern template class DataParallel<float>;
extern template class DataParallel<double>;

}  // namespace xgrad::dist
