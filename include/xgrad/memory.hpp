#pragma once
/// @file
/// The allocator of every Array, and control over the memory it keeps for reuse.

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace xgrad {

namespace detail {
/// A block of at least `bytes` bytes, aligned to XGRAD_POOL_ALIGNMENT; throws std::bad_alloc.
void* pool_allocate(std::size_t bytes);
/// Returns a block from pool_allocate(bytes) with the same `bytes`.
void pool_deallocate(void* p, std::size_t bytes) noexcept;

/// A block of at least `bytes` bytes for a small object, aligned for any scalar type.
void* small_allocate(std::size_t bytes);
/// Returns a block from small_allocate(bytes) with the same `bytes`.
void small_deallocate(void* p, std::size_t bytes) noexcept;

/// A standard allocator over a pair of block functions (Allocate(bytes), Deallocate(p, bytes)).
template <class T, void* (*Allocate)(std::size_t), void (*Deallocate)(void*, std::size_t) noexcept>
struct BlockAllocator {
  /// The allocated type.
  using value_type = T;
  BlockAllocator() noexcept = default;
  /// Rebinding copy: the allocator has no state.
  template <class U>
  BlockAllocator(const BlockAllocator<U, Allocate, Deallocate>&) noexcept {}  // NOLINT
  /// Room for n values of T; throws std::bad_alloc.
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(Allocate(n * sizeof(T)));
  }
  /// Gives back what allocate(n) returned.
  void deallocate(T* p, std::size_t n) noexcept { Deallocate(p, n * sizeof(T)); }
  /// The same allocator for another type.
  template <class U>
  struct rebind {
    /// The rebound allocator.
    using other = BlockAllocator<U, Allocate, Deallocate>;
  };
  /// Any two allocate from the same lists.
  friend bool operator==(const BlockAllocator&, const BlockAllocator&) { return true; }
  /// Never unequal.
  friend bool operator!=(const BlockAllocator&, const BlockAllocator&) { return false; }
};

/// The allocator of every Array. A training step frees and reallocates the same buffers (values,
/// gradients, saved activations) step after step; large ones would go back to the system and
/// page-fault afresh each time. This keeps freed blocks in per-thread free lists by size class,
/// so the next step reuses them warm (bounded; see release_cached_memory).
template <class T>
using PoolAllocator = BlockAllocator<T, pool_allocate, pool_deallocate>;

/// The allocator of the engine's small objects: tensor handles, their storages, graph nodes and
/// their edges. Every op makes a few of them and every backward pass frees them again, more of
/// one size at a time than malloc's per-thread cache holds; per-thread free lists by size
/// (bounded) hand the same blocks back op after op.
template <class T>
using SmallAllocator = BlockAllocator<T, small_allocate, small_deallocate>;

/// A shared object of the engine (a tensor handle, storage or node) made from small blocks.
template <class X, class... Args>
std::shared_ptr<X> make_small(Args&&... args) {
  return std::allocate_shared<X>(SmallAllocator<X>(), std::forward<Args>(args)...);
}
}  // namespace detail

/// Frees the blocks this thread keeps for reuse (the memory of arrays already destroyed).
void release_cached_memory();
/// Bytes this thread keeps in freed blocks for reuse.
std::size_t cached_memory();

}  // namespace xgrad
