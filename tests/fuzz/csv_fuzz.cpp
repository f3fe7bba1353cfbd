// libFuzzer target for the csv reader; see fuzz_targets.hpp for what one input means.

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const xgrad::fuzz::ScratchFile file("csv");
  xgrad::fuzz::run_csv(data, size, file);
  return 0;
}
