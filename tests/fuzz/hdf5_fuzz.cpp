// libFuzzer target for the hdf5 reader; see fuzz_targets.hpp for what one input means.

#include "fuzz_targets.hpp"

// libhdf5 (1.10, not instrumented) leaks parts of its metadata cache when it gives up on a damaged
// object header, under our H5Dopen2/H5Gopen2 calls whose handles are all closed: those leaks are
// the library's, and would stop every run within seconds. The suppression covers only allocations
// whose stack passes through libhdf5; leaks of memory xgrad allocates itself are still reported.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libhdf5\n";
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const xgrad::fuzz::ScratchFile file("hdf5");
  xgrad::fuzz::run_hdf5(data, size, file);
  return 0;
}
