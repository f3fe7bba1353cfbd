// libFuzzer target for the safetensors reader; see fuzz_targets.hpp for what one input means.

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const xgrad::fuzz::ScratchFile file("safetensors");
  xgrad::fuzz::run_safetensors(data, size, file);
  return 0;
}
