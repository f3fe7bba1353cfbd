// The paths taken for speed: the Array allocator's free lists, matrix products on each side of the
// sizes where they change backend, and root gradients read in place.

#include <cfenv>
#include <cstdint>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using F = Tensor<float>;

bool pool_enabled() {
  // Under AddressSanitizer blocks go straight back to the system, so that it sees every
  // use after free.
  const void* first = nullptr;
  {
    Array<float> a(Shape{1000});
    first = a.data();
  }
  Array<float> b(Shape{1000});
  return b.data() == first;
}

TEST(Allocator, ReusesAFreedBlockOfTheSameClassAlignedToACacheLine) {
  release_cached_memory();
  const bool pooled = pool_enabled();
  Array<double> a(Shape{3, 5});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % 64, 0u);
  if (!pooled) GTEST_SKIP() << "the pool is off in this build (AddressSanitizer)";
  const void* p = a.data();
  a = Array<double>();  // frees the block into this thread's cache
  EXPECT_GE(cached_memory(), 15 * sizeof(double));
  Array<double> b(Shape{4, 4});  // 128 bytes: the same class as 120
  EXPECT_EQ(b.data(), p);
}

TEST(Allocator, TensorHandlesAndNodesReuseFreedBlocks) {
  release_cached_memory();
  if (!pool_enabled()) GTEST_SKIP() << "the pool is off in this build (AddressSanitizer)";
  const auto x = Tensor<double>::from({1.0, 2.0}).requires_grad_();
  { const auto y = (x * x).sum(); }  // handles, storages, nodes and edges freed
  const std::size_t cached = cached_memory();
  EXPECT_GT(cached, 0u);
  { const auto y = (x * x).sum(); }  // the same objects again: taken from the cache
  EXPECT_EQ(cached_memory(), cached);
  release_cached_memory();
  EXPECT_EQ(cached_memory(), 0u);
}

TEST(Allocator, ReleaseEmptiesTheCacheAndValuesSurvive) {
  {
    Array<float> big(Shape{1 << 20}, 1.f);
    EXPECT_EQ(big(12345), 1.f);
  }
  release_cached_memory();
  EXPECT_EQ(cached_memory(), 0u);
  Array<float> again(Shape{1 << 20}, 2.f);
  EXPECT_EQ(again(1 << 19), 2.f);
}

TEST(Allocator, CacheStaysBoundedUnderManySizes) {
  std::vector<Array<float>> arrays;
  for (std::size_t n = 1; n < (std::size_t(1) << 22); n *= 3) {
    for (int copies = 0; copies < 40; ++copies) arrays.emplace_back(Shape{n});
  }
  arrays.clear();
  // Arrays' blocks, plus the engine's small objects.
  EXPECT_LE(cached_memory(), (std::size_t(256) << 20) + (std::size_t(1) << 20));
  release_cached_memory();
}

// op(A) op(B) by the definition, in double.
Array<double> naive(const Array<double>& a, const Array<double>& b) {
  const std::size_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  Array<double> c(Shape{m, n}, 0.0);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t p = 0; p < k; ++p) c(i, j) += a(i, p) * b(p, j);
  return c;
}

TEST(Matmul, ProductsOnBothSidesOfTheBlasThresholdMatchTheDefinition) {
  // 7^3 multiply-adds and below run as a loop, above through BLAS (OpenBLAS or, for large
  // products on a CPU with AVX-512, BLIS); their gradients too.
  for (std::size_t s : {1u, 3u, 6u, 7u, 8u, 40u, 100u}) {
    const auto a = D::randn({s, s + 1}, 1).requires_grad_();
    const auto b = D::randn({s + 1, 3}, 2).requires_grad_();
    const auto c = matmul(a, b);
    EXPECT_TRUE(xt::allclose(c.value(), naive(a.value(), b.value()), 1e-12, 1e-12)) << s;
    c.sum().backward();
    const Array<double> ones(Shape{s, 3}, 1.0);
    EXPECT_TRUE(
        xt::allclose(a.grad().value(), naive(ones, xt::transpose(b.value())), 1e-12, 1e-12));
    EXPECT_TRUE(
        xt::allclose(b.grad().value(), naive(xt::transpose(a.value()), ones), 1e-12, 1e-12));
  }
}

TEST(Matmul, TinyProductIgnoresGarbageInTheOutputBuffer) {
  // The output buffer comes from the pool and may hold an earlier array's NaNs.
  { Array<float> junk(Shape{2, 2}, std::numeric_limits<float>::quiet_NaN()); }
  const auto c = matmul(F::from({{1.f, 2.f}, {3.f, 4.f}}), F::from({{1.f, 0.f}, {0.f, 1.f}}));
  EXPECT_EQ(c.value(), (Array<float>{{1.f, 2.f}, {3.f, 4.f}}));
}

}  // namespace
}  // namespace xgrad

namespace xgrad {
namespace {

// Every transpose combination, beta 0 over garbage and beta 1, at sizes that reach each backend.
TEST(Blas, GemmMatchesTheDefinitionForEveryLayout) {
  for (std::size_t s : {5u, 40u, 96u, 150u}) {
    const std::size_t m = s, n = s + 3, k = s + 1;
    const auto a = D::randn({m, k}, 1).value();
    const auto b = D::randn({k, n}, 2).value();
    const auto c0 = D::randn({m, n}, 3).value();
    const Array<double> at = xt::transpose(a), bt = xt::transpose(b);
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        for (double beta : {0.0, 1.0}) {
          Array<double> c = beta == 0.0 ? Array<double>(Shape{m, n}, std::nan("")) : c0;
          blas::gemm(ta, tb, m, n, k, 0.5, (ta ? at : a).data(), ta ? m : k, (tb ? bt : b).data(),
                     tb ? k : n, beta, c.data(), n);
          const Array<double> want = 0.5 * naive(a, b) + beta * c0;
          EXPECT_TRUE(xt::allclose(c, want, 1e-10, 1e-10))
              << "s " << s << " ta " << ta << " tb " << tb << " beta " << beta;
          Array<float> cf = beta == 0.0 ? Array<float>(Shape{m, n}, std::nanf(""))
                                        : Array<float>(xt::cast<float>(c0));
          const Array<float> af = xt::cast<float>(ta ? at : a), bf = xt::cast<float>(tb ? bt : b);
          blas::gemm(ta, tb, m, n, k, 0.5f, af.data(), ta ? m : k, bf.data(), tb ? k : n,
                     static_cast<float>(beta), cf.data(), n);
          EXPECT_TRUE(xt::allclose(xt::cast<double>(cf), want, 1e-4, 1e-4))
              << "float s " << s << " ta " << ta << " tb " << tb << " beta " << beta;
        }
      }
    }
  }
}

// At two threads a product is split by rows of C or by columns (src/core/blas.cpp): columns for
// a large op(B) (960 KB here), rows for a small one or when op(B) is no larger than C, columns
// again when rows would make a single piece (33 rows). Every layout, with leading dimensions
// past the operands' widths, against the definition; the padding of C must stay untouched.
TEST(Blas, SplitProductsMatchTheDefinitionForEveryLayout) {
  const int before = get_num_threads();
  set_num_threads(2);
  struct Case {
    std::size_t m, n, k;
  };
  constexpr std::size_t pad = 3;
  for (const Case cs :
       {Case{64, 300, 800}, Case{64, 128, 256}, Case{256, 96, 64}, Case{33, 128, 125}}) {
    const auto a = D::randn({cs.m, cs.k}, 4).value();
    const auto b = D::randn({cs.k, cs.n}, 5).value();
    const Array<double> at = xt::transpose(a), bt = xt::transpose(b);
    const Array<double> want = naive(a, b);
    // A row-major copy of x with `pad` unused columns after each row.
    const auto padded = [](const Array<double>& x) {
      const std::size_t rows = x.shape()[0], cols = x.shape()[1];
      Array<float> p(Shape{rows, cols + pad}, std::nanf(""));
      for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j) p(i, j) = static_cast<float>(x(i, j));
      return p;
    };
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const Array<float> pa = padded(ta ? at : a), pb = padded(tb ? bt : b);
        Array<float> c(Shape{cs.m, cs.n + pad}, std::nanf(""));
        blas::gemm(ta, tb, cs.m, cs.n, cs.k, 1.f, pa.data(), pa.shape()[1], pb.data(),
                   pb.shape()[1], 0.f, c.data(), cs.n + pad);
        const Array<double> got =
            xt::cast<double>(xt::view(c, xt::all(), xt::range(std::size_t{0}, cs.n)));
        EXPECT_TRUE(xt::allclose(got, want, 1e-4, 1e-3))
            << "m " << cs.m << " n " << cs.n << " k " << cs.k << " ta " << ta << " tb " << tb;
        EXPECT_TRUE(xt::all(xt::isnan(xt::view(c, xt::all(), xt::range(cs.n, cs.n + pad)))))
            << "wrote past C's columns: m " << cs.m << " ta " << ta << " tb " << tb;
      }
    }
  }
  set_num_threads(before);
}

}  // namespace
}  // namespace xgrad

namespace xgrad {
namespace {

// The engine reads a root's gradient in place; several roots on one node, or a root that is
// also an intermediate of another root, still add up.
TEST(Engine, RootGradientsAddUpWhereRootsShareNodes) {
  const auto x = D::from({1.0, 2.0}).requires_grad_();
  const auto y = x * 2.0;
  const auto z = y * 3.0;
  const Array<double> gy{1.0, 10.0}, gz{100.0, 1000.0};
  const auto same = grad<double>({y, y}, {x}, {D(gy), D(gz)}, {.retain_graph = true});
  EXPECT_EQ(same[0].value(), (Array<double>{202.0, 2020.0}));
  const auto chained = grad<double>({y, z}, {x}, {D(gy), D(gz)}, {.retain_graph = true});
  EXPECT_EQ(chained[0].value(), (Array<double>{602.0, 6020.0}));
  z.backward(gz);
  EXPECT_EQ(x.grad().value(), (Array<double>{600.0, 6000.0}));
  EXPECT_EQ(gz, (Array<double>{100.0, 1000.0}));  // the caller's gradient is left as it was
}

}  // namespace
}  // namespace xgrad

namespace xgrad {
namespace {

// The vectorised loops pad the last partial batch; the padding must not raise floating-point
// exceptions (0/0, log 0) that a caller checking fetestexcept would take for its own.
TEST(FlatLoops, PaddedTailsRaiseNoFloatingPointException) {
  for (std::size_t n : {1u, 5u, 13u}) {
    const auto a = F::rand({n}, 1) + 2.f;  // a / b > 1: every log and sqrt is of a positive
    const auto b = (F::rand({n}, 2) + 0.5f).requires_grad_();
    std::feclearexcept(FE_ALL_EXCEPT);
    const auto y = (a / b).log().sqrt().sum();
    y.backward();
    EXPECT_FALSE(std::fetestexcept(FE_DIVBYZERO | FE_INVALID)) << "n = " << n;
  }
}

}  // namespace
}  // namespace xgrad
