// The Array allocator's free lists: power-of-two size classes, one set per thread, bounded.

#include <array>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include <xgrad/config.hpp>
#include <xgrad/memory.hpp>
#include <xgrad/profiler.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define XGRAD_POOL_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XGRAD_POOL_ENABLED 0
#endif
#endif
#ifndef XGRAD_POOL_ENABLED
#define XGRAD_POOL_ENABLED 1
#endif

namespace xgrad {

namespace {

constexpr std::size_t kAlign = XGRAD_POOL_ALIGNMENT;  // a cache line; what AVX-512 loads like
constexpr std::size_t kMinShift = 6;
// Blocks above 256 MiB (whole datasets) are rare and go straight to the system.
constexpr std::size_t kMaxShift = 28;
constexpr std::size_t kClasses = kMaxShift - kMinShift + 1;
// What one thread may keep: enough for the buffers of a training step, not a second copy of
// a large model's memory.
constexpr std::size_t kMaxBlocksPerClass = 32;
constexpr std::size_t kMaxCachedBytes = std::size_t(256) << 20;

void* system_allocate(std::size_t bytes) {
  void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  if (!p) throw std::bad_alloc();
  return p;
}

// Size class of a request: the smallest power of two >= bytes (and >= 64), or kClasses when
// the block is too large to keep.
std::size_t size_class(std::size_t bytes) {
  if (bytes <= (std::size_t(1) << kMinShift)) return 0;
  const std::size_t shift = static_cast<std::size_t>(std::bit_width(bytes - 1));
  return shift > kMaxShift ? kClasses : shift - kMinShift;
}

struct Cache {
  std::array<std::vector<void*>, kClasses> free;
  std::size_t bytes = 0;
  void clear() {
    for (auto& blocks : free) {
      for (void* p : blocks) std::free(p);
      blocks.clear();
    }
    bytes = 0;
  }
  ~Cache();
};

// Trivially destructible, so it stays readable after `cache` is destroyed at thread exit (or,
// on the main thread, before static arrays are): from then on blocks go back to the system.
thread_local bool cache_gone = false;
thread_local Cache cache;

Cache::~Cache() {
  clear();
  cache_gone = true;
}

}  // namespace

namespace detail {

void* pool_allocate(std::size_t bytes) {
  if (profiler::detail::active != nullptr) [[unlikely]]
    profiler::detail::allocation(bytes);
  // Without the pool (AddressSanitizer) a block is exactly what was asked for, so that the
  // sanitizer sees a write one past an array's end.
  if (!XGRAD_POOL_ENABLED) return ::operator new (bytes, std::align_val_t{kAlign});
  const std::size_t c = size_class(bytes);
  if (c == kClasses) return system_allocate(bytes);
  const std::size_t block = std::size_t(1) << (c + kMinShift);
  if (!cache_gone) {
    auto& blocks = cache.free[c];
    if (!blocks.empty()) {
      void* p = blocks.back();
      blocks.pop_back();
      cache.bytes -= block;
      return p;
    }
  }
  return system_allocate(block);
}

void pool_deallocate(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (!XGRAD_POOL_ENABLED) {
    ::operator delete (p, std::align_val_t{kAlign});
    return;
  }
  const std::size_t c = size_class(bytes);
  if (c < kClasses && !cache_gone) {
    const std::size_t block = std::size_t(1) << (c + kMinShift);
    auto& blocks = cache.free[c];
    if (blocks.size() < kMaxBlocksPerClass && cache.bytes + block <= kMaxCachedBytes) {
      try {
        blocks.push_back(p);
        cache.bytes += block;
        return;
      } catch (...) {  // no room to remember it: give it back instead
      }
    }
  }
  std::free(p);
}

}  // namespace detail

namespace {

// Small objects: classes of 16 bytes up to 512; a thread keeps at most 2,048 blocks of a class
// and 1 MiB in all, room for the graphs of a few thousand ops. The lists are intrusive (a free
// block holds the next one) and the thread's lists are plain data, so that taking and giving
// back a block is a few instructions and no thread_local guard.
constexpr std::size_t kSmallStep = 16;
constexpr std::size_t kSmallClasses = 32;
constexpr std::size_t kMaxSmallBlocksPerClass = 2048;
constexpr std::size_t kMaxSmallCachedBytes = std::size_t(1) << 20;

struct SmallLists {
  void* head[kSmallClasses];
  std::uint32_t count[kSmallClasses];
  std::size_t bytes;
  bool reaper_registered;
  bool gone;
};
thread_local SmallLists small = {};

void small_clear() {
  for (std::size_t c = 0; c < kSmallClasses; ++c) {
    while (small.head[c] != nullptr) {
      void* p = small.head[c];
      small.head[c] = *static_cast<void**>(p);
      ::operator delete(p);
    }
    small.count[c] = 0;
  }
  small.bytes = 0;
}

// Frees the thread's blocks when it exits; made on the first block kept.
struct SmallReaper {
  ~SmallReaper() {
    small_clear();
    small.gone = true;
  }
};

}  // namespace

namespace detail {

void* small_allocate(std::size_t bytes) {
  const std::size_t c = bytes == 0 ? 0 : (bytes - 1) / kSmallStep;
  if (!XGRAD_POOL_ENABLED || c >= kSmallClasses) return ::operator new(bytes);
  if (void* p = small.head[c]) {
    small.head[c] = *static_cast<void**>(p);
    --small.count[c];
    small.bytes -= (c + 1) * kSmallStep;
    return p;
  }
  return ::operator new((c + 1) * kSmallStep);
}

void small_deallocate(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  const std::size_t c = bytes == 0 ? 0 : (bytes - 1) / kSmallStep;
  const std::size_t block = (c + 1) * kSmallStep;
  if (!XGRAD_POOL_ENABLED || c >= kSmallClasses || small.gone ||
      small.count[c] >= kMaxSmallBlocksPerClass || small.bytes + block > kMaxSmallCachedBytes) {
    ::operator delete(p);
    return;
  }
  if (!small.reaper_registered) {
    small.reaper_registered = true;
    thread_local SmallReaper reaper;
    (void)reaper;
  }
  *static_cast<void**>(p) = small.head[c];
  small.head[c] = p;
  ++small.count[c];
  small.bytes += block;
}

}  // namespace detail

void release_cached_memory() {
  if (!cache_gone) cache.clear();
  small_clear();
}

std::size_t cached_memory() {
  return (cache_gone ? 0 : cache.bytes) + small.bytes;
}

}  // namespace xgrad
