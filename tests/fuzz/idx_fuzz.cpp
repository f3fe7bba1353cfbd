// libFuzzer target for the idx reader; see fuzz_targets.hpp for what one input means.

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const xgrad::fuzz::ScratchFile file("idx");
  xgrad::fuzz::run_idx(data, size, file);
  return 0;
}
