// Values of the convolution, pooling, normalisation, embedding and batched-matmul ops against
// direct loops written from their definitions (the gradcheck table proves their derivatives).

#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include <xgrad/profiler.hpp>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using F = Tensor<float>;
using test::uniform;

// out[n, o, y, x] = b[o] + sum_{c, i, j} in[n, g c, y s - p + i d, x s - p + j d] w[o, c, i, j]
// for the group g of o, straight from the definition.
Array<double> naive_conv(const Array<double>& in, const Array<double>& w, const Array<double>* b,
                         Size2 s, Size2 p, Size2 d, std::size_t groups) {
  const std::size_t n = in.shape()[0], c = in.shape()[1], h = in.shape()[2], wd = in.shape()[3];
  const std::size_t o = w.shape()[0], cg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3];
  const auto oh =
      static_cast<std::size_t>((std::int64_t(h) + 2 * p.h - d.h * (kh - 1) - 1) / s.h + 1);
  const auto ow =
      static_cast<std::size_t>((std::int64_t(wd) + 2 * p.w - d.w * (kw - 1) - 1) / s.w + 1);
  Array<double> out = Array<double>::from_shape({n, o, oh, ow});
  const std::size_t og = o / groups;
  for (std::size_t a = 0; a < n; ++a)
    for (std::size_t q = 0; q < o; ++q)
      for (std::size_t y = 0; y < oh; ++y)
        for (std::size_t x = 0; x < ow; ++x) {
          double acc = b ? (*b)(q) : 0.0;
          for (std::size_t ch = 0; ch < cg; ++ch)
            for (std::size_t i = 0; i < kh; ++i)
              for (std::size_t j = 0; j < kw; ++j) {
                const std::int64_t iy = std::int64_t(y) * s.h - p.h + std::int64_t(i) * d.h;
                const std::int64_t ix = std::int64_t(x) * s.w - p.w + std::int64_t(j) * d.w;
                if (iy < 0 || ix < 0 || iy >= std::int64_t(h) || ix >= std::int64_t(wd)) continue;
                acc += in(a, (q / og) * cg + ch, iy, ix) * w(q, ch, i, j);
              }
          out(a, q, y, x) = acc;
        }
  (void)c;
  return out;
}

TEST(Conv2d, MatchesTheDefinition) {
  struct Case {
    Shape x, w;
    Size2 s, p, d;
    std::int64_t groups;
    bool bias;
  };
  const Case cases[] = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, 1, 0, 1, 1, true},
      {{1, 2, 8, 9}, {3, 2, 3, 2}, {2, 3}, {1, 2}, {2, 1}, 1, true},
      {{2, 4, 5, 5}, {6, 2, 3, 3}, 1, 1, 1, 2, false},
      {{1, 3, 6, 6}, {3, 1, 5, 5}, 2, 2, 1, 3, true},
      {{3, 1, 4, 4}, {2, 1, 1, 1}, 1, 0, 1, 1, true},
      // Stride 1 and as wide as the input: the shifted-plane path of unfold.
      {{2, 3, 6, 7}, {4, 3, 3, 5}, 1, {1, 2}, 1, 1, true},
      {{1, 2, 5, 6}, {3, 2, 3, 3}, 1, 2, 2, 1, true},
      {{1, 1, 3, 3}, {2, 1, 5, 5}, 1, 2, 1, 1, false},
      {{1, 1, 2, 4}, {1, 1, 3, 7}, 1, {1, 3}, 1, 1, true},
      // Images smaller than the padding: runs of taps that begin past the window positions.
      {{1, 1, 1, 4}, {2, 1, 3, 3}, 1, 1, 1, 1, true},
      {{2, 3, 1, 1}, {2, 3, 3, 3}, 1, 1, 1, 1, true},
      {{1, 2, 2, 3}, {2, 2, 5, 5}, 1, 2, 1, 1, false},
      {{1, 1, 3, 1}, {1, 1, 1, 5}, 1, {0, 2}, 1, 1, false},
  };
  std::uint64_t seed = 1;
  for (const auto& c : cases) {
    const D x = uniform(c.x, seed++);
    const D w = uniform(c.w, seed++);
    const D b = uniform({c.w[0]}, seed++);
    const D y = conv2d(x, w, c.bias ? b : D(), c.s, c.p, c.d, c.groups);
    const Array<double> want = naive_conv(x.value(), w.value(), c.bias ? &b.value() : nullptr, c.s,
                                          c.p, c.d, static_cast<std::size_t>(c.groups));
    ASSERT_EQ(y.shape(), Shape(want.shape().begin(), want.shape().end()));
    EXPECT_TRUE(xt::allclose(y.value(), want, 1e-12, 1e-12)) << shape_str(c.x);
  }
}

TEST(Conv2d, FloatAgreesWithDoubleAndTakesUnbatchedImages) {
  const D x = uniform({3, 9, 8}, 7);
  const D w = uniform({5, 3, 3, 3}, 8);
  const D y = conv2d(x, w, D(), 1, 1);
  EXPECT_EQ(y.shape(), (Shape{5, 9, 8}));
  const F yf = conv2d(F(Array<float>(xt::cast<float>(x.value()))),
                      F(Array<float>(xt::cast<float>(w.value()))), F(), 1, 1);
  EXPECT_TRUE(xt::allclose(xt::cast<double>(yf.value()), y.value(), 1e-5, 1e-5));
}

// Without a weight gradient to come, conv2d unfolds into one chunk of scratch per thread instead
// of keeping the whole batch's columns, and computes the same values.
TEST(Conv2d, WithoutAWeightGradientKeepsNoColumns) {
  const D x = uniform({64, 3, 16, 16}, 11);
  D w = uniform({8, 3, 3, 3}, 12);
  const D b = uniform({8}, 13);
  const std::size_t whole_columns = 3 * 3 * 3 * 64 * 16 * 16 * sizeof(double);
  const auto conv_bytes = [&](bool grad_mode) -> std::pair<D, std::uint64_t> {
    std::optional<NoGradGuard> off;
    if (!grad_mode) off.emplace();
    profiler::Profile prof;
    const D y = conv2d(x, w, b, 1, 1);
    prof.stop();
    for (const auto& e : prof.key_averages()) {
      if (e.name == "conv2d" && !e.backward) return {y, e.allocated_bytes};
    }
    ADD_FAILURE() << "no conv2d in the profile";
    return {y, 0};
  };
  w.requires_grad_(true);
  const auto [kept, kept_bytes] = conv_bytes(true);
  EXPECT_GE(kept_bytes, whole_columns);
  const auto [plain, plain_bytes] = conv_bytes(false);
  EXPECT_LT(plain_bytes, whole_columns);
  EXPECT_TRUE(xt::all(xt::equal(plain.value(), kept.value())));

  // A frozen weight: the input's gradient needs no columns either.
  D xg = x.detach();
  xg.requires_grad_(true);
  D wf = w.detach();
  sum(conv2d(xg, wf, b, 1, 1)).backward();
  D xr = x.detach();
  xr.requires_grad_(true);
  sum(conv2d(xr, w, b, 1, 1)).backward();
  EXPECT_TRUE(xt::all(xt::equal(xg.grad().value(), xr.grad().value())));
}

TEST(Unfold, FoldOfUnfoldCountsEachPixelsWindows) {
  // fold(unfold(x)) multiplies every pixel by the number of windows that cover it.
  const D x = D::ones({1, 1, 4, 4});
  const D back = fold(unfold(x, 3, 1, 1), {4, 4}, 3, 1, 1);
  const Array<double> want = {{{{4, 6, 6, 4}, {6, 9, 9, 6}, {6, 9, 9, 6}, {4, 6, 6, 4}}}};
  EXPECT_TRUE(xt::allclose(back.value(), want));
  EXPECT_EQ(unfold(D::ones({2, 3, 5, 6}), {2, 3}).shape(), (Shape{2, 18, 16}));
  // Padding larger than the image's one row.
  const D row = D::ones({1, 1, 1, 4});
  EXPECT_TRUE(xt::allclose(fold(unfold(row, 3, 1, 1), {1, 4}, 3, 1, 1).value(),
                           Array<double>{{{{2, 3, 3, 2}}}}));
}

TEST(Pooling, MaxAndAverageMatchTheDefinition) {
  const D x = D::from({{{{1.0, 5.0, 2.0, 0.0}, {3.0, -1.0, 4.0, 8.0}, {0.5, 0.25, -2.0, -3.0}}}});
  EXPECT_TRUE(xt::allclose(max_pool2d(x, 2).value(), Array<double>{{{{5.0, 8.0}}}}));
  // Padding never wins, even where every real value is negative.
  const D neg = D::from({{{{-1.0, -2.0}, {-3.0, -4.0}}}});
  EXPECT_TRUE(
      xt::allclose(max_pool2d(neg, 2, 1, 1).value(),
                   Array<double>{{{{-1.0, -1.0, -2.0}, {-1.0, -1.0, -2.0}, {-3.0, -3.0, -4.0}}}}));
  EXPECT_TRUE(xt::allclose(avg_pool2d(x, 2).value(), Array<double>{{{{2.0, 3.5}}}}));
  // 3x3 windows with padding 1 at the corner (0, 0): 4 of 9 taps inside the image.
  const D ones = D::ones({1, 1, 3, 3});
  EXPECT_NEAR(avg_pool2d(ones, 3, 1, 1).value()(0, 0, 0, 0), 4.0 / 9.0, 1e-15);
  // An image of one row: 2, 3, 3 and 2 of each window's 9 taps inside it.
  EXPECT_TRUE(xt::allclose(avg_pool2d(D::ones({1, 1, 1, 4}), 3, 1, 1).value(),
                           Array<double>{{{{2.0 / 9, 3.0 / 9, 3.0 / 9, 2.0 / 9}}}}));
  EXPECT_NEAR(avg_pool2d(ones, 3, 1, 1, false).value()(0, 0, 0, 0), 1.0, 1e-15);
}

TEST(Pooling, MaxPoolSendsTheGradientToTheFirstLargest) {
  // Ties (the zeros ReLU leaves) go to the first, overlapping windows add up, NaN wins (the
  // last one, as in PyTorch).
  D x = D::from({{{{0.0, 0.0, 0.0}, {0.0, 0.0, 2.0}, {0.0, std::nan(""), 0.0}}}}).requires_grad_();
  const D y = max_pool2d(x, 2, 1);
  EXPECT_EQ(y.value()(0, 0, 0, 0), 0.0);
  EXPECT_TRUE(std::isnan(y.value()(0, 0, 1, 0)));
  y.sum().backward();
  EXPECT_TRUE(xt::allclose(x.grad().value(),
                           Array<double>{{{{1.0, 0.0, 0.0}, {0.0, 0.0, 1.0}, {0.0, 2.0, 0.0}}}}));
  D two = D::from({{{{std::nan(""), 1.0}, {std::nan(""), 0.0}}}}).requires_grad_();
  max_pool2d(two, 2).sum().backward();
  EXPECT_TRUE(xt::allclose(two.grad().value(), Array<double>{{{{0.0, 0.0}, {1.0, 0.0}}}}));
}

// Max pooling from its definition: the window's taps inside the image in row-major order, a
// later one taking over only when strictly larger or NaN. Returns the values and, per output,
// the flat index in its plane of the element picked.
template <class T>
std::pair<std::vector<T>, std::vector<std::size_t>> naive_max_pool(const Array<T>& x, Size2 k,
                                                                   Size2 s, Size2 p, Size2 d) {
  const std::size_t planes = x.shape()[0] * x.shape()[1], h = x.shape()[2], w = x.shape()[3];
  const std::int64_t oh = (std::int64_t(h) + 2 * p.h - d.h * (k.h - 1) - 1) / s.h + 1;
  const std::int64_t ow = (std::int64_t(w) + 2 * p.w - d.w * (k.w - 1) - 1) / s.w + 1;
  std::vector<T> value;
  std::vector<std::size_t> pick;
  for (std::size_t q = 0; q < planes; ++q) {
    for (std::int64_t y = 0; y < oh; ++y) {
      for (std::int64_t z = 0; z < ow; ++z) {
        bool any = false;
        T best = 0;
        std::size_t at = 0;
        for (std::int64_t i = 0; i < k.h; ++i) {
          for (std::int64_t j = 0; j < k.w; ++j) {
            const std::int64_t iy = y * s.h - p.h + i * d.h, ix = z * s.w - p.w + j * d.w;
            if (iy < 0 || ix < 0 || iy >= std::int64_t(h) || ix >= std::int64_t(w)) continue;
            const std::size_t flat = std::size_t(iy) * w + std::size_t(ix);
            const T v = x.data()[q * h * w + flat];
            if (!any || v > best || std::isnan(v)) best = v, at = flat;
            any = true;
          }
        }
        value.push_back(best);
        pick.push_back(at);
      }
    }
  }
  return {value, pick};
}

template <class T>
void expect_max_pool_matches_definition() {
  struct Case {
    Shape x;
    Size2 k, s, p, d;
  };
  const Case cases[] = {
      {{2, 3, 6, 8}, 2, 2, 0, 1},      {{1, 2, 7, 5}, 2, 2, 0, 1}, {{3, 1, 28, 28}, 2, 2, 0, 1},
      {{1, 2, 5, 6}, 2, 1, 0, 1},      {{1, 2, 7, 7}, 3, 2, 0, 1}, {{1, 1, 6, 7}, {2, 3}, 1, 0, 2},
      {{2, 1, 5, 5}, 3, {1, 2}, 1, 1}, {{1, 1, 4, 4}, 2, 2, 1, 1},
  };
  std::mt19937 rng(5);
  const T levels[] = {-1, 0, 0, 1, 1, std::numeric_limits<T>::quiet_NaN()};
  for (const auto& c : cases) {
    Array<T> a = Array<T>::from_shape(c.x);
    for (T& v : a) v = levels[rng() % 6];
    Tensor<T> x = Tensor<T>(a).requires_grad_();
    const Tensor<T> y = max_pool2d(x, c.k, c.s, c.p, c.d);
    const auto [want, picks] = naive_max_pool(a, c.k, c.s, c.p, c.d);
    ASSERT_EQ(y.numel(), want.size()) << shape_str(c.x);
    // Every output sends a distinct weight back to what it picked.
    Array<T> weights = Array<T>::from_shape(y.shape());
    for (std::size_t i = 0; i < weights.size(); ++i) weights.data()[i] = T(i + 1);
    (y * Tensor<T>(weights)).sum().backward();
    Array<T> grad = xt::zeros<T>(a.shape());
    const std::size_t plane = c.x[2] * c.x[3], per = want.size() / (c.x[0] * c.x[1]);
    for (std::size_t i = 0; i < want.size(); ++i) {
      const T got = y.value().data()[i];
      EXPECT_TRUE(got == want[i] || (std::isnan(got) && std::isnan(want[i])))
          << shape_str(c.x) << " output " << i;
      grad.data()[(i / per) * plane + picks[i]] += T(i + 1);
    }
    EXPECT_EQ(x.grad().value(), grad) << shape_str(c.x);
  }
}

TEST(Pooling, MaxPoolPicksAsTheDefinitionOnTiesAndNaNs) {
  expect_max_pool_matches_definition<double>();
  expect_max_pool_matches_definition<float>();
}

TEST(BatchNorm, NormalisesPerChannelAndTracksRunningStatistics) {
  const D x = uniform({8, 3, 4, 4}, 11, -2, 5);
  D rm = D::zeros({3});
  D rv = D::ones({3});
  const D w = D::from({1.0, 2.0, 0.5});
  const D b = D::from({0.0, -1.0, 3.0});
  const D y = batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5);
  const std::size_t count = 8 * 16;
  for (std::size_t c = 0; c < 3; ++c) {
    const auto xc = xt::view(x.value(), xt::all(), c);
    const auto yc = xt::view(y.value(), xt::all(), c);
    const double mu = xt::mean(xc)();
    const double var = xt::mean(xt::square(xc - mu))();
    EXPECT_NEAR(xt::mean(yc)(), b.value()(c), 1e-10);
    EXPECT_NEAR(xt::mean(xt::square(yc - b.value()(c)))(),
                w.value()(c) * w.value()(c) * var / (var + 1e-5), 1e-9);
    EXPECT_NEAR(rm.value()(c), 0.1 * mu, 1e-12);
    EXPECT_NEAR(rv.value()(c), 0.9 + 0.1 * var * count / (count - 1), 1e-12);
  }
  EXPECT_EQ(rm.version(), 1u);
  // Evaluation uses the running statistics and leaves them alone.
  const D e = batch_norm(x, rm, rv);
  const double want = (x.value()(0, 1, 0, 0) - rm.value()(1)) / std::sqrt(rv.value()(1) + 1e-5);
  EXPECT_NEAR(e.value()(0, 1, 0, 0), want, 1e-12);
  EXPECT_EQ(rm.version(), 1u);
}

TEST(LayerNorm, NormalisesTrailingDims) {
  const D x = uniform({2, 3, 4}, 12, -3, 3);
  const D y = layer_norm(x, {3, 4}, D(), D(), 0.0);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto yi = xt::view(y.value(), i);
    EXPECT_NEAR(xt::mean(yi)(), 0.0, 1e-12);
    EXPECT_NEAR(xt::mean(xt::square(yi))(), 1.0, 1e-12);
  }
}

TEST(Embedding, PicksRowsInTheIndicesShape) {
  const D w = D::from({{0.0, 1.0}, {2.0, 3.0}, {4.0, 5.0}});
  const D e = embedding(D::from({{2.0, 0.0}, {1.0, 2.0}}), w);
  EXPECT_EQ(e.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(e.value()(1, 1, 1), 5.0);
  D wg = D(Array<double>(w.value())).requires_grad_();
  embedding(std::vector<std::int64_t>{2, 2, 0}, wg).sum().backward();
  EXPECT_TRUE(xt::allclose(wg.grad().value(), Array<double>{{1, 1}, {0, 0}, {2, 2}}));
}

TEST(Matmul, BatchDimsBroadcastAsInNumPy) {
  const D a = uniform({2, 1, 3, 4}, 13);
  const D b = uniform({3, 4, 5}, 14);
  const D c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{2, 3, 3, 5}));
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t q = 0; q < 5; ++q) {
          double want = 0;
          for (std::size_t k = 0; k < 4; ++k) want += a.value()(i, 0, r, k) * b.value()(j, k, q);
          EXPECT_NEAR(c.value()(i, j, r, q), want, 1e-12);
        }
}

TEST(ShapeOps, PermuteTrianglesAndMaskedFill) {
  const D a = uniform({2, 3, 4}, 15);
  const D p = permute(a, {2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.value()(3, 1, 2), a.value()(1, 2, 3));
  const D m = D::ones({3, 3});
  EXPECT_TRUE(xt::allclose(tril(m).value(), Array<double>{{1, 0, 0}, {1, 1, 0}, {1, 1, 1}}));
  EXPECT_TRUE(xt::allclose(triu(m, 1).value(), Array<double>{{0, 1, 1}, {0, 0, 1}, {0, 0, 0}}));
  EXPECT_TRUE(xt::allclose(tril(m, -1).value(), Array<double>{{0, 0, 0}, {1, 0, 0}, {1, 1, 0}}));
  const double inf = std::numeric_limits<double>::infinity();
  const D f = masked_fill(m, triu(m, 1), -inf);
  EXPECT_EQ(f.value()(0, 1), -inf);
  EXPECT_EQ(f.value()(1, 0), 1.0);
  // The method forms.
  EXPECT_TRUE(xt::allclose(a.permute({2, 0, 1}).value(), p.value()));
  EXPECT_TRUE(xt::allclose(m.tril(-1).value(), tril(m, -1).value()));
  EXPECT_TRUE(xt::allclose(m.triu().value(), triu(m).value()));
  EXPECT_EQ(m.masked_fill(triu(m, 1), -inf).value()(0, 2), -inf);
  const D s = softmax(f, -1);
  EXPECT_TRUE(xt::allclose(xt::view(s.value(), 0), Array<double>{1, 0, 0}));
}

}  // namespace
}  // namespace xgrad
