#pragma once
/// @file
/// The element container of every Array: owned and pool-allocated, or a window on elements that
/// something else owns (a tensor sharing another's storage, as reshape does).

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <type_traits>
#include <utility>

#include <xgrad/memory.hpp>

namespace xgrad::detail {

/// A contiguous run of T for xtensor's containers, with uvector's interface and value semantics:
/// a copy is always a new buffer, so copying an Array never aliases. share() makes a second
/// buffer over the same elements (a view); from then on the elements belong to both, through a
/// shared owner, and live until the last of them lets go: a buffer that is resized, or assigned
/// one of another size, takes new elements and leaves the old ones to the others. While the
/// elements are shared, an assignment of the same size (copy or move) writes through to them.
template <class T, class A = PoolAllocator<T>>
class Buffer {
 public:
  /// xtensor's container requirements.
  using allocator_type = A;
  using value_type = T;                                                  ///< element
  using reference = T&;                                                  ///< element reference
  using const_reference = const T&;                                      ///< read-only reference
  using pointer = T*;                                                    ///< element pointer
  using const_pointer = const T*;                                        ///< read-only pointer
  using size_type = std::size_t;                                         ///< element count
  using difference_type = std::ptrdiff_t;                                ///< pointer difference
  using iterator = T*;                                                   ///< contiguous iterator
  using const_iterator = const T*;                                       ///< read-only iterator
  using reverse_iterator = std::reverse_iterator<iterator>;              ///< reverse iterator
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;  ///< read-only reverse

  Buffer() noexcept = default;
  /// An empty buffer (the allocator has no state).
  explicit Buffer(const allocator_type&) noexcept {}
  /// `count` elements, left uninitialised for trivial T as uvector does.
  explicit Buffer(size_type count, const allocator_type& = allocator_type())
      : data_(allocate(count)), size_(count) {}
  /// `count` copies of `value`.
  Buffer(size_type count, const_reference value, const allocator_type& alloc = allocator_type())
      : Buffer(count, alloc) {
    std::fill_n(data_, count, value);
  }
  /// A copy of [first, last).
  template <class It,
            class = std::enable_if_t<std::is_convertible_v<
                typename std::iterator_traits<It>::iterator_category, std::input_iterator_tag>>>
  Buffer(It first, It last, const allocator_type& alloc = allocator_type())
      : Buffer(static_cast<size_type>(std::distance(first, last)), alloc) {
    std::copy(first, last, data_);
  }
  /// A copy of a braced list.
  Buffer(std::initializer_list<T> init, const allocator_type& alloc = allocator_type())
      : Buffer(init.begin(), init.end(), alloc) {}

  /// A buffer over source's elements: writes through either are seen by both, and the elements
  /// live while either holds them. Not thread-safe against other calls on `source`.
  static Buffer share(Buffer& source) {
    if (!source.anchor_) {
      // The elements pass from source alone to a shared owner that frees them at the end.
      source.anchor_ = std::shared_ptr<T>(source.data_, Free{source.size_});
    }
    Buffer b;
    b.data_ = source.data_;
    b.size_ = source.size_;
    b.anchor_ = source.anchor_;
    return b;
  }

  /// A new owned buffer holding the same elements.
  Buffer(const Buffer& rhs) : Buffer(rhs.begin(), rhs.end()) {}
  /// The same, with an allocator.
  Buffer(const Buffer& rhs, const allocator_type&) : Buffer(rhs) {}
  /// Takes rhs's elements (shared or not); rhs is left empty.
  Buffer(Buffer&& rhs) noexcept
      : data_(std::exchange(rhs.data_, nullptr)),
        size_(std::exchange(rhs.size_, 0)),
        anchor_(std::move(rhs.anchor_)) {}
  /// The same, with an allocator.
  Buffer(Buffer&& rhs, const allocator_type&) noexcept : Buffer(std::move(rhs)) {}

  /// Copies rhs's elements, in place when the sizes agree (through to shared elements), else
  /// into a new owned buffer.
  Buffer& operator=(const Buffer& rhs) {
    if (this == &rhs) return *this;
    if (size_ == rhs.size_) {
      if (data_ != rhs.data_) std::copy(rhs.begin(), rhs.end(), data_);
    } else {
      Buffer copy(rhs);
      swap(copy);
    }
    return *this;
  }
  /// Takes rhs's elements, as uvector does, except that shared elements of the same size are
  /// copied into: assignment into a view's (or its base's) value writes through, however spelt.
  Buffer& operator=(Buffer&& rhs) noexcept(std::is_nothrow_copy_assignable_v<T>) {
    if (shared() && size_ == rhs.size_) {
      if (data_ != rhs.data_) std::copy(rhs.begin(), rhs.end(), data_);
    } else {
      swap(rhs);
    }
    return *this;
  }

  ~Buffer() { release(); }

  /// The allocator (stateless).
  allocator_type get_allocator() const noexcept { return allocator_type(); }
  /// True while another buffer shares these elements (share()).
  bool shared() const noexcept { return anchor_ && anchor_.use_count() > 1; }

  /// True for no elements.
  bool empty() const noexcept { return size_ == 0; }
  /// The element count.
  size_type size() const noexcept { return size_; }
  /// Largest possible count.
  size_type max_size() const noexcept { return static_cast<size_type>(-1) / sizeof(T); }
  /// Same size: nothing changes. Another size: a new owned buffer, contents not kept (as
  /// uvector's resize).
  void resize(size_type count) {
    if (count == size_) return;
    Buffer fresh(count);
    swap(fresh);
  }
  /// No spare capacity is kept.
  void reserve(size_type) {}
  /// Equal to size().
  size_type capacity() const noexcept { return size_; }
  /// Nothing to shrink.
  void shrink_to_fit() {}
  /// Drops the elements.
  void clear() {
    Buffer none;
    swap(none);
  }

  reference operator[](size_type i) { return data_[i]; }              ///< element i
  const_reference operator[](size_type i) const { return data_[i]; }  ///< element i
  reference front() { return data_[0]; }                              ///< first element
  const_reference front() const { return data_[0]; }                  ///< first element
  reference back() { return data_[size_ - 1]; }                       ///< last element
  const_reference back() const { return data_[size_ - 1]; }           ///< last element
  pointer data() noexcept { return data_; }                           ///< the elements
  const_pointer data() const noexcept { return data_; }               ///< the elements

  iterator begin() noexcept { return data_; }                             ///< first element
  iterator end() noexcept { return data_ + size_; }                       ///< past the last
  const_iterator begin() const noexcept { return data_; }                 ///< first element
  const_iterator end() const noexcept { return data_ + size_; }           ///< past the last
  const_iterator cbegin() const noexcept { return data_; }                ///< first element
  const_iterator cend() const noexcept { return data_ + size_; }          ///< past the last
  reverse_iterator rbegin() noexcept { return reverse_iterator(end()); }  ///< last element
  reverse_iterator rend() noexcept { return reverse_iterator(begin()); }  ///< before the first
  /// Last element.
  const_reverse_iterator rbegin() const noexcept { return const_reverse_iterator(end()); }
  /// Before the first.
  const_reverse_iterator rend() const noexcept { return const_reverse_iterator(begin()); }
  /// Last element.
  const_reverse_iterator crbegin() const noexcept { return rbegin(); }
  /// Before the first.
  const_reverse_iterator crend() const noexcept { return rend(); }

  /// Exchanges contents (with their owners).
  void swap(Buffer& rhs) noexcept {
    std::swap(data_, rhs.data_);
    std::swap(size_, rhs.size_);
    anchor_.swap(rhs.anchor_);
  }
  /// Exchanges contents.
  friend void swap(Buffer& a, Buffer& b) noexcept { a.swap(b); }

 private:
  static T* allocate(size_type count) {
    if (count == 0) return nullptr;
    A alloc;
    T* p = std::allocator_traits<A>::allocate(alloc, count);
    if constexpr (!std::is_trivially_default_constructible_v<T>) {
      std::uninitialized_default_construct_n(p, count);
    }
    return p;
  }

  // Gives back `count` elements from allocate(count).
  struct Free {
    size_type count;
    void operator()(T* p) const noexcept {
      if (p == nullptr) return;
      if constexpr (!std::is_trivially_destructible_v<T>) std::destroy_n(p, count);
      A alloc;
      std::allocator_traits<A>::deallocate(alloc, p, count);
    }
  };

  void release() noexcept {
    if (anchor_) return;  // the shared owner frees them with the last holder
    Free{size_}(data_);
  }

  T* data_ = nullptr;
  size_type size_ = 0;
  std::shared_ptr<T> anchor_;  // the shared owner, once share() was called on these elements
};

}  // namespace xgrad::detail
