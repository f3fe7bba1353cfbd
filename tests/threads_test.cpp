// Independent graphs on many threads at once give bitwise the results of a serial run: the engine
// keeps no shared mutable state beyond atomic counters, and grad mode, anomaly mode and the
// default generator are per thread. Built with -DXGRAD_TSAN=ON, ThreadSanitizer checks the claim.

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

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
