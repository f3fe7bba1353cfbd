#pragma once
// What every example shares: the standard flags and the output folder.

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <xgrad/profiler.hpp>
#include <xgrad/xt.hpp>

namespace examples {

struct Flags {
  int epochs;
  double lr;
  std::size_t batch_size;
  std::uint64_t seed = 0;
  int threads = 0;  // 0: xgrad's default (the environment's BLAS threads, else every core)
  std::string out = "out";
};

/// Registers --epochs --lr --batch-size --seed --threads --out with the example's defaults.
inline void add_common_flags(CLI::App& app, Flags& f) {
  app.add_option("--epochs", f.epochs, "passes over the training data")->capture_default_str();
  app.add_option("--lr", f.lr, "learning rate")->capture_default_str();
  app.add_option("--batch-size", f.batch_size, "examples per step")->capture_default_str();
  app.add_option("--seed", f.seed, "seed of every random choice")->capture_default_str();
  app.add_option("--threads", f.threads,
                 "threads to compute on (0: OPENBLAS_NUM_THREADS, else one per core)")
      ->capture_default_str();
  app.add_option("--out", f.out, "folder for plots and checkpoints")->capture_default_str();
}

/// Applies --threads (when not 0) and creates --out; returns the output folder.
inline std::filesystem::path prepare(const Flags& f) {
  if (f.threads > 0) xgrad::set_num_threads(f.threads);
  std::filesystem::create_directories(f.out);
  return std::filesystem::path(f.out);
}

/// Stops `prof` (recording one epoch) and prints its table of `rows` ops and the epoch's GEMM
/// floor.
inline void print_profile(xgrad::profiler::Profile& prof, int epoch, std::size_t steps,
                          std::size_t rows) {
  prof.stop();
  const double floor = prof.gemm_floor();
  std::printf("\nprofile of epoch %d (%zu steps):\n%s", epoch, steps, prof.table(rows).c_str());
  std::printf(
      "GEMM floor (the same products through the BLAS alone): %.1f ms, %.0f%% of the epoch\n",
      floor * 1e3, 100 * floor / prof.wall_time());
}

}  // namespace examples
