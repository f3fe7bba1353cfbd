// What anomaly mode and the profiler cost. Off (the default) both must be invisible: a flag read
// per recorded op and a predictable branch per delivered gradient for anomaly mode, a
// thread-local pointer read per op, product and allocation for the profiler. Measured on the
// Fashion-MNIST training step (MLP 784-256-128-10, ReLU, cross-entropy, SGD with momentum, batch
// 64) and on a chain of tiny ops, where fixed per-node costs dominate: its time per node, off and
// on, bounds the cost of the off checks from above. Run with --benchmark_repetitions to see the
// spread on a busy machine.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include <optional>

#include <xgrad/profiler.hpp>
#include <xgrad/xgrad.hpp>

namespace {

using F = xgrad::Tensor<float>;

const char* mode_label(int mode) {
  return mode == 0 ? "all off" : mode == 1 ? "anomaly on" : "profiler on";
}

// One training step, as in examples/fashion_mnist, on a fixed random batch (the data's values do
// not change the work done). Arg: 0 = anomaly mode and profiler off, 1 = anomaly mode on,
// 2 = a Profile recording.
void BM_TrainStep(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  xgrad::set_num_threads(1);
  xgrad::Generator gen(0);
  xgrad::nn::MLP<float> model({784, 256, 128, 10}, xgrad::nn::Act::ReLU, xgrad::nn::Act::Identity,
                              gen);
  xgrad::optim::SGD<float> sgd(model.parameters(), {.lr = 0.05, .momentum = 0.9});
  const auto x = F::rand({64, 784}, 1);
  std::vector<std::int64_t> y(64);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>(i % 10);
  xgrad::AnomalyGuard guard(mode == 1);
  std::optional<xgrad::profiler::Profile> prof;
  if (mode == 2) prof.emplace();
  for (auto _ : state) {
    sgd.zero_grad();
    auto loss = xgrad::cross_entropy(model(x), y);
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.item());
  }
  state.SetLabel(mode_label(mode));
}
BENCHMARK(BM_TrainStep)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

// Forward and backward through `n` one-element multiplications: the per-node cost of recording,
// sweeping and freeing, with everything off, anomaly mode on or a Profile recording (items =
// nodes).
void BM_TinyChain(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int mode = static_cast<int>(state.range(1));
  auto x = F::ones({1}).requires_grad_();
  xgrad::AnomalyGuard guard(mode == 1);
  std::optional<xgrad::profiler::Profile> prof;
  if (mode == 2) prof.emplace();
  for (auto _ : state) {
    F y = x;
    for (std::size_t i = 0; i < n; ++i) y = y * 1.0f;
    y.backward();
    benchmark::DoNotOptimize(x.grad().value().data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetLabel(mode_label(mode));
}
BENCHMARK(BM_TinyChain)->Args({1000, 0})->Args({1000, 1})->Args({1000, 2});

// The off check by itself: reading the thread-local flag as record() does, per node.
void BM_OffCheckAlone(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(xgrad::is_anomaly_enabled());
}
BENCHMARK(BM_OffCheckAlone);

// The profiler's off check by itself: what an op's entry, a product and an allocation read.
void BM_ProfilerOffCheckAlone(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(xgrad::profiler::detail::active);
}
BENCHMARK(BM_ProfilerOffCheckAlone);

}  // namespace

BENCHMARK_MAIN();
