// The op-level profiler: a per-thread recorder that the ops, the engine, the product dispatcher
// and the array allocator report to while a Profile is alive. Times are steady_clock readings
// at region boundaries; a region's self time is its duration less that of the regions inside.

#include <xgrad/error.hpp>
#include <xgrad/profiler.hpp>

#include <cblas.h>

#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace xgrad::detail {
void set_blas_threads(int threads);  // blas.cpp
}  // namespace xgrad::detail

namespace xgrad::profiler {

namespace detail {

thread_local constinit Recorder* active = nullptr;

struct Recorder {
  using Clock = std::chrono::steady_clock;

  struct Stat {
    Event event;
    std::int64_t total_ns = 0;
    std::int64_t self_ns = 0;
    int open = 0;  // frames of this name open on the stack: total counts the outermost only
  };
  struct Frame {
    std::size_t stat;
    Clock::time_point start;
    std::int64_t child_ns;
  };
  struct Key {
    std::string name;
    bool backward;
  };
  struct KeyView {
    std::string_view name;
    bool backward;
  };
  // Lookup by the caller's string_view, so that a name is copied only when first seen.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(const KeyView& k) const noexcept {
      return std::hash<std::string_view>{}(k.name) ^ static_cast<std::size_t>(k.backward);
    }
    std::size_t operator()(const Key& k) const noexcept {
      return (*this)(KeyView{k.name, k.backward});
    }
  };
  struct Equal {
    using is_transparent = void;
    static KeyView view(const Key& k) { return {k.name, k.backward}; }
    static KeyView view(const KeyView& k) { return k; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return view(a).name == view(b).name && view(a).backward == view(b).backward;
    }
  };
  using ProductKey = std::tuple<bool, bool, bool, std::size_t, std::size_t, std::size_t>;

  std::thread::id owner = std::this_thread::get_id();
  // Set when the Profile is destroyed on another thread: the owner then drops its pointer to
  // this recorder (left allocated for it) at its next op instead of recording into it.
  std::atomic<bool> abandoned{false};
  Clock::time_point start = Clock::now();
  Clock::time_point end{};
  bool recording = true;
  std::vector<Stat> stats;
  std::unordered_map<Key, std::size_t, Hash, Equal> index;
  std::vector<Frame> stack;
  std::int64_t top_ns = 0;  // time inside outermost regions
  std::map<ProductKey, std::uint64_t> products;
  double outside_flops = 0;
  std::uint64_t outside_bytes = 0;

  std::size_t stat_of(std::string_view name, bool backward) {
    const auto it = index.find(KeyView{name, backward});
    if (it != index.end()) return it->second;
    Stat s;
    s.event.name = std::string(name);
    s.event.backward = backward;
    stats.push_back(std::move(s));
    index.emplace(Key{std::string(name), backward}, stats.size() - 1);
    return stats.size() - 1;
  }
};

// True when r was abandoned: the calling (owner) thread stops recording.
bool dropped(Recorder* r) noexcept {
  if (!r->abandoned.load(std::memory_order_acquire)) return false;
  active = nullptr;
  return true;
}

void enter(Recorder* r, std::string_view name, bool backward) {
  if (dropped(r)) return;
  const std::size_t s = r->stat_of(name, backward);
  ++r->stats[s].event.calls;
  ++r->stats[s].open;
  r->stack.push_back({s, Recorder::Clock::now(), 0});
}

void leave(Recorder* r) noexcept {
  if (r->stack.empty()) return;
  const Recorder::Frame f = r->stack.back();
  r->stack.pop_back();
  const std::int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Recorder::Clock::now() - f.start)
          .count();
  Recorder::Stat& s = r->stats[f.stat];
  s.self_ns += ns - f.child_ns;
  if (--s.open == 0) s.total_ns += ns;
  if (r->stack.empty()) {
    r->top_ns += ns;
  } else {
    r->stack.back().child_ns += ns;
  }
}

void product(bool is_double, bool trans_a, bool trans_b, std::size_t m, std::size_t n,
             std::size_t k) noexcept {
  Recorder* r = active;
  if (r == nullptr || m == 0 || n == 0 || k == 0 || dropped(r)) return;
  const double flops =
      2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (r->stack.empty()) {
    r->outside_flops += flops;
  } else {
    r->stats[r->stack.back().stat].event.flops += flops;
  }
  try {
    ++r->products[{is_double, trans_a, trans_b, m, n, k}];
  } catch (...) {  // out of memory: the shape goes uncounted, the product itself is not affected
  }
}

void allocation(std::size_t bytes) noexcept {
  Recorder* r = active;
  if (r == nullptr || dropped(r)) return;
  if (r->stack.empty()) {
    r->outside_bytes += bytes;
  } else {
    r->stats[r->stack.back().stat].event.allocated_bytes += bytes;
  }
}

}  // namespace detail

namespace {

double seconds(std::int64_t ns) {
  return static_cast<double>(ns) * 1e-9;
}

// One product through the BLAS alone, on operands laid out as blas::gemm would receive them.
template <class T>
double time_product(const ProductShape& p, std::size_t repeats) {
  const std::size_t lda = p.trans_a ? p.m : p.k;
  const std::size_t ldb = p.trans_b ? p.k : p.n;
  std::vector<T> a(p.m * p.k, T(0.5)), b(p.k * p.n, T(0.25)), c(p.m * p.n, T(0));
  const auto ta = p.trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = p.trans_b ? CblasTrans : CblasNoTrans;
  const auto run = [&] {
    const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.f, a.data(), static_cast<int>(lda), b.data(),
                  static_cast<int>(ldb), 0.f, c.data(), n);
    } else {
      cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a.data(), static_cast<int>(lda), b.data(),
                  static_cast<int>(ldb), 0.0, c.data(), n);
    }
  };
  run();  // warm-up: pages, caches, the BLAS's threads
  double best = 0;
  for (std::size_t i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i == 0 || s < best) best = s;
  }
  return best;
}

}  // namespace

Profile::Profile() {
  if (detail::active != nullptr && !detail::dropped(detail::active)) {
    throw Error("xgrad::profiler::Profile: a Profile is already recording this thread");
  }
  recorder_ = std::make_unique<detail::Recorder>();
  detail::active = recorder_.get();
}

Profile::~Profile() {
  if (!recorder_->recording) return;
  if (std::this_thread::get_id() == recorder_->owner) {
    detail::active = nullptr;
    return;
  }
  // Another thread may not touch the owner's pointer: the owner drops it itself.
  recorder_->abandoned.store(true, std::memory_order_release);
  (void)recorder_.release();  // NOLINT: left to the owner thread, which may still point at it
}

void Profile::stop() {
  detail::Recorder& r = *recorder_;
  if (!r.recording) return;
  if (std::this_thread::get_id() != r.owner) {
    throw Error("xgrad::profiler::Profile::stop: called on another thread than the one recorded");
  }
  r.end = detail::Recorder::Clock::now();
  r.recording = false;
  detail::active = nullptr;
}

bool Profile::recording() const {
  return recorder_->recording;
}

double Profile::wall_time() const {
  const auto end = recorder_->recording ? detail::Recorder::Clock::now() : recorder_->end;
  return std::chrono::duration<double>(end - recorder_->start).count();
}

double Profile::outside_time() const {
  return std::max(0.0, wall_time() - seconds(recorder_->top_ns));
}

std::vector<Event> Profile::key_averages() const {
  std::vector<Event> out;
  out.reserve(recorder_->stats.size());
  for (const auto& s : recorder_->stats) {
    Event e = s.event;
    e.total_time = seconds(s.total_ns);
    e.self_time = seconds(s.self_ns);
    out.push_back(std::move(e));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Event& a, const Event& b) { return a.self_time > b.self_time; });
  return out;
}

std::vector<ProductShape> Profile::products() const {
  std::vector<ProductShape> out;
  for (const auto& [key, calls] : recorder_->products) {
    const auto& [is_double, ta, tb, m, n, k] = key;
    out.push_back({is_double, ta, tb, m, n, k, calls});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ProductShape& a, const ProductShape& b) { return a.calls > b.calls; });
  return out;
}

double Profile::total_flops() const {
  double flops = recorder_->outside_flops;
  for (const auto& s : recorder_->stats) flops += s.event.flops;
  return flops;
}

double Profile::gemm_floor(std::size_t repeats) const {
  if (recorder_->recording) {
    throw Error("xgrad::profiler::Profile::gemm_floor: still recording; call stop() first");
  }
  if (repeats == 0) throw ValueError("xgrad::profiler::Profile::gemm_floor: repeats must be >= 1");
  // The BLAS's own threading at xgrad's thread count, for the time of the measurement (xgrad
  // keeps the BLAS on one thread and splits products itself).
  struct BlasThreads {
    BlasThreads() { xgrad::detail::set_blas_threads(xgrad::detail::pool_threads()); }
    ~BlasThreads() { xgrad::detail::set_blas_threads(1); }
  } blas;
  double total = 0;
  for (const auto& p : products()) {
    const double t =
        p.is_double ? time_product<double>(p, repeats) : time_product<float>(p, repeats);
    total += t * static_cast<double>(p.calls);
  }
  return total;
}

std::string Profile::table(std::size_t row_limit) const {
  const auto events = key_averages();
  const double wall = wall_time();
  std::size_t width = 24;
  for (const auto& e : events) width = std::max(width, e.label().size());
  std::string out;
  char line[512];
  const auto add = [&](const char* name, const char* rest) {
    std::snprintf(line, sizeof line, "%-*s %s\n", static_cast<int>(width), name, rest);
    out += line;
  };
  add("name", "    calls    self ms  self %   total ms  mean us    GFLOP  GFLOP/s  alloc MiB");
  const std::size_t n = row_limit == 0 ? events.size() : std::min(row_limit, events.size());
  char rest[256];
  for (std::size_t i = 0; i < n; ++i) {
    const Event& e = events[i];
    const double gflops = e.flops * 1e-9;
    const double rate = e.self_time > 0 ? gflops / e.self_time : 0;
    std::snprintf(rest, sizeof rest, "%9llu %10.3f %6.1f%% %10.3f %8.2f %8.3f %8.1f %10.2f",
                  static_cast<unsigned long long>(e.calls), e.self_time * 1e3,
                  wall > 0 ? 100 * e.self_time / wall : 0.0, e.total_time * 1e3,
                  e.calls ? e.total_time / static_cast<double>(e.calls) * 1e6 : 0.0, gflops, rate,
                  static_cast<double>(e.allocated_bytes) / (1 << 20));
    add(e.label().c_str(), rest);
  }
  if (n < events.size()) {
    std::snprintf(rest, sizeof rest, "(%zu more rows)", events.size() - n);
    add("...", rest);
  }
  const double outside = outside_time();
  std::snprintf(rest, sizeof rest, "%9s %10.3f %6.1f%%", "", outside * 1e3,
                wall > 0 ? 100 * outside / wall : 0.0);
  add("outside any op", rest);
  std::snprintf(rest, sizeof rest, "%9s %10.3f %6.1f%%  products: %.3f GFLOP", "", wall * 1e3,
                100.0, total_flops() * 1e-9);
  add("wall time", rest);
  return out;
}

}  // namespace xgrad::profiler
