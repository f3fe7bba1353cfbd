// Data-parallel training over MPI. Run alone for the one-process baseline and under
// `mpirun -np 2` for two processes (one BLAS thread each):
//
//   build/release/benchmarks/distributed_bench
//   mpirun -np 2 build/release/benchmarks/distributed_bench
//
// Rows: the Fashion-MNIST epoch of the demo (784-256-128-10, SGD with momentum) at global batch 64
// and 256, each process taking its share of every batch, with the gradient exchange and without
// it (`fashion_epoch_no_exchange`: the compute alone); with two or more processes also
// all_reduce of one bucket per size (time, algorithm bandwidth and ring "bus" bandwidth). The
// epoch rows count `hidden`: the fraction of the gradient exchange that overlapped the backward
// (1 - end-of-pass wait / communication span, over the epoch). Every process runs every row with
// fixed iteration counts (Google Benchmark's adaptive counts could differ between processes and
// leave them in different collectives); process 0 reports.
//
// `--dump-order FILE` writes the sample order of the epoch (a .npy of indices) for
// peers/torch_ddp.py, which times PyTorch DistributedDataParallel on the same data and order.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

#include "workloads.hpp"

namespace {

using namespace xgrad;
using namespace ::bench;

dist::ProcessGroup* world = nullptr;

// exchange = false runs every backward under no_sync(): the processes compute their shares and
// exchange nothing, the ceiling of what the exchange could hide behind.
void run_fashion_epoch(benchmark::State& state, bool exchange) {
  const auto global_batch = static_cast<std::size_t>(state.range(0));
  const auto processes = static_cast<std::size_t>(world->size());
  const auto& data = fashion_data();
  const auto init = fashion_init();
  double hidden_sum = 0;
  std::size_t passes = 0;
  for (auto _ : state) {
    nn::MLP<float> model(fashion_sizes(), nn::Act::ReLU, nn::Act::Identity);
    load(model, init);
    std::optional<dist::DataParallel<float>> ddp;
    if (processes > 1) ddp.emplace(model, *world);
    optim::SGD<float> sgd(model.parameters(), {.lr = kFashionLr, .momentum = kFashionMomentum});
    const data::DataLoaderOptions options{
        .batch_size = global_batch / processes, .shuffle = true, .seed = kFashionSeed};
    auto loader = processes > 1 ? data::DataLoader<float>(data.inputs, data.targets, options,
                                                          dist::DistributedSampler(*world))
                                : data::DataLoader<float>(data.inputs, data.targets, options);
    world->barrier();
    double loss_sum = 0;
    for (const auto& batch : loader) {
      sgd.zero_grad();
      auto loss = cross_entropy(model(batch.inputs), batch.targets);
      if (ddp && !exchange) {
        const auto local = ddp->no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
      sgd.step();
      loss_sum += loss.item();
      if (ddp && exchange) {
        const auto stats = ddp->last_stats();
        if (stats.comm_seconds > 0) hidden_sum += 1.0 - stats.wait_seconds / stats.comm_seconds;
        ++passes;
      }
    }
    world->barrier();
    benchmark::DoNotOptimize(loss_sum);
  }
  state.counters["processes"] = static_cast<double>(processes);
  if (passes) state.counters["hidden"] = hidden_sum / static_cast<double>(passes);
}
void register_epochs() {
  for (const bool exchange : {true, false}) {
    benchmark::RegisterBenchmark(
        exchange ? "fashion_epoch" : "fashion_epoch_no_exchange",
        [exchange](benchmark::State& state) { run_fashion_epoch(state, exchange); })
        ->Arg(64)
        ->Arg(256)
        ->Iterations(1)
        ->Repetitions(3)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

void all_reduce(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  std::vector<float> bucket(bytes / sizeof(float), 1.0f);
  world->barrier();
  for (auto _ : state) {
    world->all_reduce(std::span<float>(bucket));
    benchmark::ClobberMemory();
  }
  const double n = world->size();
  const auto total = static_cast<double>(bytes) * static_cast<double>(state.iterations());
  state.counters["algbw"] =
      benchmark::Counter(total, benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
  // A ring all_reduce moves 2 (n - 1) / n of the buffer through every link.
  state.counters["busbw"] = benchmark::Counter(total * 2 * (n - 1) / n, benchmark::Counter::kIsRate,
                                               benchmark::Counter::kIs1024);
}

void register_all_reduce() {
  for (std::size_t bytes = 4 << 10; bytes <= (std::size_t(64) << 20); bytes *= 4) {
    // About 256 MiB per row, at least 5 calls: the same counts on every process.
    const auto iterations = static_cast<benchmark::IterationCount>(
        std::max<std::size_t>(5, (std::size_t(256) << 20) / bytes / 4));
    benchmark::RegisterBenchmark("all_reduce", all_reduce)
        ->Arg(static_cast<std::int64_t>(bytes))
        ->Iterations(iterations)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
}

/// Reports nothing: the processes other than 0 run every row but print none.
class Silent : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  auto group = dist::init(argc, argv);
  world = &group;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--dump-order") == 0) {
      const auto order = fashion_order();
      data::write_npy(Tensor<double>::from(order, {order.size()}), argv[i + 1]);
      return 0;
    }
  }
  xgrad::set_num_threads(1);  // one BLAS thread per process
  register_epochs();
  if (group.size() > 1) register_all_reduce();
  // Only process 0 writes --benchmark_out: the others drop the flag.
  std::vector<char*> args(argv, argv + argc);
  if (group.rank() != 0) {
    std::erase_if(args, [](const char* a) { return std::strncmp(a, "--benchmark_out", 15) == 0; });
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (group.rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    Silent silent;
    benchmark::RunSpecifiedBenchmarks(&silent);
  }
  benchmark::Shutdown();
  return 0;
}
