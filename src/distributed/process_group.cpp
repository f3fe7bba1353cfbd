// The process group over MPI. Every MPI call goes through check(), which turns an error code into
// a DistributedError naming the collective and the rank: the group's communicator returns errors
// instead of aborting (MPI_ERRORS_RETURN). Collectives that could disagree across processes about
// sizes first agree on them (one small all_reduce), so that a mismatch raises the same error on
// every process instead of leaving some of them waiting forever.

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>

#include <xgrad/distributed/process_group.hpp>

namespace xgrad::dist {

namespace {

template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>) {
    return MPI_FLOAT;
  } else if constexpr (std::is_same_v<T, double>) {
    return MPI_DOUBLE;
  } else if constexpr (std::is_same_v<T, int>) {
    return MPI_INT;
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return MPI_INT64_T;
  } else {
    static_assert(std::is_same_v<T, std::uint64_t>, "no MPI type for this element type");
    return MPI_UINT64_T;
  }
}

std::string mpi_message(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(length));
}

// MPI counts are ints: longer buffers go in pieces of this many elements.
constexpr std::size_t kMaxCount = INT_MAX / 2;

std::once_flag finalize_registered;

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

}  // namespace

struct ProcessGroup::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (comm != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm);
  }

  std::string where() const {
    return "rank " + std::to_string(rank) + " of " + std::to_string(size);
  }

  void check(int code, const char* what) const {
    if (code != MPI_SUCCESS) {
      throw DistributedError(std::string("xgrad::dist::") + what + ": " + mpi_message(code) + " (" +
                             where() + ")");
    }
  }

  // The smallest and largest `n` over the group.
  std::pair<std::int64_t, std::int64_t> range(std::int64_t n, const char* what) const {
    std::int64_t values[2] = {n, -n};
    check(MPI_Allreduce(MPI_IN_PLACE, values, 2, MPI_INT64_T, MPI_MAX, comm), what);
    return {-values[1], values[0]};
  }

  // Raises the same error on every process when they do not all pass the same count.
  void agree_on_count(std::size_t n, const char* what) const {
    const auto [lo, hi] = range(static_cast<std::int64_t>(n), what);
    if (lo != hi) {
      throw DistributedError(std::string("xgrad::dist::") + what +
                             ": the processes passed different element counts (from " +
                             std::to_string(lo) + " to " + std::to_string(hi) + "; " + where() +
                             " passed " + std::to_string(n) + ")");
    }
  }
};

struct Work::State {
  std::shared_ptr<ProcessGroup::Impl> group;
  std::vector<MPI_Request> requests;
  bool done = false;

  // A collective still in flight writes into its buffer: wait rather than leave it dangling.
  void settle() noexcept {
    if (!done && !mpi_finalized()) {
      MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
    }
  }
};

Work::Work() = default;
Work::Work(Work&&) noexcept = default;
Work& Work::operator=(Work&& other) noexcept {
  if (this != &other) {
    if (state_) state_->settle();
    state_ = std::move(other.state_);
  }
  return *this;
}
Work::~Work() {
  if (state_) state_->settle();
}

bool Work::test() {
  if (!state_ || state_->done) return true;
  int flag = 0;
  state_->group->check(MPI_Testall(static_cast<int>(state_->requests.size()),
                                   state_->requests.data(), &flag, MPI_STATUSES_IGNORE),
                       "all_reduce_async");
  state_->done = flag != 0;
  return state_->done;
}

void Work::wait() {
  if (!state_ || state_->done) return;
  state_->group->check(MPI_Waitall(static_cast<int>(state_->requests.size()),
                                   state_->requests.data(), MPI_STATUSES_IGNORE),
                       "all_reduce_async");
  state_->done = true;
}

ProcessGroup::ProcessGroup(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

int ProcessGroup::rank() const {
  return impl_->rank;
}
int ProcessGroup::size() const {
  return impl_->size;
}
std::string ProcessGroup::describe() const {
  return impl_->where();
}

template <class T>
void ProcessGroup::all_reduce(std::span<T> data, ReduceOp op) const {
  impl_->agree_on_count(data.size(), "all_reduce");
  for (std::size_t at = 0; at < data.size(); at += kMaxCount) {
    const auto n = static_cast<int>(std::min(kMaxCount, data.size() - at));
    impl_->check(
        MPI_Allreduce(MPI_IN_PLACE, data.data() + at, n, mpi_type<T>(), MPI_SUM, impl_->comm),
        "all_reduce");
  }
  if (op == ReduceOp::mean) {
    const T n = static_cast<T>(impl_->size);
    for (auto& v : data) v /= n;
  }
}

template <class T>
void ProcessGroup::all_reduce(Tensor<T>& tensor, ReduceOp op) const {
  all_reduce(std::span<T>(tensor.mutable_value().data(), tensor.numel()), op);
}

template <class T>
Work ProcessGroup::all_reduce_async(std::span<T> data) const {
  // No agreement step: it would block. DataParallel's buckets have equal sizes by construction.
  Work work;
  work.state_ = std::make_unique<Work::State>();
  work.state_->group = impl_;
  std::size_t at = 0;
  do {  // an empty buffer is one empty collective, as the other processes expect one
    const auto n = static_cast<int>(std::min(kMaxCount, data.size() - at));
    MPI_Request request = MPI_REQUEST_NULL;
    impl_->check(MPI_Iallreduce(MPI_IN_PLACE, data.data() + at, n, mpi_type<T>(), MPI_SUM,
                                impl_->comm, &request),
                 "all_reduce_async");
    work.state_->requests.push_back(request);
    at += kMaxCount;
  } while (at < data.size());
  return work;
}

template <class T>
void ProcessGroup::broadcast(std::span<T> data, int root) const {
  if (root < 0 || root >= impl_->size) {
    throw ValueError("xgrad::dist::broadcast: root " + std::to_string(root) +
                     " is not a rank of a group of " + std::to_string(impl_->size));
  }
  impl_->agree_on_count(data.size(), "broadcast");
  for (std::size_t at = 0; at < data.size(); at += kMaxCount) {
    const auto n = static_cast<int>(std::min(kMaxCount, data.size() - at));
    impl_->check(MPI_Bcast(data.data() + at, n, mpi_type<T>(), root, impl_->comm), "broadcast");
  }
}

template <class T>
void ProcessGroup::broadcast(Tensor<T>& tensor, int root) const {
  broadcast(std::span<T>(tensor.mutable_value().data(), tensor.numel()), root);
}

template <class T>
std::vector<T> ProcessGroup::all_gather(std::span<const T> data) const {
  impl_->agree_on_count(data.size(), "all_gather");
  if (data.size() > kMaxCount) {
    throw ValueError("xgrad::dist::all_gather: " + std::to_string(data.size()) +
                     " elements per process is more than one call can gather");
  }
  std::vector<T> out(data.size() * static_cast<std::size_t>(impl_->size));
  const auto n = static_cast<int>(data.size());
  impl_->check(
      MPI_Allgather(data.data(), n, mpi_type<T>(), out.data(), n, mpi_type<T>(), impl_->comm),
      "all_gather");
  return out;
}

void ProcessGroup::barrier() const {
  impl_->check(MPI_Barrier(impl_->comm), "barrier");
}

ProcessGroup init(int& argc, char**& argv) {
  static std::mutex mutex;
  const std::lock_guard lock(mutex);
  if (mpi_finalized()) {
    throw DistributedError("xgrad::dist::init: MPI was already finalised in this process");
  }
  int started = 0;
  MPI_Initialized(&started);
  if (!started) {
    int provided = 0;
    const int code = MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    if (code != MPI_SUCCESS) {
      throw DistributedError("xgrad::dist::init: MPI_Init_thread failed: " + mpi_message(code));
    }
    // Started here, finished here: at exit, after main() returns.
    std::call_once(finalize_registered, [] {
      std::atexit([] {
        if (!mpi_finalized()) MPI_Finalize();
      });
    });
  }
  int level = 0;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_SERIALIZED) {
    throw DistributedError(
        "xgrad::dist::init: MPI runs at a thread level below MPI_THREAD_SERIALIZED (" +
        std::to_string(level) + "), which backward passes on other threads need");
  }
  auto impl = std::make_shared<ProcessGroup::Impl>();
  const auto fail = [](int code, const char* what) {
    if (code != MPI_SUCCESS) {
      throw DistributedError(std::string("xgrad::dist::init: ") + what + ": " + mpi_message(code));
    }
  };
  fail(MPI_Comm_dup(MPI_COMM_WORLD, &impl->comm), "MPI_Comm_dup");
  fail(MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  fail(MPI_Comm_rank(impl->comm, &impl->rank), "MPI_Comm_rank");
  fail(MPI_Comm_size(impl->comm, &impl->size), "MPI_Comm_size");
  return ProcessGroup(std::move(impl));
}

ProcessGroup init() {
  int argc = 0;
  char** argv = nullptr;
  return init(argc, argv);
}

#define XGRAD_INSTANTIATE_COLLECTIVES(T)                                   \
  template void ProcessGroup::all_reduce<T>(std::span<T>, ReduceOp) const; \
  template Work ProcessGroup::all_reduce_async<T>(std::span<T>) const;     \
  template void ProcessGroup::broadcast<T>(std::span<T>, int) const;       \
  template std::vector<T> ProcessGroup::all_gather<T>(std::span<const T>) const;
XGRAD_INSTANTIATE_COLLECTIVES(float)
XGRAD_INSTANTIATE_COLLECTIVES(double)
XGRAD_INSTANTIATE_COLLECTIVES(int)
XGRAD_INSTANTIATE_COLLECTIVES(std::int64_t)
XGRAD_INSTANTIATE_COLLECTIVES(std::uint64_t)
template void ProcessGroup::all_reduce<float>(Tensor<float>&, ReduceOp) const;
template void ProcessGroup::all_reduce<double>(Tensor<double>&, ReduceOp) const;
template void ProcessGroup::broadcast<float>(Tensor<float>&, int) const;
template void ProcessGroup::broadcast<double>(Tensor<double>&, int) const;

}  // namespace xgrad::dist
