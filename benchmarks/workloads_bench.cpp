// The workloads of the side-by-side comparison with xgrad (benchmarks/peers/ holds the same with
// libtorch, under the same names), the SGEMM peak and the GEMM-only floor of each MLP workload.
// Every benchmark takes the thread count as its argument: name/threads:N. Counters: `loss` (the
// final loss, which the peer must match), `flop` (matrix-product work per iteration), `rss_mib`
// (peak resident memory of the process).

#include <benchmark/benchmark.h>
#include <cblas.h>

#include "workloads.hpp"

namespace {

using namespace bench;
using F = xgrad::Tensor<float>;

void finish(benchmark::State& state, double loss, double flop_per_iteration) {
  state.counters["loss"] = loss;
  state.counters["flop"] = flop_per_iteration;
  state.counters["rss_mib"] = peak_rss_mib();
}

void smallest_network(benchmark::State& state) {
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  double loss = 0;
  for (auto _ : state) loss = run_smallest();
  finish(state, loss, 0);
}

void graph_overhead(benchmark::State& state) {
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  const F x = F(tiny_x()).requires_grad_();
  const F y = F(tiny_y());
  double loss = 0;
  for (auto _ : state) loss = run_tiny_chain(x, y);
  finish(state, loss, 0);
}

void image_classifier(benchmark::State& state) {
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  const auto data = image_data();
  const auto init = image_init();
  double loss = 0;
  for (auto _ : state) loss = run_image(data, init);
  finish(state, loss, kImageSteps * mlp_step_flops(image_sizes(), kImageRows));
}

double fashion_flop() {
  const std::size_t n = fashion_data().targets.numel();
  const std::size_t full = n / kFashionBatch;
  return static_cast<double>(full) * mlp_step_flops(fashion_sizes(), kFashionBatch) +
         mlp_step_flops(fashion_sizes(), n - full * kFashionBatch);
}

void fashion_mnist_epoch(benchmark::State& state) {
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  const auto& data = fashion_data();
  const auto init = fashion_init();
  double loss = 0;
  for (auto _ : state) loss = run_fashion_epoch(data, init);
  finish(state, loss, fashion_flop());
}

void wide_mlp_step(benchmark::State& state) {
  // One iteration is one step of a run of exactly kWideSteps timed steps (Iterations below),
  // after one untimed step: the first step allocates and first touches the 40 MB of activations,
  // gradients and momentum that later steps reuse, so the timed steps are the steady state (the
  // state the GEMM floor's warm products describe). The libtorch peer does the same.
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  const auto data = wide_data();
  xgrad::nn::MLP<float> model(wide_sizes(), xgrad::nn::Act::ReLU, xgrad::nn::Act::Identity);
  load(model, wide_init());
  xgrad::optim::SGD<float> sgd(model.parameters(), {.lr = kWideLr, .momentum = kWideMomentum});
  const auto step = [&] {
    sgd.zero_grad();
    auto l = cross_entropy(model(data.inputs), data.targets);
    l.backward();
    sgd.step();
    return l.item();
  };
  double loss = step();
  for (auto _ : state) loss = step();
  finish(state, loss, mlp_step_flops(wide_sizes(), kWideBatch));
}

void pinn_step(benchmark::State& state) {
  // One iteration is one Adam step of a run of exactly kPinnSteps steps (Iterations below).
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  PinnRun run(pinn_init());
  double loss = 0;
  for (auto _ : state) loss = run.step();
  finish(state, loss, 0);
}

void cnn_epoch(benchmark::State& state) {
  // One iteration is the whole run: kCnnImages / kFashionBatch steps on a fresh model.
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  const auto& data = cnn_data();
  const auto init = cnn_init();
  double loss = 0;
  for (auto _ : state) loss = run_cnn(data, init);
  finish(state, loss,
         static_cast<double>(kCnnImages / kFashionBatch) * cnn_step_flops(kFashionBatch));
}

void transformer_step(benchmark::State& state) {
  // One iteration is one AdamW step of a run of exactly kTransformerSteps steps (Iterations
  // below), each on its own batch.
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  TransformerRun run(transformer_init());
  double loss = 0;
  for (auto _ : state) loss = run.step();
  finish(state, loss, transformer_step_flops());
}

// ---- floors ----

// The BLAS alone at `threads` threads while alive. xgrad runs its products on its own threads and
// keeps the BLAS on one, so a floor at 2 threads asks the BLAS for its own threading here, and
// gives it back to xgrad afterwards.
class BlasThreads {
 public:
  explicit BlasThreads(int threads) {
    xgrad::set_num_threads(threads);  // starts xgrad's pool first, which sets the BLAS to 1
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(threads);
#endif
  }
  ~BlasThreads() {
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(1);
#endif
  }
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;
};

void sgemm_peak(benchmark::State& state) {
  const BlasThreads blas(static_cast<int>(state.range(0)));
  const int n = 1024;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n,
                0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  finish(state, 0, 2.0 * n * n * n);
}

// The same product through xgrad's gemm (the dispatcher in front of the BLAS).
void matmul_peak(benchmark::State& state) {
  xgrad::set_num_threads(static_cast<int>(state.range(0)));
  const std::size_t n = 1024;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  for (auto _ : state) {
    xgrad::blas::gemm(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  finish(state, 0, 2.0 * n * n * n);
}

void gemm_floor(benchmark::State& state, std::vector<std::size_t> sizes,
                std::vector<std::size_t> batches) {
  const BlasThreads blas(static_cast<int>(state.range(0)));
  std::size_t max_rows = 0;
  double flop = 0;
  for (std::size_t rows : batches) {
    max_rows = std::max(max_rows, rows);
    flop += mlp_step_flops(sizes, rows);
  }
  GemmFloor floor(sizes, max_rows);
  for (auto _ : state) {
    for (std::size_t rows : batches) floor.step(rows);
  }
  finish(state, 0, flop);
}

void register_all() {
  auto threads = [](benchmark::internal::Benchmark* b) {
    b->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
  };
  threads(benchmark::RegisterBenchmark("smallest_network", smallest_network)
              ->Unit(benchmark::kMillisecond));
  threads(benchmark::RegisterBenchmark("graph_overhead", graph_overhead)
              ->Unit(benchmark::kMicrosecond));
  threads(benchmark::RegisterBenchmark("image_classifier", image_classifier)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(1));
  threads(benchmark::RegisterBenchmark("fashion_mnist_epoch", fashion_mnist_epoch)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(1));
  threads(benchmark::RegisterBenchmark("wide_mlp_step", wide_mlp_step)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(kWideSteps));
  threads(benchmark::RegisterBenchmark("pinn_step", pinn_step)
              ->Unit(benchmark::kMicrosecond)
              ->Iterations(kPinnSteps));
  threads(benchmark::RegisterBenchmark("cnn_epoch", cnn_epoch)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(1));
  threads(benchmark::RegisterBenchmark("transformer_step", transformer_step)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(kTransformerSteps));
  threads(benchmark::RegisterBenchmark("sgemm_peak", sgemm_peak)->Unit(benchmark::kMillisecond));
  threads(benchmark::RegisterBenchmark("matmul_peak", matmul_peak)->Unit(benchmark::kMillisecond));

  std::vector<std::size_t> image_batches(kImageSteps, kImageRows);
  threads(benchmark::RegisterBenchmark("gemm_floor/image_classifier", gemm_floor, image_sizes(),
                                       image_batches)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(1));
  const std::size_t n = 60000;  // Fashion-MNIST's training set, without loading it
  std::vector<std::size_t> fashion_batches(n / kFashionBatch, kFashionBatch);
  if (n % kFashionBatch) fashion_batches.push_back(n % kFashionBatch);
  threads(benchmark::RegisterBenchmark("gemm_floor/fashion_mnist_epoch", gemm_floor,
                                       fashion_sizes(), fashion_batches)
              ->Unit(benchmark::kMillisecond)
              ->Iterations(1));
  threads(benchmark::RegisterBenchmark("gemm_floor/wide_mlp_step", gemm_floor, wide_sizes(),
                                       std::vector<std::size_t>{kWideBatch})
              ->Unit(benchmark::kMillisecond));
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
