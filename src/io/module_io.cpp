// save/load of a whole module: its named parameters through the safetensors paths. Kept apart
// from safetensors.cpp so that using the tensor-level functions does not pull in nn::Module.
//
// The safetensors format has no checksum, so a flipped bit in the data section (almost all of a
// checkpoint) would load as a silently different weight. save() therefore records a CRC-32 of
// the data section in __metadata__ and load() refuses a file whose data does not match it.
// Files from other writers carry no such entry and load as before.

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/io/safetensors.hpp>

#include "safetensors_impl.hpp"

namespace xgrad::io {

namespace {

constexpr const char* kCrcKey = "xgrad.crc32";

std::uint32_t crc_update(std::uint32_t crc, const void* data, std::size_t n) {
  // zlib takes a 32-bit length: large buffers go in pieces.
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {
    const auto piece = static_cast<uInt>(std::min<std::size_t>(n, std::size_t(1) << 30));
    crc = static_cast<std::uint32_t>(::crc32(crc, p, piece));
    p += piece;
    n -= piece;
  }
  return crc;
}

std::string hex32(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

[[noreturn]] void fail(const char* op, const std::string& path, const std::string& what) {
  throw IoError(std::string(op) + ": " + path + ": " + what);
}

// CRC-32 of everything after the header of a file whose header load_named has just validated.
std::uint32_t data_section_crc(const char* op, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char len[8];
  if (!in.read(reinterpret_cast<char*>(len), 8)) fail(op, path, "cannot reread the header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (!in.seekg(static_cast<std::streamoff>(8 + n))) fail(op, path, "cannot seek past the header");
  std::uint32_t crc = static_cast<std::uint32_t>(::crc32(0, Z_NULL, 0));
  std::vector<char> buf(std::size_t(1) << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crc = crc_update(crc, buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) fail(op, path, "reading the data section failed");
  return crc;
}

}  // namespace

template <class T>
void save(const nn::Module<T>& module, const std::string& path) {
  const auto params = module.state_dict();
  // The data section is the parameters' bytes in this order (save_named writes them so).
  std::uint32_t crc = static_cast<std::uint32_t>(::crc32(0, Z_NULL, 0));
  for (const auto& [name, t] : params) {
    crc = crc_update(crc, t.value().data(), t.value().size() * sizeof(T));
  }
  detail::save_named<T>("xgrad::io::save", params, path, {{kCrcKey, hex32(crc)}});
}

template <class T>
void load(nn::Module<T>& module, const std::string& path) {
  const char* op = "xgrad::io::load";
  const auto params = module.state_dict();
  // Read into stand-ins of the same names and shapes, so that the module is written only once
  // the file has passed every check, the checksum included.
  std::vector<std::pair<std::string, Tensor<T>>> staged;
  staged.reserve(params.size());
  for (const auto& [name, t] : params) {
    staged.emplace_back(
        name, t.defined() ? Tensor<T>(Array<T>::from_shape(t.value().shape())) : Tensor<T>());
  }
  detail::load_named<T>(op, staged, path, {"parameter", "the module"});
  const auto metadata = load_metadata(path);
  if (const auto it = metadata.find(kCrcKey); it != metadata.end()) {
    const std::string actual = hex32(data_section_crc(op, path));
    if (it->second != actual) {
      fail(op, path,
           "the data section's CRC-32 is " + actual + " but the header records " + it->second +
               " (__metadata__ \"" + kCrcKey + "\"): the file is damaged");
    }
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor<T> handle = params[i].second;  // shares the module's value
    const Array<T>& src = staged[i].second.value();
    Array<T>& dst = handle.mutable_value();
    if (src.size()) std::copy(src.data(), src.data() + src.size(), dst.data());
  }
}

#define XGRAD_INSTANTIATE_MODULE_IO(T)                             \
  template void save<T>(const nn::Module<T>&, const std::string&); \
  template void load<T>(nn::Module<T>&, const std::string&);

XGRAD_INSTANTIATE_MODULE_IO(float)
XGRAD_INSTANTIATE_MODULE_IO(double)

}  // namespace xgrad::io
