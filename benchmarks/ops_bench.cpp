// Single operations, forward and forward + backward, each beside its floor:
//   - matmul against a direct cblas_sgemm on the same shapes (forward) and three of them (forward
//     plus the two gradient products);
//   - small products (below 64^3) at 1 and 2 threads, which threading must not slow down;
//   - skinny products (one side of C at most 16 wide), xgrad::blas::gemm against cblas_sgemm;
//   - elementwise ops and sum on 1M elements against plain vectorised loops that do the same
//     memory work: the value, then the gradients added into the leaves' existing buffers.
// The graph overhead per node (a 10-op chain on 4x4) is `graph_overhead` in workloads_bench.

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>
#include <vector>

#include <xgrad/xgrad.hpp>
#include <xsimd/xsimd.hpp>

namespace {

using F = xgrad::Tensor<float>;
using B = xsimd::batch<float>;
constexpr std::size_t kLanes = B::size;
constexpr std::size_t kMillion = std::size_t(1) << 20;

void set_flops(benchmark::State& state, double flop) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      flop, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

std::vector<float> random_vector(std::size_t n, std::uint64_t seed) {
  const auto t = F::randn({n}, seed);
  return std::vector<float>(t.value().begin(), t.value().end());
}

// ---- matmul ----

void sgemm_floor(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  xgrad::set_num_threads(static_cast<int>(state.range(1)));
  const auto a = random_vector(std::size_t(n) * n, 1);
  const auto b = random_vector(std::size_t(n) * n, 2);
  std::vector<float> c(std::size_t(n) * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n,
                0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * n * n * n);
}

// Forward and the two gradient products (dA = dC B^T, dB = A^T dC), accumulated into existing
// gradient buffers as an engine must.
void sgemm_fwdbwd_floor(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  xgrad::set_num_threads(static_cast<int>(state.range(1)));
  const auto a = random_vector(std::size_t(n) * n, 1);
  const auto b = random_vector(std::size_t(n) * n, 2);
  const std::vector<float> dc(std::size_t(n) * n, 1.f);
  std::vector<float> c(std::size_t(n) * n), da(c.size()), db(c.size());
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n,
                0.f, c.data(), n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.f, dc.data(), n, b.data(), n,
                1.f, da.data(), n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, dc.data(), n,
                1.f, db.data(), n);
    benchmark::DoNotOptimize(db.data());
  }
  set_flops(state, 6.0 * n * n * n);
}

void matmul_fwd(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  xgrad::set_num_threads(static_cast<int>(state.range(1)));
  const auto a = F::randn({n, n}, 1);
  const auto b = F::randn({n, n}, 2);
  for (auto _ : state) {
    auto c = xgrad::matmul(a, b);
    benchmark::DoNotOptimize(c.value().data());
  }
  set_flops(state, 2.0 * n * n * n);
}

void matmul_fwdbwd(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  xgrad::set_num_threads(static_cast<int>(state.range(1)));
  auto a = F::randn({n, n}, 1).requires_grad_();
  auto b = F::randn({n, n}, 2).requires_grad_();
  // A tensor, so that each pass reads it in place (an Array seed is copied into one per pass).
  const F seed(xgrad::Array<float>(xgrad::Shape{n, n}, 1.f));
  for (auto _ : state) {
    xgrad::matmul(a, b).backward(seed);
    benchmark::DoNotOptimize(a.grad().value().data());
  }
  set_flops(state, 6.0 * n * n * n);
}

void matmul_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"});
  for (int n : {8, 16, 32, 48}) b->Args({n, 1})->Args({n, 2});
  for (int n : {64, 128, 256, 512, 1024}) b->Args({n, 1});
}

BENCHMARK(sgemm_floor)->Apply(matmul_args);
BENCHMARK(matmul_fwd)->Apply(matmul_args);
BENCHMARK(sgemm_fwdbwd_floor)->Apply(matmul_args);
BENCHMARK(matmul_fwdbwd)->Apply(matmul_args);

// ---- skinny products: xgrad::blas::gemm against cblas_sgemm ----

// Args: m, n, k, trans_a, trans_b, threads; C = op(A) op(B) with beta = 0.
template <bool Xgrad>
void skinny_gemm(benchmark::State& state) {
  const auto m = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::size_t>(state.range(1));
  const auto k = static_cast<std::size_t>(state.range(2));
  const bool ta = state.range(3) != 0;
  const bool tb = state.range(4) != 0;
  xgrad::set_num_threads(static_cast<int>(state.range(5)));
  const auto a = random_vector(m * k, 1);
  const auto b = random_vector(k * n, 2);
  std::vector<float> c(m * n);
  const std::size_t lda = ta ? m : k;
  const std::size_t ldb = tb ? k : n;
  for (auto _ : state) {
    if constexpr (Xgrad) {
      xgrad::blas::gemm(ta, tb, m, n, k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(), n);
    } else {
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                  static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.f, a.data(),
                  static_cast<int>(lda), b.data(), static_cast<int>(ldb), 0.f, c.data(),
                  static_cast<int>(n));
    }
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * static_cast<double>(m * n * k));
}

void skinny_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "ta", "tb", "threads"});
  // The image classifier's first layer: forward X W^T and the weight gradient dY^T X.
  for (int threads : {1, 2}) {
    b->Args({209, 8, 4096, 0, 1, threads});
    b->Args({8, 4096, 209, 1, 0, threads});
  }
  // A 10-way classifier head, small and large, in linear's (forward, weight gradient) and
  // matmul's (A B, A^T B, A B^T) forms.
  b->Args({64, 10, 128, 0, 1, 1});
  b->Args({10, 128, 64, 1, 0, 1});
  for (int threads : {1, 2}) {
    b->Args({1024, 10, 1024, 0, 1, threads});
    b->Args({10, 1024, 1024, 1, 0, threads});
    b->Args({1024, 10, 1024, 0, 0, threads});
    b->Args({1024, 10, 1024, 1, 0, threads});
  }
}

BENCHMARK_TEMPLATE(skinny_gemm, true)->Name("skinny_gemm/xgrad")->Apply(skinny_args);
BENCHMARK_TEMPLATE(skinny_gemm, false)->Name("skinny_gemm/cblas")->Apply(skinny_args);

// ---- elementwise and sum on 1M elements ----

static_assert(kMillion % kLanes == 0, "the floors have no scalar tail");

// y[i] = f(x[i]), a batch of lanes at a time.
template <class Fn>
void map1(const float* x, float* y, std::size_t n, Fn f) {
  for (std::size_t i = 0; i < n; i += kLanes) f(B::load_unaligned(x + i)).store_unaligned(y + i);
}

// y[i] = f(x[i], z[i]).
template <class Fn>
void map2(const float* x, const float* z, float* y, std::size_t n, Fn f) {
  for (std::size_t i = 0; i < n; i += kLanes) {
    f(B::load_unaligned(x + i), B::load_unaligned(z + i)).store_unaligned(y + i);
  }
}

// acc[i] += f(x[i], z[i]).
template <class Fn>
void accumulate2(const float* x, const float* z, float* acc, std::size_t n, Fn f) {
  for (std::size_t i = 0; i < n; i += kLanes) {
    (B::load_unaligned(acc + i) + f(B::load_unaligned(x + i), B::load_unaligned(z + i)))
        .store_unaligned(acc + i);
  }
}

// The floor of each op: forward, then (when `backward`) the gradient for every input added into
// its buffer, given the output's gradient g.
struct Floor {
  std::vector<float> a = random_vector(kMillion, 1), b = random_vector(kMillion, 2);
  std::vector<float> out = std::vector<float>(kMillion), g = std::vector<float>(kMillion, 1.f);
  std::vector<float> ga = std::vector<float>(kMillion), gb = std::vector<float>(kMillion);
};

void floor_add(Floor& f, bool backward) {
  map2(f.a.data(), f.b.data(), f.out.data(), kMillion, [](B x, B y) { return x + y; });
  if (!backward) return;
  accumulate2(f.g.data(), f.g.data(), f.ga.data(), kMillion, [](B g, B) { return g; });
  accumulate2(f.g.data(), f.g.data(), f.gb.data(), kMillion, [](B g, B) { return g; });
}
void floor_mul(Floor& f, bool backward) {
  map2(f.a.data(), f.b.data(), f.out.data(), kMillion, [](B x, B y) { return x * y; });
  if (!backward) return;
  accumulate2(f.g.data(), f.b.data(), f.ga.data(), kMillion, [](B g, B y) { return g * y; });
  accumulate2(f.g.data(), f.a.data(), f.gb.data(), kMillion, [](B g, B x) { return g * x; });
}
void floor_exp(Floor& f, bool backward) {
  map1(f.a.data(), f.out.data(), kMillion, [](B x) { return xsimd::exp(x); });
  if (!backward) return;
  accumulate2(f.g.data(), f.out.data(), f.ga.data(), kMillion, [](B g, B y) { return g * y; });
}
void floor_sigmoid(Floor& f, bool backward) {
  map1(f.a.data(), f.out.data(), kMillion, [](B x) { return B(1.f) / (B(1.f) + xsimd::exp(-x)); });
  if (!backward) return;
  accumulate2(f.g.data(), f.out.data(), f.ga.data(), kMillion,
              [](B g, B y) { return g * y * (B(1.f) - y); });
}
void floor_relu(Floor& f, bool backward) {
  map1(f.a.data(), f.out.data(), kMillion, [](B x) { return xsimd::max(x, B(0.f)); });
  if (!backward) return;
  accumulate2(f.g.data(), f.out.data(), f.ga.data(), kMillion,
              [](B g, B y) { return xsimd::select(y > B(0.f), g, B(0.f)); });
}
void floor_sum(Floor& f, bool backward) {
  B acc(0.f);
  for (std::size_t i = 0; i < kMillion; i += kLanes) acc += B::load_unaligned(f.a.data() + i);
  f.out[0] = xsimd::hadd(acc);
  if (!backward) return;
  const B g(f.g[0]);
  for (std::size_t i = 0; i < kMillion; i += kLanes) {
    (B::load_unaligned(f.ga.data() + i) + g).store_unaligned(f.ga.data() + i);
  }
}

template <void (*Op)(Floor&, bool)>
void floor_bench(benchmark::State& state) {
  Floor f;
  const bool backward = state.range(0) != 0;
  for (auto _ : state) {
    Op(f, backward);
    benchmark::DoNotOptimize(f.out.data());
    benchmark::DoNotOptimize(f.ga.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kMillion));
}

template <class Op>
void xgrad_bench(benchmark::State& state, Op op) {
  const bool backward = state.range(0) != 0;
  auto a = F::randn({kMillion}, 1).requires_grad_(backward);
  auto b = F::randn({kMillion}, 2).requires_grad_(backward);
  F out = op(a, b);
  // [1M], or [] for sum; a tensor, read in place by each pass.
  const F seed(xgrad::Array<float>(out.value().shape(), 1.f));
  // The leaves' gradient buffers exist, as they do from the second training step on.
  if (backward) out.backward(seed);
  for (auto _ : state) {
    out = op(a, b);
    if (backward) out.backward(seed);
    benchmark::DoNotOptimize(out.value().data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kMillion));
}

#define XGRAD_OP_BENCH(name, floor, expr)                                              \
  void name(benchmark::State& state) {                                                 \
    xgrad_bench(state, [](const F& a, const F& b) {                                    \
      (void)b;                                                                         \
      return expr;                                                                     \
    });                                                                                \
  }                                                                                    \
  BENCHMARK(name)->ArgName("backward")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond); \
  BENCHMARK_TEMPLATE(floor_bench, floor)                                               \
      ->ArgName("backward")                                                            \
      ->Arg(0)                                                                         \
      ->Arg(1)                                                                         \
      ->Unit(benchmark::kMicrosecond)                                                  \
      ->Name(#name "_floor");

XGRAD_OP_BENCH(add_1m, floor_add, a + b)
XGRAD_OP_BENCH(mul_1m, floor_mul, a* b)
XGRAD_OP_BENCH(exp_1m, floor_exp, a.exp())
XGRAD_OP_BENCH(sigmoid_1m, floor_sigmoid, a.sigmoid())
XGRAD_OP_BENCH(relu_1m, floor_relu, a.relu())
XGRAD_OP_BENCH(sum_1m, floor_sum, a.sum())

}  // namespace

BENCHMARK_MAIN();
