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
TEST(FuzzRegression, Hdf5) {
  EXPECT_GE(replay("hdf5", xgrad::fuzz::run_hdf5), 2u);
}
