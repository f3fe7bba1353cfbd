// Single operations forward + backward, against their floors: raw cblas_sgemm for matmul and a
// plain loop for elementwise work; and the graph overhead of a chain of tiny ops.

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <xgrad/xgrad.hpp>

namespace {

using F = xgrad::Tensor<float>;

void BM_SgemmFloor(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  xgrad::Array<float> a = F::randn({n, n}, 1).value();
  xgrad::Array<float> b = F::randn({n, n}, 2).value();
  xgrad::Array<float> c = xgrad::Array<float>::from_shape({n, n});
  const int m = static_cast<int>(n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.f, a.data(), m, b.data(), m,
                0.f, c.data(), m);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_SgemmFloor)->RangeMultiplier(4)->Range(16, 1024);

void BM_MatmulForward(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto a = F::randn({n, n}, 1);
  auto b = F::randn({n, n}, 2);
  for (auto _ : state) {
    auto c = xgrad::matmul(a, b);
    benchmark::DoNotOptimize(c.value().data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_MatmulForward)->RangeMultiplier(4)->Range(16, 1024);

void BM_MatmulForwardBackward(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto a = F::randn({n, n}, 1).requires_grad_();
  auto b = F::randn({n, n}, 2).requires_grad_();
  const xgrad::Array<float> seed(xgrad::Shape{n, n}, 1.f);
  for (auto _ : state) {
    auto c = xgrad::matmul(a, b);
    c.backward(seed);
    benchmark::DoNotOptimize(a.grad().data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      6.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_MatmulForwardBackward)->RangeMultiplier(4)->Range(16, 1024);

void BM_LoopFloorAdd(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  xgrad::Array<float> a = F::randn({n}, 1).value();
  xgrad::Array<float> b = F::randn({n}, 2).value();
  xgrad::Array<float> c = xgrad::Array<float>::from_shape({n});
  for (auto _ : state) {
    const float* pa = a.data();
    const float* pb = b.data();
    float* pc = c.data();
    for (std::size_t i = 0; i < n; ++i) pc[i] = pa[i] + pb[i];
    benchmark::DoNotOptimize(pc);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_LoopFloorAdd)->Range(1 << 10, 1 << 20);

void BM_AddForward(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto a = F::randn({n}, 1);
  auto b = F::randn({n}, 2);
  for (auto _ : state) {
    auto c = a + b;
    benchmark::DoNotOptimize(c.value().data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_AddForward)->Range(1 << 10, 1 << 20);

void BM_SigmoidForwardBackward(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto a = F::randn({n}, 1).requires_grad_();
  const xgrad::Array<float> seed(xgrad::Shape{n}, 1.f);
  for (auto _ : state) {
    xgrad::sigmoid(a).backward(seed);
    benchmark::DoNotOptimize(a.grad().data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_SigmoidForwardBackward)->Range(1 << 10, 1 << 20);

// Graph overhead: ten elementwise ops on a 4x4 tensor, forward and backward.
void BM_TinyChainForwardBackward(benchmark::State& state) {
  auto x = F::randn({4, 4}, 1).requires_grad_();
  auto y = F::randn({4, 4}, 2);
  for (auto _ : state) {
    auto h = x * y;
    h = h + y;
    h = h.sigmoid();
    h = h * 2.0f;
    h = h - y;
    h = h.tanh();
    h = h + 1.0f;
    h = h * h;
    h = h.exp();
    auto loss = h.sum();
    loss.backward();
    benchmark::DoNotOptimize(x.grad().data());
  }
  state.SetItemsProcessed(state.iterations() * 10);
}
BENCHMARK(BM_TinyChainForwardBackward);

}  // namespace

BENCHMARK_MAIN();
