// save/load of a whole module: its named parameters through the safetensors paths. Kept apart
// from safetensors.cpp so that using the tensor-level functions does not pull in nn::Module.

#include <xgrad/io/safetensors.hpp>

#include "safetensors_impl.hpp"

namespace xgrad::io {

template <class T>
void save(const nn::Module<T>& module, const std::string& path) {
  detail::save_named<T>("xgrad::io::save", module.named_parameters(), path, {});
}

template <class T>
void load(nn::Module<T>& module, const std::string& path) {
  detail::load_named<T>("xgrad::io::load", module.named_parameters(), path,
                        {"parameter", "the module"});
}

#define XGRAD_INSTANTIATE_MODULE_IO(T)                             \
  template void save<T>(const nn::Module<T>&, const std::string&); \
  template void load<T>(nn::Module<T>&, const std::string&);

XGRAD_INSTANTIATE_MODULE_IO(float)
XGRAD_INSTANTIATE_MODULE_IO(double)

}  // namespace xgrad::io
