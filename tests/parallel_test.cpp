// Work split over xgrad's threads: the same results as on one thread (bitwise where the split
// cannot change the arithmetic), runs that repeat bitwise, and a forked child that computes.

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "test_util.hpp"

namespace xgrad {
namespace {

class Parallel : public ::testing::Test {
 protected:
  void SetUp() override { threads_ = get_num_threads(); }
  void TearDown() override { set_num_threads(threads_); }
  int threads_ = 1;
};

bool bitwise_equal(const Array<float>& a, const Array<float>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One optimiser step on a [96, 100] weight and a [100] bias from fixed gradients (a 2-layer
// network's worth of state: the weight is split, the bias is not).
template <class Opt, class Options>
std::vector<Array<float>> steps_at(int threads, Options options) {
  set_num_threads(threads);
  auto w = Tensor<float>::rand({96, 100}, 1).requires_grad_();
  auto b = Tensor<float>::rand({100}, 2).requires_grad_();
  Opt opt({w, b}, options);
  const auto gw = Tensor<float>::randn({96, 100}, 3);
  const auto gb = Tensor<float>::randn({100}, 4);
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    ((w * gw).sum() + (b * gb).sum()).backward();
    opt.step();
  }
  return {w.value(), b.value()};
}

TEST_F(Parallel, OptimiserUpdatesAreBitwiseThoseOfOneThread) {
  const auto sgd = [](int t) {
    return steps_at<optim::SGD<float>>(
        t, optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
  };
  const auto adam = [](int t) {
    return steps_at<optim::Adam<float>>(t, optim::AdamOptions{.lr = 0.01, .weight_decay = 0.1});
  };
  for (const auto& run : {std::function<std::vector<Array<float>>(int)>(sgd),
                          std::function<std::vector<Array<float>>(int)>(adam)}) {
    const auto one = run(1);
    const auto two = run(2);
    ASSERT_EQ(one.size(), two.size());
    for (std::size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(bitwise_equal(one[i], two[i])) << i;
  }
}

std::vector<Array<float>> train_at(int threads) {
  set_num_threads(threads);
  Generator gen(5);
  nn::MLP<float> model({100, 96, 80, 10}, nn::Act::ReLU, nn::Act::Identity, gen);
  optim::SGD<float> sgd(model.parameters(), {.lr = 0.05, .momentum = 0.9});
  const auto x = Tensor<float>::rand({64, 100}, 6);
  std::vector<std::int64_t> y(64);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>(i % 10);
  for (int step = 0; step < 20; ++step) {
    sgd.zero_grad();
    cross_entropy(model(x), y).backward();
    sgd.step();
  }
  std::vector<Array<float>> out;
  for (const auto& p : model.parameters()) out.push_back(p.value());
  return out;
}

TEST_F(Parallel, TrainingOnTwoThreadsRepeatsBitwiseAndAgreesWithOne) {
  const auto first = train_at(2);
  const auto second = train_at(2);
  const auto one = train_at(1);
  ASSERT_EQ(first.size(), second.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_TRUE(bitwise_equal(first[i], second[i])) << "parameter " << i;
    const Array<float>& a = first[i];
    const Array<float>& b = one[i];
    for (std::size_t k = 0; k < a.size(); ++k) {
      ASSERT_NEAR(a.data()[k], b.data()[k], 1e-4f + 1e-4f * std::abs(b.data()[k]))
          << "parameter " << i << " element " << k;
    }
  }
}

TEST_F(Parallel, AForkedChildComputesOnItsOwnThread) {
  set_num_threads(2);
  const auto a = Tensor<float>::rand({128, 128}, 1);
  const float expected = matmul(a, a).sum().item();  // the pool's worker is running now
  const pid_t pid = fork();
  ASSERT_NE(pid, -1);
  if (pid == 0) {
    alarm(20);  // a child waiting for a worker it does not have dies instead of hanging
    // One thread sums in other pieces than two: equal up to rounding.
    const auto close = [&] {
      return std::abs(matmul(a, a).sum().item() - expected) <= 1e-3f * expected;
    };
    const bool same = get_num_threads() == 1 && close();
    set_num_threads(2);  // and it can start workers of its own
    const bool again = get_num_threads() == 2 && close();
    _exit(same && again ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace xgrad
