// blas::gemm against a naive triple loop in double, over every transpose combination. The sizes
// straddle the skinny-product kernels' limits (a narrow side of at most 16, tiles of 8 rows and
// 16 lanes), so both those kernels and BLAS are checked, tails included.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <xgrad/xt.hpp>

namespace {

using std::size_t;

struct Case {
  bool ta, tb;
  size_t m, n, k;
};

// A row-major matrix of `rows` x `cols` stored with row stride cols + pad; the padding holds NaN
// so that a read of it shows in the result, and must come back untouched.
template <class T>
struct Matrix {
  size_t rows, cols, ld;
  std::vector<T> data;
  Matrix(size_t r, size_t c, size_t pad, std::mt19937& rng)
      : rows(r), cols(c), ld(c + pad), data(r * (c + pad), std::numeric_limits<T>::quiet_NaN()) {
    std::uniform_real_distribution<double> u(-1, 1);
    for (size_t i = 0; i < rows; ++i) {
      for (size_t j = 0; j < cols; ++j) data[i * ld + j] = static_cast<T>(u(rng));
    }
  }
  T at(size_t i, size_t j) const { return data[i * ld + j]; }
  void fill(T v) {
    for (size_t i = 0; i < rows; ++i) {
      for (size_t j = 0; j < cols; ++j) data[i * ld + j] = v;
    }
  }
};

template <class T>
void check(const Case& cs, double alpha, double beta, bool nan_c, std::mt19937& rng) {
  const size_t pad = 3;
  // Stored shapes: A is [K,M] when transposed, B is [N,K].
  Matrix<T> a(cs.ta ? cs.k : cs.m, cs.ta ? cs.m : cs.k, pad, rng);
  Matrix<T> b(cs.tb ? cs.n : cs.k, cs.tb ? cs.k : cs.n, pad + 2, rng);
  Matrix<T> c(cs.m, cs.n, pad + 1, rng);
  if (nan_c) c.fill(std::numeric_limits<T>::quiet_NaN());
  const Matrix<T> c0 = c;

  xgrad::blas::gemm(cs.ta, cs.tb, cs.m, cs.n, cs.k, static_cast<T>(alpha), a.data.data(), a.ld,
                    b.data.data(), b.ld, static_cast<T>(beta), c.data.data(), c.ld);

  const double eps = std::numeric_limits<T>::epsilon();
  for (size_t i = 0; i < cs.m; ++i) {
    for (size_t j = 0; j < cs.n; ++j) {
      double sum = 0;
      double mag = 0;  // what rounding scales with
      for (size_t p = 0; p < cs.k; ++p) {
        const double x = cs.ta ? a.at(p, i) : a.at(i, p);
        const double y = cs.tb ? b.at(j, p) : b.at(p, j);
        sum += x * y;
        mag += std::abs(x * y);
      }
      double want = alpha * sum;
      mag = std::abs(alpha) * mag;
      if (beta != 0) {
        want += beta * static_cast<double>(c0.at(i, j));
        mag += std::abs(beta * static_cast<double>(c0.at(i, j)));
      }
      const double got = c.at(i, j);
      ASSERT_NEAR(got, want, 2 * static_cast<double>(cs.k + 2) * eps * mag + 1e-30)
          << "ta=" << cs.ta << " tb=" << cs.tb << " m=" << cs.m << " n=" << cs.n << " k=" << cs.k
          << " alpha=" << alpha << " beta=" << beta << " at (" << i << "," << j << ")";
    }
    for (size_t j = cs.n; j < c.ld; ++j) {
      ASSERT_TRUE(std::isnan(c.data[i * c.ld + j])) << "padding of C written at row " << i;
    }
  }
}

template <class T>
void sweep(const std::vector<size_t>& mn, const std::vector<size_t>& ks) {
  std::mt19937 rng(7);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (size_t m : mn) {
        for (size_t n : mn) {
          for (size_t k : ks) {
            const Case cs{ta, tb, m, n, k};
            check<T>(cs, 1.0, 0.0, true, rng);
            check<T>(cs, -1.5, 0.0, true, rng);
            check<T>(cs, 0.75, 1.0, false, rng);
            check<T>(cs, 2.0, -0.5, false, rng);
          }
        }
      }
    }
  }
}

TEST(Gemm, FloatMatchesNaiveProduct) {
  // 2, 5 and 6 give tiles of those many narrow rows; 12, 15 and 16 an 8-row tile and a tail.
  sweep<float>({1, 2, 3, 5, 6, 8, 12, 15, 16, 17, 209}, {1, 3, 8, 15, 16, 17, 209});
}

TEST(Gemm, DoubleMatchesNaiveProduct) {
  sweep<double>({1, 3, 8, 17, 209}, {1, 8, 17, 209});
}

// The image classifier's shapes, K and the long side far beyond one tile, K past one block.
TEST(Gemm, FloatMatchesNaiveProductOnLongOperands) {
  std::mt19937 rng(11);
  const std::vector<Case> cases = {
      {false, true, 209, 8, 4096},
      {true, false, 8, 4096, 209},
      {false, false, 209, 4096, 8},
      {false, true, 1024, 10, 1024},
      {true, false, 10, 1000, 1024},
      {false, false, 5, 1100, 300},
      {true, true, 700, 13, 333},
      {true, true, 6, 700, 333},
      {false, false, 700, 16, 333},
      {false, false, 40, 6, 1030},
      {true, true, 5, 40, 2100},
      {false, true, 16, 16, 70000},  // a packed operand too large to keep between calls
  };
  for (const Case& cs : cases) {
    check<float>(cs, 1.0, 0.0, true, rng);
    check<float>(cs, 0.5, 1.0, false, rng);
  }
}

}  // namespace
