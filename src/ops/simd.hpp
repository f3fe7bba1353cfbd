#pragma once
// Flat vectorised loops for the elementwise ops and sum. Every value and gradient is a dense
// row-major Array, so when the operands have the same shape an op is a walk over contiguous
// buffers; going through xtensor's expression machinery there costs up to several times the
// memory traffic (its reducers especially). Operands of differing shapes keep the broadcasting
// xtensor path.

#include <algorithm>
#include <cstddef>

#include <xgrad/error.hpp>
#include <xgrad/xt.hpp>
#include <xsimd/xsimd.hpp>

#include "core/parallel.hpp"

namespace xgrad::ops::simd {

template <class T>
using Batch = xsimd::batch<T>;

template <class A, class B>
bool same_shape(const A& a, const B& b) {
  const auto& sa = a.shape();
  const auto& sb = b.shape();
  return std::equal(sa.begin(), sa.end(), sb.begin(), sb.end());
}

// y[i] = f(x[i]) with f written on batches. The tail goes through the same f on a padded batch,
// so the last elements see exactly the arithmetic of the others (NaN and inf included). The
// padding is 1, not 0: no formula here divides by it or takes its log, so the lanes that are
// thrown away raise no floating-point exception (0/0, log 0) that a caller's fetestexcept or
// trap would see.
template <class T, std::size_t L>
void fill_padding(T (&buffer)[L]) {
  std::fill(buffer, buffer + L, T(1));
}

template <class T, class F>
void map_range(const T* x, T* y, std::size_t n, F f) {
  constexpr std::size_t L = Batch<T>::size;
  std::size_t i = 0;
  for (; i + L <= n; i += L) f(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
  if (i < n) {
    T xb[L];
    T yb[L];
    fill_padding(xb);
    std::copy(x + i, x + n, xb);
    f(Batch<T>::load_unaligned(xb)).store_unaligned(yb);
    std::copy(yb, yb + (n - i), y + i);
  }
}

// y[i] = f(x[i], z[i]).
template <class T, class F>
void map_range(const T* x, const T* z, T* y, std::size_t n, F f) {
  constexpr std::size_t L = Batch<T>::size;
  std::size_t i = 0;
  for (; i + L <= n; i += L) {
    f(Batch<T>::load_unaligned(x + i), Batch<T>::load_unaligned(z + i)).store_unaligned(y + i);
  }
  if (i < n) {
    T xb[L];
    T zb[L];
    T yb[L];
    fill_padding(xb);
    fill_padding(zb);
    std::copy(x + i, x + n, xb);
    std::copy(z + i, z + n, zb);
    f(Batch<T>::load_unaligned(xb), Batch<T>::load_unaligned(zb)).store_unaligned(yb);
    std::copy(yb, yb + (n - i), y + i);
  }
}

// y[i] = f(x[i], z[i], w[i]).
template <class T, class F>
void map_range(const T* x, const T* z, const T* w, T* y, std::size_t n, F f) {
  constexpr std::size_t L = Batch<T>::size;
  std::size_t i = 0;
  for (; i + L <= n; i += L) {
    f(Batch<T>::load_unaligned(x + i), Batch<T>::load_unaligned(z + i),
      Batch<T>::load_unaligned(w + i))
        .store_unaligned(y + i);
  }
  if (i < n) {
    T xb[L];
    T zb[L];
    T wb[L];
    T yb[L];
    fill_padding(xb);
    fill_padding(zb);
    fill_padding(wb);
    std::copy(x + i, x + n, xb);
    std::copy(z + i, z + n, zb);
    std::copy(w + i, w + n, wb);
    f(Batch<T>::load_unaligned(xb), Batch<T>::load_unaligned(zb), Batch<T>::load_unaligned(wb))
        .store_unaligned(yb);
    std::copy(yb, yb + (n - i), y + i);
  }
}

// The loops above over xgrad's threads, in pieces of at least 32k elements whose lengths are
// multiples of 64 (of every batch width), so that only the last piece has a tail and every
// element sees the arithmetic of the serial loop. A piece of a cheap formula that size takes a
// few microseconds: less is eaten by waking a thread and by moving the result between the cores'
// caches for the op that reads it next. y may be x (an in-place derivative).
constexpr std::size_t kGrain = std::size_t{1} << 15;
constexpr std::size_t kAlign = 64;

template <class T, class F>
void map(const T* x, T* y, std::size_t n, F f) {
  xgrad::detail::parallel_for(n, kGrain, kAlign, [=](std::size_t lo, std::size_t hi) {
    map_range(x + lo, y + lo, hi - lo, f);
  });
}

template <class T, class F>
void map(const T* x, const T* z, T* y, std::size_t n, F f) {
  xgrad::detail::parallel_for(n, kGrain, kAlign, [=](std::size_t lo, std::size_t hi) {
    map_range(x + lo, z + lo, y + lo, hi - lo, f);
  });
}

template <class T, class F>
void map(const T* x, const T* z, const T* w, T* y, std::size_t n, F f) {
  xgrad::detail::parallel_for(n, kGrain, kAlign, [=](std::size_t lo, std::size_t hi) {
    map_range(x + lo, z + lo, w + lo, y + lo, hi - lo, f);
  });
}

/// f applied to every element of x, in a new array of x's shape.
template <class T, class F>
Array<T> map(const Array<T>& x, F f) {
  Array<T> y = Array<T>::from_shape(x.shape());
  map(x.data(), y.data(), x.size(), f);
  return y;
}

/// Raises a ShapeError unless x and z have the same number of elements. The backward of a
/// unary op pairs its gradient with its input or output, which the engine guarantees to have
/// the output's shape; this keeps a broken guarantee from reading past an array.
template <class T>
void check_sizes(const Array<T>& x, const Array<T>& z) {
  if (x.size() != z.size()) {
    throw ShapeError("xgrad::ops: an elementwise loop over arrays of shapes " +
                     shape_str(Shape(x.shape().begin(), x.shape().end())) + " and " +
                     shape_str(Shape(z.shape().begin(), z.shape().end())));
  }
}

/// f applied to the elements of x and z pairwise; x and z have the same shape.
template <class T, class F>
Array<T> map(const Array<T>& x, const Array<T>& z, F f) {
  check_sizes(x, z);
  Array<T> y = Array<T>::from_shape(x.shape());
  map(x.data(), z.data(), y.data(), x.size(), f);
  return y;
}

/// f applied to the elements of x, z and w together; all three have the same shape.
template <class T, class F>
Array<T> map(const Array<T>& x, const Array<T>& z, const Array<T>& w, F f) {
  check_sizes(x, z);
  check_sizes(x, w);
  Array<T> y = Array<T>::from_shape(x.shape());
  map(x.data(), z.data(), w.data(), y.data(), x.size(), f);
  return y;
}

/// Sum of n elements. Four independent accumulators hide the latency of the vector add (a
/// single one serialises every addition behind the previous); they also shorten the chains of
/// rounding.
template <class T>
T sum(const T* x, std::size_t n) {
  constexpr std::size_t L = Batch<T>::size;
  Batch<T> a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
  std::size_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    a0 += Batch<T>::load_unaligned(x + i);
    a1 += Batch<T>::load_unaligned(x + i + L);
    a2 += Batch<T>::load_unaligned(x + i + 2 * L);
    a3 += Batch<T>::load_unaligned(x + i + 3 * L);
  }
  for (; i + L <= n; i += L) a0 += Batch<T>::load_unaligned(x + i);
  T total = xsimd::hadd((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) total += x[i];
  return total;
}

/// Sum of (x[i] - c)^2, and of dy[i] (x[i] - c) with dy: the second moments of batch
/// normalisation and of its derivative, in lanes as sum() above.
template <class T>
T sum_sq_dev(const T* x, std::size_t n, T c) {
  constexpr std::size_t L = Batch<T>::size;
  const Batch<T> cb(c);
  Batch<T> a0(T(0)), a1(T(0));
  std::size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    const Batch<T> d0 = Batch<T>::load_unaligned(x + i) - cb;
    const Batch<T> d1 = Batch<T>::load_unaligned(x + i + L) - cb;
    a0 = xsimd::fma(d0, d0, a0);
    a1 = xsimd::fma(d1, d1, a1);
  }
  for (; i + L <= n; i += L) {
    const Batch<T> d = Batch<T>::load_unaligned(x + i) - cb;
    a0 = xsimd::fma(d, d, a0);
  }
  T total = xsimd::hadd(a0 + a1);
  for (; i < n; ++i) total += (x[i] - c) * (x[i] - c);
  return total;
}
/// Sum of a[i] b[i].
template <class T>
T dot(const T* a, const T* b, std::size_t n) {
  constexpr std::size_t L = Batch<T>::size;
  Batch<T> a0(T(0)), a1(T(0));
  std::size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    a0 = xsimd::fma(Batch<T>::load_unaligned(a + i), Batch<T>::load_unaligned(b + i), a0);
    a1 = xsimd::fma(Batch<T>::load_unaligned(a + i + L), Batch<T>::load_unaligned(b + i + L), a1);
  }
  for (; i + L <= n; i += L) {
    a0 = xsimd::fma(Batch<T>::load_unaligned(a + i), Batch<T>::load_unaligned(b + i), a0);
  }
  T total = xsimd::hadd(a0 + a1);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}
template <class T>
T sum_prod_dev(const T* dy, const T* x, std::size_t n, T c) {
  constexpr std::size_t L = Batch<T>::size;
  const Batch<T> cb(c);
  Batch<T> a0(T(0)), a1(T(0));
  std::size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    a0 = xsimd::fma(Batch<T>::load_unaligned(dy + i), Batch<T>::load_unaligned(x + i) - cb, a0);
    a1 = xsimd::fma(Batch<T>::load_unaligned(dy + i + L), Batch<T>::load_unaligned(x + i + L) - cb,
                    a1);
  }
  T total = xsimd::hadd(a0 + a1);
  for (; i < n; ++i) total += dy[i] * (x[i] - c);
  return total;
}

/// exp(x) for x <= 0 without overflow, then the logistic function in its stable form:
/// 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below. NaN falls through to the second branch
/// and stays NaN.
template <class T>
Batch<T> sigmoid(const Batch<T>& x) {
  const Batch<T> e = xsimd::exp(-xsimd::abs(x));
  const Batch<T> r = Batch<T>(T(1)) / (Batch<T>(T(1)) + e);
  return xsimd::select(x >= Batch<T>(T(0)), r, e * r);
}

/// xsimd's erf and erfc square their argument and return NaN once the square overflows (|x|
/// beyond 1e154 in double, 1e19 in float). Both are constant long before 30 (erf is +-1, erfc 0
/// or 2 there, in either precision), so a larger argument is brought back to +-30. NaN stays NaN.
template <class T>
Batch<T> erf_argument(const Batch<T>& x) {
  const Batch<T> limit(T(30));
  return xsimd::select(xsimd::abs(x) > limit, xsimd::copysign(limit, x), x);
}

/// erf(x) for any x.
template <class T>
Batch<T> erf(const Batch<T>& x) {
  return xsimd::erf(erf_argument(x));
}

/// erfc(x) = 1 - erf(x) for any x, accurate where erf is close to 1.
template <class T>
Batch<T> erfc(const Batch<T>& x) {
  return xsimd::erfc(erf_argument(x));
}

/// grad * local, except an exact 0 where grad is exactly 0 (see masked() in elementwise.cpp).
template <class T>
Batch<T> masked(const Batch<T>& grad, const Batch<T>& product) {
  return xsimd::select(grad == Batch<T>(T(0)), Batch<T>(T(0)), product);
}

}  // namespace xgrad::ops::simd
