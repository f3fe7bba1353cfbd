// xgrad::distributed under `mpirun -np 2` (ctest runs it so; started alone it is a group of one
// and the tests that need two processes skip). Every process runs every test, so each test calls
// the same collectives in the same order on every process.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

namespace xgrad::dist {
namespace {

ProcessGroup* world = nullptr;

#define NEEDS_TWO_PROCESSES() \
  if (world->size() < 2) GTEST_SKIP() << "run under mpirun -np 2"

TEST(Collectives, AllReduceBroadcastGatherAndBarrier) {
  const int r = world->rank();
  const int n = world->size();
  std::vector<double> v = {double(r), 1.0, -2.5 * r};
  world->all_reduce(std::span<double>(v));
  EXPECT_EQ(v[0], n * (n - 1) / 2.0);
  EXPECT_EQ(v[1], double(n));
  auto t = Tensor<float>::full({2, 2}, float(r + 1));
  world->all_reduce(t, ReduceOp::mean);
  EXPECT_EQ(t.value()(1, 1), (n + 1) / 2.0f);
  std::vector<float> b = {float(r), float(r)};
  world->broadcast(std::span<float>(b), n - 1);
  EXPECT_EQ(b, (std::vector<float>{float(n - 1), float(n - 1)}));
  const std::int64_t mine[2] = {r, 10 * r};
  const auto all = world->all_gather(std::span<const std::int64_t>(mine, 2));
  ASSERT_EQ(all.size(), 2u * n);
  for (int k = 0; k < n; ++k) {
    EXPECT_EQ(all[2 * k], k);
    EXPECT_EQ(all[2 * k + 1], 10 * k);
  }
  world->barrier();
  std::vector<double> big(3, double(r));
  auto work = world->all_reduce_async(std::span<double>(big));
  work.wait();
  work.wait();
  EXPECT_TRUE(work.test());
  EXPECT_EQ(big[2], n * (n - 1) / 2.0);
}

TEST(Collectives, MismatchedSizesRaiseTheSameErrorEverywhere) {
  NEEDS_TWO_PROCESSES();
  std::vector<double> v(world->rank() == 0 ? 3 : 4, 1.0);
  try {
    world->all_reduce(std::span<double>(v));
    ADD_FAILURE() << "no error";
  } catch (const DistributedError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("all_reduce"), std::string::npos) << msg;
    EXPECT_NE(msg.find("from 3 to 4"), std::string::npos) << msg;
    EXPECT_NE(msg.find("rank " + std::to_string(world->rank())), std::string::npos) << msg;
  }
  std::vector<float> b(2);
  EXPECT_THROW(world->broadcast(std::span<float>(b), world->size()), ValueError);
}

TEST(Sampler, SharesAreDisjointCoverTheEpochAndPadOrCutTheTail) {
  for (const std::size_t n : {10u, 11u, 1u, 0u}) {
    std::vector<std::size_t> order(n);
    std::iota(order.rbegin(), order.rend(), std::size_t(0));  // any order
    std::multiset<std::size_t> seen;
    for (std::size_t r = 0; r < 3; ++r) {
      DistributedSampler s(r, 3);
      const auto share = s.select(order, 0);
      EXPECT_EQ(share.size(), (n + 2) / 3);
      seen.insert(share.begin(), share.end());
      DistributedSampler cut(r, 3, /*drop_last=*/true);
      EXPECT_EQ(cut.select(order, 0).size(), n / 3);
    }
    for (std::size_t i = 0; i < n; ++i) EXPECT_GE(seen.count(i), 1u) << n;
    EXPECT_EQ(seen.size(), 3 * ((n + 2) / 3));  // padded with repeats only
  }
  EXPECT_THROW(DistributedSampler(2, 2), ValueError);
}

TEST(Sampler, TwoLoadersOfBatchBMakeUpOneLoaderOfBatchTwoB) {
  auto x = Tensor<double>::arange(22).reshape({11, 2});
  auto y = Tensor<double>::arange(11);
  const data::DataLoaderOptions one{.batch_size = 4, .shuffle = true, .seed = 5};
  const data::DataLoaderOptions half{.batch_size = 2, .shuffle = true, .seed = 5};
  data::DataLoader<double> whole(x, y, one);
  data::DataLoader<double> r0(x, y, half, DistributedSampler(0, 2));
  data::DataLoader<double> r1(x, y, half, DistributedSampler(1, 2));
  EXPECT_EQ(r0.size(), 3u);  // 6 samples each (11 padded to 12)
  for (std::uint64_t epoch = 0; epoch < 3; ++epoch) {
    const auto all = whole.order(epoch);
    const auto a = r0.order(epoch);
    const auto b = r1.order(epoch);
    for (std::size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k], all[2 * k]);
      if (2 * k + 1 < all.size()) {
        EXPECT_EQ(b[k], all[2 * k + 1]);
      }
    }
  }
  std::set<double> first_batch;
  for (const auto& batch : {*r0.begin(), *r1.begin(), *whole.begin()}) {
    for (const double v : batch.targets.value()) first_batch.insert(v);
  }
  EXPECT_EQ(first_batch.size(), 4u);  // the two halves are the whole loader's first batch
}

// Synthetic 3-class data, the same on every process.
struct Problem {
  Tensor<float> x;
  Tensor<float> y;
};
Problem problem(std::size_t n) {
  Generator gen(11);
  auto x = Tensor<float>::randn({n, 8}, gen);
  std::vector<float> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float s = x.value()(i, 0) + 0.5f * x.value()(i, 1);
    labels[i] = s > 0.5f ? 2.0f : (s < -0.5f ? 0.0f : 1.0f);
  }
  return {x, Tensor<float>::from(labels, {n})};
}

/// Trains `steps` steps with global batch `global_batch`, split over the group when `ddp`; returns
/// the losses of the global batches (the mean over processes) and the final parameters.
std::pair<std::vector<double>, std::vector<float>> train(bool ddp, std::size_t global_batch,
                                                         std::size_t steps,
                                                         DataParallelOptions options = {}) {
  const Problem p = problem(2000);
  Generator gen(3);
  nn::MLP<float> model({8, 16, 3}, nn::Act::Tanh, nn::Act::Identity, gen);
  std::unique_ptr<DataParallel<float>> wrapper;
  std::unique_ptr<data::DataLoader<float>> loader;
  const std::size_t n = ddp ? static_cast<std::size_t>(world->size()) : 1;
  const data::DataLoaderOptions opts{.batch_size = global_batch / n, .shuffle = true, .seed = 9};
  if (ddp) {
    wrapper = std::make_unique<DataParallel<float>>(model, *world, options);
    loader = std::make_unique<data::DataLoader<float>>(p.x, p.y, opts, DistributedSampler(*world));
  } else {
    loader = std::make_unique<data::DataLoader<float>>(p.x, p.y, opts);
  }
  optim::SGD<float> opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  std::vector<double> losses;
  while (losses.size() < steps) {
    for (auto batch : *loader) {
      if (losses.size() == steps) break;
      opt.zero_grad();
      auto loss = cross_entropy(model(batch.inputs), batch.targets);
      loss.backward();
      double l = loss.item();
      if (ddp) world->all_reduce(std::span<double>(&l, 1), ReduceOp::mean);
      losses.push_back(l);
      opt.step();
    }
  }
  std::vector<float> flat;
  for (const auto& t : model.parameters()) {
    flat.insert(flat.end(), t.value().begin(), t.value().end());
  }
  return {losses, flat};
}

TEST(DataParallel, TwoProcessesOfHalfABatchTrainAsOneOfTheWholeBatch) {
  NEEDS_TWO_PROCESSES();
  const auto [single, single_params] = train(false, 64, 100);
  const auto [split, split_params] = train(true, 64, 100, {.bucket_bytes = 256});
  ASSERT_EQ(split.size(), 100u);
  double worst = 0;
  for (std::size_t k = 0; k < 100; ++k) {
    worst = std::max(worst, std::abs(split[k] - single[k]) / std::abs(single[k]));
  }
  EXPECT_LE(worst, 1e-5) << "loss after 100 steps: " << split.back() << " vs " << single.back();
  EXPECT_LT(split.back(), 0.5 * split.front());  // it learns
  // Every process holds the same parameters, bit for bit.
  const auto all = world->all_gather(std::span<const float>(split_params));
  EXPECT_TRUE(std::equal(split_params.begin(), split_params.end(),
                         all.begin() + static_cast<std::ptrdiff_t>(split_params.size())));
}

TEST(DataParallel, RunsAreBitwiseRepeatableAndBucketSizeDoesNotChangeTheResult) {
  const auto [a, pa] = train(true, 32, 30);
  const auto [b, pb] = train(true, 32, 30);
  const auto [c, pc] = train(true, 32, 30, {.bucket_bytes = 64});
  EXPECT_EQ(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)), 0);
  EXPECT_EQ(a, b);
  if (world->size() <= 2) {  // a sum of two is the same in any grouping
    EXPECT_EQ(std::memcmp(pa.data(), pc.data(), pa.size() * sizeof(float)), 0);
  }
}

TEST(DataParallel, BucketsFollowTheOptionAndHoldEveryParameterOnce) {
  Generator gen(1);
  nn::MLP<float> model({4, 8, 8, 2}, nn::Act::ReLU, nn::Act::Identity, gen);
  DataParallel<float> one(model, *world);
  EXPECT_EQ(one.buckets().size(), 1u);
  DataParallel<float> many(model, *world, {.bucket_bytes = 1});
  const auto buckets = many.buckets();
  EXPECT_EQ(buckets.size(), 6u);
  EXPECT_EQ(buckets.front().front(), "4.bias");  // the last registered parameter first
}

TEST(DataParallel, NoSyncAccumulatesLocallyAndTheNextPassAveragesTheSum) {
  Generator gen(2);
  nn::MLP<double> model({3, 2}, nn::Act::Identity, nn::Act::Identity, gen);
  DataParallel<double> ddp(model, *world);
  const double r = world->rank();
  auto x1 = Tensor<double>::full({1, 3}, 1.0 + r);
  auto x2 = Tensor<double>::full({1, 3}, 2.0 - r);
  {
    auto guard = ddp.no_sync();
    model(x1).sum().backward();
  }
  const auto w = model.parameters()[0];
  const Array<double> local_after_first = w.grad().value();
  EXPECT_EQ(local_after_first(0, 0), 1.0 + r);  // not averaged
  model(x2).sum().backward();
  // d/dw of sum(w x) = x per output row: local sum (1 + r) + (2 - r) = 3 on every process.
  EXPECT_DOUBLE_EQ(w.grad().value()(1, 2), 3.0);
  EXPECT_EQ(ddp.last_stats().buckets, 1u);
  EXPECT_GT(ddp.last_stats().bytes, 0u);
}

TEST(DataParallel, AParameterUnusedOnOneProcessIsReportedOrAveragedAsZero) {
  NEEDS_TWO_PROCESSES();
  Generator gen(4);
  nn::MLP<double> model({2, 2}, nn::Act::Identity, nn::Act::Identity, gen);
  auto x = Tensor<double>::ones({1, 2});
  const auto forward = [&] {
    // Process 1 leaves the bias out.
    auto w = model.parameters()[0];
    auto b = model.parameters()[1];
    auto out = matmul(x, w.T());
    return (world->rank() == 1 ? out : out + b).sum();
  };
  {
    DataParallel<double> ddp(model, *world);
    try {
      forward().backward();
      ADD_FAILURE() << "no error";
    } catch (const DistributedError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("find_unused_parameters"), std::string::npos) << msg;
      if (world->rank() == 1) {
        EXPECT_NE(msg.find("0.bias"), std::string::npos) << msg;
      }
    }
  }
  model.zero_grad();
  DataParallel<double> ddp(model, *world, {.find_unused_parameters = true});
  forward().backward();
  const auto b = model.parameters()[1];
  ASSERT_TRUE(b.grad().defined());
  EXPECT_DOUBLE_EQ(b.grad().value()(0), 1.0 / world->size());  // 1 from process 0, 0 from 1
  if (world->rank() == 1) {
    EXPECT_EQ(ddp.unused_parameters(), std::vector<std::string>{"0.bias"});
  }
}

TEST(DataParallel, AModelWithNothingToTrainIsRefused) {
  Generator gen(5);
  nn::MLP<float> model({2, 2}, nn::Act::Identity, nn::Act::Identity, gen);
  for (auto p : model.parameters()) p.requires_grad_(false);
  try {
    DataParallel<float> ddp(model, *world);
    ADD_FAILURE() << "no error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("no parameter that requires grad"), std::string::npos);
  }
}

TEST(DataParallel, ConstructionCopiesRankZerosParameters) {
  Generator gen(100 + static_cast<std::uint64_t>(world->rank()));  // different on each process
  nn::MLP<float> model({3, 4}, nn::Act::ReLU, nn::Act::Identity, gen);
  DataParallel<float> ddp(model, *world);
  const auto w = model.parameters()[0];
  std::vector<float> mine(w.value().begin(), w.value().end());
  const auto all = world->all_gather(std::span<const float>(mine));
  EXPECT_TRUE(std::equal(mine.begin(), mine.end(), all.begin()));
}

TEST(DataParallel, EveryProcessKeepsRankZerosBufferStatistics) {
  NEEDS_TWO_PROCESSES();
  // Each process normalises its own data, so its running statistics differ from the others'
  // until DataParallel copies rank 0's after the backward pass; without that they stay apart.
  for (const bool broadcast : {true, false}) {
    Generator gen(7);
    nn::Sequential<double> model;
    model.push_back(nn::Linear<double>(3, 4, true, gen));
    model.push_back(nn::BatchNorm1d<double>(4));
    DataParallel<double> ddp(model, *world, {.broadcast_buffers = broadcast});
    const auto x = Tensor<double>::rand({8, 3}, 30 + static_cast<std::uint64_t>(world->rank()));
    // Rank 0's statistics after its forward pass, before any exchange.
    model(x).sum().backward();
    const auto stats = model.named_buffers();
    ASSERT_EQ(stats.size(), 3u);
    for (const auto& [name, b] : stats) {
      std::vector<double> mine(b.value().begin(), b.value().end());
      const auto all = world->all_gather(std::span<const double>(mine));
      // Rank 0's copy against rank 1's.
      const auto n = static_cast<std::ptrdiff_t>(mine.size());
      const bool same = std::equal(all.begin(), all.begin() + n, all.begin() + n);
      if (name == "1.num_batches_tracked") {
        EXPECT_TRUE(same) << name;  // one batch everywhere
      } else {
        EXPECT_EQ(same, broadcast) << name << (broadcast ? " differs" : " was copied");
      }
    }
  }
}

}  // namespace
}  // namespace xgrad::dist

int main(int argc, char** argv) {
  auto group = xgrad::dist::init(argc, argv);
  xgrad::dist::world = &group;
  ::testing::InitGoogleTest(&argc, argv);
  const int failed = RUN_ALL_TESTS();
  // Any process's failure fails the job on every process.
  int any = failed != 0 ? 1 : 0;
  group.all_reduce(std::span<int>(&any, 1));
  return any;
}
