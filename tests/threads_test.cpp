// Independent graphs on many threads at once give bitwise the results of a serial run: the engine
// keeps no shared mutable state beyond atomic counters, and grad mode, anomaly mode and the
// default generator are per thread. Then xgrad's own pool of threads. Built with
// -DXGRAD_TSAN=ON, ThreadSanitizer checks the claims.

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "core/parallel.hpp"
#include "test_util.hpp"

namespace xgrad {
namespace {

constexpr int kThreads = 8;
constexpr int kPasses = 1000;

/// What one worker computes: a small model's losses and final parameters, from its own seed.
struct Result {
  std::vector<double> losses;
  std::vector<Array<double>> params;
};

Result work(std::uint64_t seed) {
  Generator gen(seed);
  nn::MLP<double> model({5, 8, 3}, nn::Act::Tanh, nn::Act::Identity, gen);
  optim::SGD<double> sgd(model.parameters(), {.lr = 0.05, .momentum = 0.5});
  const auto x = Tensor<double>::randn({4, 5}, gen);
  const std::vector<std::int64_t> y{0, 2, 1, static_cast<std::int64_t>(seed % 3)};
  Result r;
  r.losses.reserve(kPasses);
  for (int i = 0; i < kPasses; ++i) {
    sgd.zero_grad();
    // The thread's own grad and anomaly modes change along the way: never another thread's.
    AnomalyGuard anomaly(i % 2 == 0);
    auto loss = cross_entropy(model(x), y) + (model(x).sigmoid() * 0.1).sum();
    {
      NoGradGuard no_grad;  // a detour that must record nothing
      r.losses.push_back(cross_entropy(model(x), y).item());
    }
    loss.backward();
    sgd.step();
    r.losses.push_back(loss.item());
  }
  for (const auto& p : model.parameters()) r.params.push_back(p.value());
  return r;
}

bool bitwise_equal(const Result& a, const Result& b) {
  if (a.losses.size() != b.losses.size() || a.params.size() != b.params.size()) return false;
  if (std::memcmp(a.losses.data(), b.losses.data(), a.losses.size() * sizeof(double)) != 0) {
    return false;
  }
  for (std::size_t i = 0; i < a.params.size(); ++i) {
    const auto& p = a.params[i];
    const auto& q = b.params[i];
    if (p.shape() != q.shape() || std::memcmp(p.data(), q.data(), p.size() * sizeof(double))) {
      return false;
    }
  }
  return true;
}

TEST(Threads, IndependentGraphsOnEightThreadsMatchASerialRunBitwise) {
  // NOTE: OpenBLAS's own worker threads are kept out of it: they are not what is tested, and
  // ThreadSanitizer cannot see the synchronisation inside an uninstrumented library.
  const int blas_threads = get_num_threads();
  set_num_threads(1);
  std::vector<Result> serial;
  for (int t = 0; t < kThreads; ++t) serial.push_back(work(100 + t));

  const std::size_t nodes = live_nodes();
  std::vector<Result> parallel(kThreads);
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&parallel, t] { parallel[t] = work(100 + t); });
  }
  for (auto& th : pool) th.join();
  set_num_threads(blas_threads);

  EXPECT_EQ(live_nodes(), nodes);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(parallel[t].losses.size(), 2u * kPasses);
    EXPECT_TRUE(bitwise_equal(serial[t], parallel[t])) << "thread " << t;
  }
  // The seeds differ, so the comparison above is not comparing equal things by accident.
  EXPECT_FALSE(bitwise_equal(serial[0], serial[1]));
}

}  // namespace
}  // namespace xgrad

namespace xgrad {
namespace {

// xgrad's own pool (src/core/parallel.hpp), with workers: every part runs once, errors come back
// to the caller, nested and concurrent calls finish, and resizing takes effect.
class Pool : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = get_num_threads();
    set_num_threads(3);
  }
  void TearDown() override { set_num_threads(threads_); }
  int threads_ = 1;
};

TEST_F(Pool, RunsEveryPartOnce) {
  ASSERT_EQ(get_num_threads(), 3);
  for (std::size_t parts : {1u, 2u, 3u, 7u, 64u}) {
    std::vector<std::atomic<int>> runs(parts);
    detail::parallel_parts(parts, [&](std::size_t p) { runs[p].fetch_add(1); });
    for (std::size_t p = 0; p < parts; ++p) EXPECT_EQ(runs[p].load(), 1) << p << " of " << parts;
  }
  std::vector<int> covered(1000, 0);
  detail::parallel_for(covered.size(), 10, 16, [&](std::size_t lo, std::size_t hi) {
    EXPECT_EQ(lo % 16, 0u);
    for (std::size_t i = lo; i < hi; ++i) ++covered[i];
  });
  for (int c : covered) ASSERT_EQ(c, 1);
}

TEST_F(Pool, RethrowsAPartsErrorAndStaysUsable) {
  EXPECT_THROW(detail::parallel_parts(6,
                                      [](std::size_t p) {
                                        if (p == 4) throw ValueError("part 4");
                                      }),
               ValueError);
  std::atomic<int> runs{0};
  detail::parallel_parts(6, [&](std::size_t) { runs.fetch_add(1); });
  EXPECT_EQ(runs.load(), 6);
}

TEST_F(Pool, NestedAndConcurrentCallsFinish) {
  std::atomic<int> inner{0};
  detail::parallel_parts(
      3, [&](std::size_t) { detail::parallel_parts(4, [&](std::size_t) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 12);

  std::vector<std::thread> callers;
  std::atomic<long> total{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        detail::parallel_for(4096, 64, 16, [&](std::size_t lo, std::size_t hi) {
          total.fetch_add(static_cast<long>(hi - lo));
        });
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(total.load(), 4L * 200 * 4096);
}

TEST_F(Pool, SetNumThreadsFromInsideAPartIsAnError) {
  std::atomic<int> refused{0};
  detail::parallel_parts(3, [&](std::size_t) {
    try {
      set_num_threads(1);
    } catch (const Error& e) {
      if (std::string(e.what()).find("set_num_threads") != std::string::npos) refused.fetch_add(1);
    }
  });
  EXPECT_EQ(refused.load(), 3);
  EXPECT_EQ(get_num_threads(), 3);
  EXPECT_THROW(set_num_threads(1 << 20), ValueError);
  EXPECT_EQ(get_num_threads(), 3);  // refused before anything changed
}

TEST_F(Pool, ResizesAndSplitProductsAgreeWithOneThread) {
  set_num_threads(0);
  EXPECT_EQ(get_num_threads(), 1);
  const auto a = Tensor<double>::rand({150, 130}, 1);
  const auto b = Tensor<double>::rand({130, 170}, 2);
  const Array<double> one = matmul(a, b).value();
  set_num_threads(2);
  EXPECT_EQ(get_num_threads(), 2);
  const Array<double> two = matmul(a, b).value();
  ASSERT_EQ(one.shape(), two.shape());
  for (std::size_t i = 0; i < one.size(); ++i) {
    ASSERT_NEAR(one.data()[i], two.data()[i], 1e-12 * std::abs(one.data()[i]) + 1e-12) << i;
  }
}

}  // namespace
}  // namespace xgrad
