// Gradient averaging during backward. Each parameter has a post-accumulate hook: it copies the
// final gradient into the parameter's place in a bucket (one flat buffer per group of
// parameters) and, once a bucket is full, starts its all_reduce without waiting. Buckets start
// strictly in index order, so that every process issues the same collectives in the same order
// even if gradients become final in another order. The first hook of a pass queues a callback
// for the end of the pass, which starts what is left (a parameter that got no gradient counts as
// zero), waits for every bucket and writes the means back into grad().
//
// The last bucket carries one extra element: how many parameters this process had not seen when
// that bucket started. Summed over processes it says whether any process missed one, so every
// process raises the same error without another collective.

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include <xgrad/autograd.hpp>
#include <xgrad/distributed/data_parallel.hpp>

namespace xgrad::dist {

namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
}  // namespace

template <class T>
struct DataParallel<T>::State {
  struct Bucket {
    std::vector<std::size_t> members;  // parameter indices
    std::vector<T> buffer;
    std::size_t pending = 0;  // members not yet final in this pass
    Work work;
  };

  ProcessGroup group;
  DataParallelOptions options;
  std::vector<std::pair<std::string, Tensor<T>>> params;
  std::vector<std::pair<std::string, Tensor<T>>> buffers;
  std::vector<std::size_t> hook_ids;
  std::vector<Bucket> buckets;
  std::vector<std::size_t> bucket_of;
  std::vector<std::size_t> offset_of;
  std::vector<bool> ready;
  std::size_t next_start = 0;
  bool sync = true;
  bool in_pass = false;
  // Held by the end-of-pass callback: expired while in_pass means the engine dropped it, i.e.
  // that pass failed.
  std::weak_ptr<int> pending_end;
  Clock::time_point first_start{};
  std::vector<std::string> unused;
  CommStats stats;

  State(ProcessGroup g, DataParallelOptions o) : group(std::move(g)), options(o) {}

  // A pass that failed left buckets in flight: let them finish (every process started the same
  // ones) and forget them.
  void recover() {
    for (auto& b : buckets) {
      try {
        b.work.wait();
      } catch (const DistributedError&) {  // the pass already failed; report nothing twice
      }
    }
    in_pass = false;
  }

  void begin_pass() {
    in_pass = true;
    std::fill(ready.begin(), ready.end(), false);
    for (auto& b : buckets) {
      b.pending = b.members.size();
    }
    next_start = 0;
    stats = {};
    auto token = std::make_shared<int>(0);
    pending_end = token;
    queue_callback([this, token] { end_pass(); });
  }

  void on_final(std::size_t i) {
    if (!sync) return;
    if (in_pass && pending_end.expired()) recover();
    if (!in_pass) begin_pass();
    if (ready[i]) return;
    ready[i] = true;
    const Tensor<T> g = params[i].second.grad();
    Bucket& b = buckets[bucket_of[i]];
    std::copy_n(g.value().data(), g.numel(), b.buffer.begin() + offset_of[i]);
    --b.pending;
    while (next_start < buckets.size() && buckets[next_start].pending == 0) start(next_start++);
    for (std::size_t k = 0; k < next_start; ++k) buckets[k].work.test();  // MPI makes progress
  }

  void start(std::size_t k) {
    Bucket& b = buckets[k];
    if (k + 1 == buckets.size()) {
      std::size_t missing = 0;
      for (const bool r : ready) missing += r ? 0 : 1;
      b.buffer.back() = static_cast<T>(missing);
    }
    if (stats.buckets == 0) first_start = Clock::now();
    b.work = group.all_reduce_async(std::span<T>(b.buffer));
    ++stats.buckets;
    stats.bytes += b.buffer.size() * sizeof(T);
  }

  // Rank 0's buffers to every process, in registration order (the same on every process).
  void broadcast_buffers() {
    const NoGradGuard no_grad;
    for (auto& [name, b] : buffers) group.broadcast(b, 0);
  }

  void end_pass() {
    in_pass = false;
    unused.clear();
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (ready[i]) continue;
      Bucket& b = buckets[bucket_of[i]];
      const auto at = b.buffer.begin() + static_cast<std::ptrdiff_t>(offset_of[i]);
      if (const auto& g = params[i].second.impl()->grad) {
        // No gradient in this pass, but one accumulated before (no_sync): that one counts.
        std::copy_n(g->storage->data.data(), params[i].second.numel(), at);
        ready[i] = true;
        continue;
      }
      unused.push_back(params[i].first);
      std::fill_n(at, params[i].second.numel(), T(0));
    }
    while (next_start < buckets.size()) start(next_start++);
    const auto wait_from = Clock::now();
    for (auto& b : buckets) b.work.wait();
    const auto done = Clock::now();
    stats.wait_seconds = seconds(done - wait_from);
    stats.comm_seconds = seconds(done - first_start);
    const auto missing_anywhere = static_cast<std::size_t>(buckets.back().buffer.back());
    if (missing_anywhere > 0 && !options.find_unused_parameters) {
      std::string names;
      for (const auto& n : unused) names += (names.empty() ? "" : ", ") + n;
      throw DistributedError(
          "xgrad::dist::DataParallel: " + std::to_string(missing_anywhere) +
          " parameter gradient(s) were missing in this backward pass over all processes (on " +
          group.describe() + ": " + (names.empty() ? std::string("none") : names) +
          "); a parameter that does not take part in the loss on every process needs "
          "find_unused_parameters = true");
    }
    const T n = static_cast<T>(group.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Bucket& b = buckets[bucket_of[i]];
      Tensor<T>& p = params[i].second;
      const auto from = b.buffer.begin() + static_cast<std::ptrdiff_t>(offset_of[i]);
      if (!p.impl()->grad) {  // unused here, used elsewhere: it gets the others' mean
        p.impl()->grad = Tensor<T>(Array<T>::from_shape(p.shape())).impl();
      }
      T* out = p.mutable_grad().data();
      std::transform(from, from + static_cast<std::ptrdiff_t>(p.numel()), out,
                     [n](T v) { return v / n; });
    }
    if (options.broadcast_buffers) broadcast_buffers();
  }
};

template <class T>
DataParallel<T>::DataParallel(nn::Module<T>& model, ProcessGroup group, DataParallelOptions options)
    : state_(std::make_unique<State>(std::move(group), options)) {
  State& s = *state_;
  for (auto& named : model.named_parameters()) {
    if (named.second.requires_grad()) s.params.push_back(std::move(named));  // frozen: left out
  }
  s.buffers = model.named_buffers();
  if (s.params.empty()) {
    throw ValueError("xgrad::dist::DataParallel: the model has no parameter that requires grad");
  }
  // Every process must hold the same model: the same parameters and buffers, names and sizes.
  std::vector<std::uint64_t> layout = {s.params.size()};
  for (const auto* named : {&s.params, &s.buffers}) {
    for (const auto& [name, p] : *named) {
      layout.push_back(p.numel());
      layout.push_back(std::hash<std::string>{}(name));
    }
  }
  const auto everyone = s.group.all_gather(
      std::span<const std::uint64_t>(std::vector<std::uint64_t>{layout.size(), layout[0]}));
  for (std::size_t r = 0; r < everyone.size(); r += 2) {
    if (everyone[r] != layout.size() || everyone[r + 1] != layout[0]) {
      throw DistributedError("xgrad::dist::DataParallel: rank " + std::to_string(r / 2) +
                             " has a model of " + std::to_string(everyone[r + 1]) +
                             " parameters, " + s.group.describe() + " one of " +
                             std::to_string(layout[0]));
    }
  }
  const auto all_layouts = s.group.all_gather(std::span<const std::uint64_t>(layout));
  for (std::size_t r = 0; r < all_layouts.size(); r += layout.size()) {
    if (!std::equal(layout.begin(), layout.end(), all_layouts.begin() + r)) {
      throw DistributedError(
          "xgrad::dist::DataParallel: rank " + std::to_string(r / layout.size()) +
          "'s parameters or buffers differ in name or size from those of " + s.group.describe());
    }
  }
  if (options.broadcast_parameters) {
    const NoGradGuard no_grad;
    for (auto& [name, p] : s.params) s.group.broadcast(p, 0);
  }
  if (options.broadcast_buffers) s.broadcast_buffers();
  // Buckets over the parameters in reverse order, closed at bucket_bytes.
  s.bucket_of.resize(s.params.size());
  s.offset_of.resize(s.params.size());
  s.ready.assign(s.params.size(), false);
  std::size_t bytes = 0;
  for (std::size_t j = s.params.size(); j-- > 0;) {
    if (s.buckets.empty() || bytes >= options.bucket_bytes) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    auto& b = s.buckets.back();
    s.bucket_of[j] = s.buckets.size() - 1;
    s.offset_of[j] = b.buffer.size();
    b.members.push_back(j);
    b.buffer.resize(b.buffer.size() + s.params[j].second.numel());
    bytes += s.params[j].second.numel() * sizeof(T);
  }
  s.buckets.back().buffer.push_back(T(0));  // the count of missing gradients
  State* raw = state_.get();
  try {
    for (std::size_t i = 0; i < s.params.size(); ++i) {
      s.hook_ids.push_back(s.params[i].second.register_post_accumulate_grad_hook(
          [raw, i](const Tensor<T>&) { raw->on_final(i); }));
    }
  } catch (...) {  // no hook may outlive the state it points to
    for (std::size_t i = 0; i < s.hook_ids.size(); ++i)
      s.params[i].second.remove_hook(s.hook_ids[i]);
    throw;
  }
}

template <class T>
DataParallel<T>::~DataParallel() {
  if (!state_) return;
  if (state_->in_pass) state_->recover();  // buckets in flight write into the state's buffers
  for (std::size_t i = 0; i < state_->params.size(); ++i) {
    state_->params[i].second.remove_hook(state_->hook_ids[i]);
  }
}

template <class T>
DataParallel<T>::NoSync::NoSync(DataParallel& owner)
    : owner_(owner), previous_(std::exchange(owner.state_->sync, false)) {}

template <class T>
DataParallel<T>::NoSync::~NoSync() {
  owner_.state_->sync = previous_;
}

template <class T>
const ProcessGroup& DataParallel<T>::group() const {
  return state_->group;
}

template <class T>
std::vector<std::vector<std::string>> DataParallel<T>::buckets() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& b : state_->buckets) {
    auto& names = out.emplace_back();
    for (const std::size_t i : b.members) names.push_back(state_->params[i].first);
  }
  return out;
}

template <class T>
std::vector<std::string> DataParallel<T>::unused_parameters() const {
  return state_->unused;
}

template <class T>
CommStats DataParallel<T>::last_stats() const {
  return state_->stats;
}

template class DataParallel<float>;
template class DataParallel<double>;

}  // namespace xgrad::dist
