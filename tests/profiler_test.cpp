// The op-level profiler: what it counts (calls, products, allocations, forward and derivative
// apart), how its times add up, that it records only its own thread and only while alive, and
// the errors of misuse.

#include <xgrad/profiler.hpp>

#include <algorithm>
#include <optional>
#include <thread>

#include "test_util.hpp"

namespace xgrad {
namespace {

using F = Tensor<float>;
using profiler::Event;
using profiler::Profile;
using test::expect_error;

std::optional<Event> find(const Profile& p, const std::string& name, bool backward = false) {
  for (const auto& e : p.key_averages()) {
    if (e.name == name && e.backward == backward) return e;
  }
  return std::nullopt;
}

// Three steps of a 2-layer network: 8x5 inputs, 5->4->3, cross-entropy, SGD.
void train(nn::MLP<float>& model, optim::SGD<float>& sgd, int steps) {
  const auto x = F::rand({8, 5}, 1);
  const std::vector<std::int64_t> y = {0, 1, 2, 0, 1, 2, 0, 1};
  for (int i = 0; i < steps; ++i) {
    sgd.zero_grad();
    cross_entropy(model(x), y).backward();
    sgd.step();
  }
}

TEST(Profiler, CountsOpsDerivativesProductsAndRegions) {
  Generator gen(0);
  nn::MLP<float> model({5, 4, 3}, nn::Act::ReLU, nn::Act::Identity, gen);
  optim::SGD<float> sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  Profile prof;
  EXPECT_TRUE(prof.recording());
  train(model, sgd, 3);
  prof.stop();
  EXPECT_FALSE(prof.recording());

  const auto linear = find(prof, "linear");
  ASSERT_TRUE(linear);
  EXPECT_EQ(linear->calls, 6u);  // two layers, three steps
  // Forward products: [8,5]x[5,4] and [8,4]x[4,3].
  EXPECT_DOUBLE_EQ(linear->flops, 3 * 2.0 * (8 * 5 * 4 + 8 * 4 * 3));
  const auto linear_back = find(prof, "linear", true);
  ASSERT_TRUE(linear_back);
  EXPECT_EQ(linear_back->calls, 6u);
  // The first layer's input needs no gradient: weight gradients of both layers and the
  // second layer's input gradient.
  EXPECT_DOUBLE_EQ(linear_back->flops, 3 * 2.0 * (4 * 5 * 8 + 3 * 4 * 8 + 8 * 4 * 3));
  EXPECT_DOUBLE_EQ(prof.total_flops(), linear->flops + linear_back->flops);

  for (const char* name :
       {"relu", "cross_entropy", "backward pass", "SGD.step", "Optimizer.zero_grad"}) {
    const auto e = find(prof, name);
    ASSERT_TRUE(e) << name;
    EXPECT_EQ(e->calls, 3u) << name;
  }
  EXPECT_EQ(find(prof, "relu", true)->calls, 3u);
  EXPECT_EQ(find(prof, "cross_entropy", true)->calls, 3u);
  EXPECT_FALSE(find(prof, "SGD.step", true));

  // The pass's total holds its derivatives; the forward op allocated its output.
  const auto pass = find(prof, "backward pass");
  EXPECT_GE(pass->total_time, linear_back->total_time);
  EXPECT_GE(find(prof, "relu")->allocated_bytes, 3 * 8 * 4 * sizeof(float));

  std::uint64_t products = 0;
  for (const auto& p : prof.products()) {
    EXPECT_FALSE(p.is_double);
    products += p.calls;
  }
  EXPECT_EQ(products, 3u * 5);  // 2 forward + 3 backward products per step
}

TEST(Profiler, CountsTheProductsThatRunOnOtherThreads) {
  // A convolution runs its chunks of images on every thread; the products of all of them count.
  const int threads_before = get_num_threads();
  const F x = F::rand({64, 4, 10, 10}, 2).requires_grad_();
  const F w = F::rand({8, 4, 3, 3}, 3).requires_grad_();
  const double product = 2.0 * 8 * (4 * 3 * 3) * (64 * 10 * 10);  // one pass over the batch
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Profile prof;
    conv2d(x, w, F(), 1, 1).sum().backward();
    prof.stop();
    EXPECT_DOUBLE_EQ(find(prof, "conv2d")->flops, product) << threads << " threads";
    EXPECT_DOUBLE_EQ(find(prof, "conv2d", true)->flops, 2 * product) << threads << " threads";
  }
  set_num_threads(threads_before);
}

TEST(Profiler, SelfTimesAndOutsideTimeAddUpToTheWallTime) {
  Generator gen(0);
  nn::MLP<float> model({5, 4, 3}, nn::Act::ReLU, nn::Act::Identity, gen);
  optim::SGD<float> sgd(model.parameters(), {.lr = 0.1});
  Profile prof;
  train(model, sgd, 2);
  prof.stop();
  double self = 0;
  for (const auto& e : prof.key_averages()) {
    EXPECT_LE(e.self_time, e.total_time + 1e-12) << e.label();
    EXPECT_GE(e.self_time, 0) << e.label();
    self += e.self_time;
  }
  EXPECT_NEAR(self + prof.outside_time(), prof.wall_time(), 1e-6);
  const auto events = prof.key_averages();
  EXPECT_TRUE(std::is_sorted(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.self_time > b.self_time;
  }));
  // Stopped: the wall time no longer grows.
  const double wall = prof.wall_time();
  train(model, sgd, 1);
  EXPECT_EQ(prof.wall_time(), wall);
}

TEST(Profiler, RegionsNestAndRecursionCountsTheTotalOnce) {
  const auto x = F::rand({16}, 3).requires_grad_();
  Profile prof;
  {
    const profiler::record_function outer("step");
    {
      const profiler::record_function inner("step");  // same name, nested
      (x.exp() * 2.f).sum().backward();
    }
  }
  prof.stop();
  const auto step = find(prof, "step");
  ASSERT_TRUE(step);
  EXPECT_EQ(step->calls, 2u);
  EXPECT_LE(step->total_time, prof.wall_time());
  const auto exp = find(prof, "exp");
  ASSERT_TRUE(exp);
  EXPECT_LE(exp->total_time, step->total_time);
  EXPECT_EQ(find(prof, "exp", true)->calls, 1u);
  EXPECT_EQ(find(prof, "mul", true)->calls, 1u);
  EXPECT_EQ(find(prof, "sum", true)->calls, 1u);
  EXPECT_GE(exp->allocated_bytes, 16 * sizeof(float));
  EXPECT_FALSE(find(prof, "matmul"));
}

TEST(Profiler, RecordsOnlyItsThreadAndOnlyWhileAlive) {
  const auto a = F::rand({4, 4}, 1);
  {
    Profile prof;
    std::thread([&] { (void)matmul(a, a); }).join();  // another thread: not recorded
    (void)add(a, a);
    prof.stop();
    (void)mul(a, a);  // after stop: not recorded
    EXPECT_FALSE(find(prof, "matmul"));
    EXPECT_FALSE(find(prof, "mul"));
    ASSERT_TRUE(find(prof, "add"));
    EXPECT_TRUE(prof.products().empty());
    EXPECT_EQ(prof.gemm_floor(), 0.0);
  }
  Profile second;  // the first one is gone: this thread can be recorded again
  (void)matmul(a, a);
  second.stop();
  EXPECT_EQ(find(second, "matmul")->calls, 1u);
  EXPECT_FALSE(find(second, "add"));
}

TEST(Profiler, GemmFloorRunsTheRecordedShapes) {
  const auto a = Tensor<double>::rand({32, 24}, 1);
  const auto b = Tensor<double>::rand({24, 16}, 2);
  Profile prof;
  for (int i = 0; i < 4; ++i) (void)matmul(a, b);
  (void)matmul(a.transpose(0, 1), a);  // a copy, then [24,32]x[32,24]
  expect_error<Error>([&] { (void)prof.gemm_floor(); }, {"gemm_floor", "stop()"});
  prof.stop();
  const auto shapes = prof.products();
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0].calls, 4u);
  EXPECT_TRUE(shapes[0].is_double);
  EXPECT_EQ(shapes[0].m, 32u);
  EXPECT_EQ(shapes[0].n, 16u);
  EXPECT_EQ(shapes[0].k, 24u);
  EXPECT_EQ(shapes[1].calls, 1u);
  EXPECT_EQ(shapes[1].m, 24u);
  EXPECT_DOUBLE_EQ(prof.total_flops(), 4 * 2.0 * 32 * 16 * 24 + 2.0 * 24 * 24 * 32);
  EXPECT_GT(prof.gemm_floor(1), 0.0);
  expect_error<ValueError>([&] { (void)prof.gemm_floor(0); }, {"gemm_floor", "repeats"});
}

TEST(Profiler, TableListsTheRowsAndTotals) {
  const auto a = F::rand({8, 8}, 1).requires_grad_();
  Profile prof;
  matmul(a, a).sum().backward();
  prof.stop();
  const std::string full = prof.table();
  for (const char* s : {"matmul", "matmul (backward)", "sum (backward)", "backward pass",
                        "outside any op", "wall time", "GFLOP/s"}) {
    EXPECT_NE(full.find(s), std::string::npos) << s << " in\n" << full;
  }
  const std::string top = prof.table(1);
  EXPECT_NE(top.find("more rows"), std::string::npos) << top;
  EXPECT_LT(top.size(), full.size());
}

TEST(Profiler, RegionsOutlivingTheirProfileAreLeftAlone) {
  const auto x = F::rand({8}, 1);
  {
    std::optional<Profile> prof(std::in_place);
    const profiler::record_function region("outer");
    (void)x.exp();
    prof->stop();  // inside the region: it closes after the stop, uncounted
    const double wall = prof->wall_time();
    EXPECT_LE(find(*prof, "exp")->total_time, wall);
    {
      const profiler::record_function inner("inner");  // after stop: nothing recorded
    }
    EXPECT_FALSE(find(*prof, "inner"));
    prof.reset();  // destroyed with `region` still open
  }
  {
    std::optional<Profile> prof(std::in_place);
    {
      const profiler::record_function region("gone");
      prof.reset();  // destroyed while recording, the region open
    }
    Profile next;  // the thread can be recorded again
    (void)x.exp();
    next.stop();
    EXPECT_EQ(find(next, "exp")->calls, 1u);
  }
}

TEST(Profiler, MisuseIsReported) {
  Profile prof;
  expect_error<Error>([] { Profile second; }, {"Profile", "already recording"});
  EXPECT_TRUE(prof.recording());  // the failed second one left the first alone
  std::optional<std::string> message;
  std::thread([&] {
    try {
      prof.stop();
    } catch (const Error& e) {
      message = e.what();
    }
  }).join();
  ASSERT_TRUE(message);
  EXPECT_NE(message->find("another thread"), std::string::npos) << *message;
  EXPECT_TRUE(prof.recording());
  prof.stop();
  prof.stop();  // a second stop does nothing
  EXPECT_FALSE(prof.recording());
}

}  // namespace
}  // namespace xgrad
