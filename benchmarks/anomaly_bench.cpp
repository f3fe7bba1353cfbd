// What anomaly mode costs. Off (the default) it must be invisible: a flag read per recorded op
// and a predictable branch per delivered gradient. Measured on the Fashion-MNIST training step
// (MLP 784-256-128-10, ReLU, cross-entropy, SGD with momentum, batch 64) and on a chain of tiny
// ops, where fixed per-node costs dominate: its time per node, off and on, bounds the cost of the
// off check from above. Run with --benchmark_repetitions to see the spread on a busy machine.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include <xgrad/xgrad.hpp>

namespace {

using F = xgrad::Tensor<float>;

// One training step, as in examples/fashion_mnist, on a fixed random batch (the data's values do
// not change the work done). Arg: 0 = anomaly mode off, 1 = on.
void BM_TrainStep(benchmark::State& state) {
  const bool anomaly = state.range(0) != 0;
  xgrad::set_num_threads(1);
  xgrad::Generator gen(0);
  xgrad::nn::MLP<float> model({784, 256, 128, 10}, xgrad::nn::Act::ReLU, xgrad::nn::Act::Identity,
                              gen);
  xgrad::optim::SGD<float> sgd(model.parameters(), {.lr = 0.05, .momentum = 0.9});
  const auto x = F::rand({64, 784}, 1);
  std::vector<std::int64_t> y(64);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>(i % 10);
  xgrad::AnomalyGuard guard(anomaly);
  for (auto _ : state) {
    sgd.zero_grad();
    auto loss = xgrad::cross_entropy(model(x), y);
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.item());
  }
  state.SetLabel(anomaly ? "anomaly on" : "anomaly off");
}
BENCHMARK(BM_TrainStep)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// Forward and backward through `n` one-element multiplications: the per-node cost of recording,
// sweeping and freeing, with anomaly mode off or on (items = nodes).
void BM_TinyChain(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const bool anomaly = state.range(1) != 0;
  auto x = F::ones({1}).requires_grad_();
  xgrad::AnomalyGuard guard(anomaly);
  for (auto _ : state) {
    F y = x;
    for (std::size_t i = 0; i < n; ++i) y = y * 1.0f;
    y.backward();
    benchmark::DoNotOptimize(x.grad().value().data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetLabel(anomaly ? "anomaly on" : "anomaly off");
}
BENCHMARK(BM_TinyChain)->Args({1000, 0})->Args({1000, 1});

// The off check by itself: reading the thread-local flag as record() does, per node.
void BM_OffCheckAlone(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(xgrad::is_anomaly_enabled());
}
BENCHMARK(BM_OffCheckAlone);

}  // namespace

BENCHMARK_MAIN();
