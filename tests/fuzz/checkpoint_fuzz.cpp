// libFuzzer target for module checkpoints; see fuzz_targets.hpp for what one input means.

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const xgrad::fuzz::ScratchFile file("checkpoint");
  xgrad::fuzz::run_checkpoint(data, size, file);
  return 0;
}
