// Prints the alignment of xtensor's default allocator under the flags the library is built with
// (see XGRAD_ISA_FLAGS in CMakeLists.txt); configure_file records it in xgrad/config.hpp.
#include <xtensor/xtensor_config.hpp>

#include <cstdio>

int main() {
  std::printf("%d\n", static_cast<int>(XTENSOR_DEFAULT_ALIGNMENT));
  return 0;
}
