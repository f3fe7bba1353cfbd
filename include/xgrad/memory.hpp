#pragma once
/// @file
/// The allocator of every Array, and control over the memory it keeps for reuse.

#include <cstddef>
#include <new>

namespace xgrad {

namespace detail {
/// A block of at least `bytes` bytes, aligned to XGRAD_POOL_ALIGNMENT; throws std::bad_alloc.
void* pool_allocate(std::size_t bytes);
/// Returns a block from pool_allocate(bytes) with the same `bytes`.
void pool_deallocate(void* p, std::size_t bytes) noexcept;

/// The allocator of every Array. A training step frees and reallocates the same buffers (values,
/// gradients, saved activations) step after step; large ones would go back to the system and
/// page-fault afresh each time. This keeps freed blocks in per-thread free lists by size class,
/// so the next step reuses them warm (bounded; see release_cached_memory).
template <class T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <class U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}  // NOLINT: allocator rebinding
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(pool_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { pool_deallocate(p, n * sizeof(T)); }
  template <class U>
  struct rebind {
    using other = PoolAllocator<U>;
  };
  friend bool operator==(const PoolAllocator&, const PoolAllocator&) { return true; }
  friend bool operator!=(const PoolAllocator&, const PoolAllocator&) { return false; }
};

/// A block of at least `bytes` bytes for a small object, aligned for any scalar type.
void* small_allocate(std::size_t bytes);
/// Returns a block from small_allocate(bytes) with the same `bytes`.
void small_deallocate(void* p, std::size_t bytes) noexcept;

/// The allocator of the engine's small objects: tensor handles, their storages, graph nodes and
/// their edges. Every op makes a few of them and every backward pass frees them again, more of
/// one size at a time than malloc's per-thread cache holds; per-thread free lists by size
/// (bounded) hand the same blocks back op after op.
template <class T>
struct SmallAllocator {
  using value_type = T;
  SmallAllocator() noexcept = default;
  template <class U>
  SmallAllocator(const SmallAllocator<U>&) noexcept {}  // NOLINT: allocator rebinding
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(small_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { small_deallocate(p, n * sizeof(T)); }
  template <class U>
  struct rebind {
    using other = SmallAllocator<U>;
  };
  friend bool operator==(const SmallAllocator&, const SmallAllocator&) { return true; }
  friend bool operator!=(const SmallAllocator&, const SmallAllocator&) { return false; }
};
}  // namespace detail

/// Frees the blocks this thread keeps for reuse (the memory of arrays already destroyed).
void release_cached_memory();
/// Bytes this thread keeps in freed blocks for reuse.
std::size_t cached_memory();

}  // namespace xgrad
