// Float results and gradients against the same computation in double, with a float tolerance, on
// shapes that reach every path of the product dispatcher (src/core/blas.cpp): the tiny loop (up
// to 7^3 multiply-adds), the skinny kernels (a side of at most 16, long side and K of at least 16,
// 8192 multiply-adds; AVX-512 CPUs only) on both sides of each limit, and BLAS; transposed
// operands (linear's weight, every backward); one and two threads. Double precision never takes
// the skinny kernels, so a wrong kernel shows as a float result far from the double one. Run again
// with XGRAD_GEMM=portable by the Gemm.Portable test.

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace xgrad {
namespace {

template <class T>
using Fn = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

struct Case {
  std::string name;
  std::vector<Shape> shapes;
  std::size_t k;  // the longest reduction of any product in the case, forward or backward
  Fn<double> f64;
  Fn<float> f32;
};

template <class F>
Case make(std::string name, std::vector<Shape> shapes, std::size_t k, F f) {
  return {std::move(name), std::move(shapes), k,
          [f](const std::vector<Tensor<double>>& in) { return f(in); },
          [f](const std::vector<Tensor<float>>& in) { return f(in); }};
}

std::vector<Case> cases() {
  const auto mm = [](const auto& in) { return matmul(in[0], in[1]); };
  const auto lin = [](const auto& in) { return linear(in[0], in[1], in[2]); };
  return {
      make("loop_2x3x4", {{2, 3}, {3, 4}}, 4, mm),
      make("loop_limit_7x7x7", {{7, 7}, {7, 7}}, 7, mm),
      make("blas_above_loop_8x8x8", {{8, 8}, {8, 8}}, 8, mm),
      // Narrow N: forward skinny; dB = A^T dC skinny with a transposed A; dA = dC B^T has K 8.
      make("skinny_n_64x32x8", {{64, 32}, {32, 8}}, 64, mm),
      // Narrow M: forward skinny; dA = dC B^T skinny with a transposed B; dB has K 4.
      make("skinny_m_4x256x64", {{4, 256}, {256, 64}}, 256, mm),
      // At the multiply-add limit (8192: skinny) and just below it (7936: BLAS).
      make("skinny_limit_16x16x32", {{16, 16}, {16, 32}}, 32, mm),
      make("below_skinny_limit_16x16x31", {{16, 16}, {16, 31}}, 31, mm),
      // Narrow side 16 (skinny) and 17 (BLAS); K 15 (BLAS) and 16 (skinny).
      make("narrow_16", {{100, 40}, {40, 16}}, 100, mm),
      make("narrow_17", {{100, 40}, {40, 17}}, 100, mm),
      make("k_15", {{100, 15}, {15, 8}}, 100, mm),
      make("k_16", {{100, 16}, {16, 8}}, 100, mm),
      // linear: x W^T (transposed B) to 8 units, and its weight gradient dY^T X (transposed A).
      make("linear_skinny_209x64_to_8", {{209, 64}, {8, 64}, {8}}, 209, lin),
      make("linear_blas_96x80_to_72", {{96, 80}, {72, 80}, {72}}, 96, lin),
      // Batched operands folded into one product, then one product per batch.
      make("batched_3x20x24_by_24x9", {{3, 20, 24}, {24, 9}}, 60, mm),
      make("batched_2x5x40_by_2x40x6", {{2, 5, 40}, {2, 40, 6}}, 40, mm),
      make("blas_150x130x140", {{150, 130}, {130, 140}}, 150, mm),
      // A chain: tanh between two products, the second skinny.
      make("chain", {{48, 32}, {32, 40}, {40, 4}}, 48,
           [](const auto& in) { return matmul(tanh(matmul(in[0], in[1])), in[2]); }),
  };
}

// |float - double| within the rounding of k float multiply-adds on values of this magnitude.
void expect_close(const Array<float>& got, const Array<double>& want, std::size_t k,
                  const std::string& what) {
  ASSERT_EQ(got.shape().size(), want.shape().size()) << what;
  ASSERT_TRUE(std::equal(got.shape().begin(), got.shape().end(), want.shape().begin())) << what;
  double scale = 1;
  for (double v : want) scale = std::max(scale, std::abs(v));
  const double tol = 4.0 * static_cast<double>(k) * std::numeric_limits<float>::epsilon() * scale;
  std::size_t i = 0;
  auto g = got.begin();
  for (auto w = want.begin(); w != want.end(); ++w, ++g, ++i) {
    ASSERT_NEAR(static_cast<double>(*g), *w, tol) << what << " at flat index " << i;
  }
}

TEST(FloatConsistency, ProductsMatchDoubleOnEveryDispatchPath) {
  const int threads_before = get_num_threads();
  for (const Case& c : cases()) {
    std::vector<Tensor<double>> in64;
    std::vector<Tensor<float>> in32;
    std::uint64_t seed = 1;
    for (const Shape& s : c.shapes) {
      const Array<double> v = test::uniform(s, seed++).value();
      in64.emplace_back(v, true);
      in32.emplace_back(Array<float>(xt::cast<float>(v)), true);
    }
    for (int threads : {1, 2}) {
      SCOPED_TRACE(c.name + ", " + std::to_string(threads) + " thread(s)");
      set_num_threads(threads);
      for (auto& t : in64) t.zero_grad();
      for (auto& t : in32) t.zero_grad();
      const Tensor<double> out64 = c.f64(in64);
      const Tensor<float> out32 = c.f32(in32);
      // A seed that weights every output differently, so that each gradient product is exercised.
      const Array<double> seed64 = test::uniform(out64.shape(), 99).value();
      out64.backward(seed64);
      out32.backward(Array<float>(xt::cast<float>(seed64)));
      expect_close(out32.value(), out64.value(), c.k, "value");
      for (std::size_t i = 0; i < in64.size(); ++i) {
        expect_close(in32[i].grad().value(), in64[i].grad().value(), c.k,
                     "grad of input " + std::to_string(i));
      }
    }
  }
  set_num_threads(threads_before);
}

}  // namespace
}  // namespace xgrad
