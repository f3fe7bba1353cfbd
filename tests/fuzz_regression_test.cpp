// Replays the fuzzers' inputs in the normal suite: every file of tests/fuzz/regressions/<reader>/
// (inputs that once crashed, leaked or hung a reader) and of the seed corpus tests/fuzz/corpus/
// <reader>/ goes through the same call as in the fuzz target, which may raise xgrad::Error and
// nothing else. Under the sanitizer build this also checks them for leaks and memory errors.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.hpp"

namespace {

namespace fs = std::filesystem;
using xgrad::fuzz::Bytes;
using xgrad::fuzz::ScratchFile;

const fs::path kFuzzDir = fs::path(XGRAD_TEST_DATA_DIR).parent_path() / "fuzz";

/// Files of one folder in name order; none when the folder does not exist.
std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Runs `run` on every regression input and seed of `reader`; returns how many ran.
template <class Run>
std::size_t replay(const std::string& reader, Run run) {
  const ScratchFile scratch("replay_" + reader);
  std::size_t n = 0;
  for (const auto& dir : {kFuzzDir / "regressions" / reader, kFuzzDir / "corpus" / reader}) {
    for (const auto& file : files_in(dir)) {
      SCOPED_TRACE(file.string());
      const Bytes bytes = read_all(file);
      EXPECT_NO_THROW(run(bytes.data(), bytes.size(), scratch));
      ++n;
    }
  }
  return n;
}

}  // namespace

// A seed corpus is never empty, so a wrong path cannot make these pass by running nothing.
TEST(FuzzRegression, Idx) {
  EXPECT_GE(replay("idx", xgrad::fuzz::run_idx), 5u);
}
TEST(FuzzRegression, Csv) {
  EXPECT_GE(replay("csv", xgrad::fuzz::run_csv), 5u);
}
TEST(FuzzRegression, Npy) {
  EXPECT_GE(replay("npy", xgrad::fuzz::run_npy), 5u);
}
TEST(FuzzRegression, Safetensors) {
  EXPECT_GE(replay("safetensors", xgrad::fuzz::run_safetensors), 5u);
}
TEST(FuzzRegression, Checkpoint) {
  EXPECT_GE(replay("checkpoint", xgrad::fuzz::run_checkpoint), 5u);
}
// The checkpoint seeds are written in Python from the documented layout: the valid ones must
// load, or the fuzzer would start from files it never gets past.
TEST(FuzzRegression, CheckpointSeedsWrittenInPythonLoad) {
  const ScratchFile scratch("seed_checkpoint");
  const std::string global_state = xgrad::default_generator().get_state();
  const Bytes bytes = read_all(kFuzzDir / "corpus" / "checkpoint" / "checkpoint");
  xgrad::fuzz::CheckpointModel model;
  xgrad::optim::SGD<double> sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  xgrad::optim::StepLR<double> schedule(sgd, 3, 0.9);
  xgrad::data::DataLoader<double> loader(xgrad::Tensor<double>::zeros({4, 3}),
                                         xgrad::Tensor<double>::zeros({4}));
  xgrad::io::Checkpoint<double> ckpt{
      .model = &model, .optimizer = &sgd, .scheduler = &schedule, .loader = &loader};
  xgrad::io::load_checkpoint(ckpt, scratch.write(bytes));
  EXPECT_EQ(ckpt.epoch, 2);
  EXPECT_EQ(ckpt.step, 14);
  EXPECT_EQ(ckpt.metadata.at("note"), "seed");
  EXPECT_EQ(sgd.lr(), 0.05);
  EXPECT_EQ(schedule.last_epoch(), 2);
  EXPECT_EQ(loader.epoch(), 2u);
  EXPECT_EQ(model.parameters()[0].value()(1, 2), 3.0);
  xgrad::io::load(model, scratch.write(read_all(kFuzzDir / "corpus" / "checkpoint" / "module")));
  EXPECT_EQ(model.parameters()[1].value()(1), -0.2);
  xgrad::default_generator().set_state(global_state);
}
TEST(FuzzRegression, Hdf5) {
  EXPECT_GE(replay("hdf5", xgrad::fuzz::run_hdf5), 2u);
}
