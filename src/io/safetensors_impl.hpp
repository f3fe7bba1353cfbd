#pragma once
// Shared by safetensors.cpp and module_io.cpp: the save and load paths with the operation name
// and wording of their messages as parameters, so that io::load reports "xgrad::io::load: ..."
// and speaks of the module's parameters.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/io/safetensors.hpp>

namespace xgrad::io::detail {

/// How load_named refers to the receiving side in its messages.
struct Receiver {
  const char* item;    // "parameter"
  const char* holder;  // "the module"
};

/// One tensor to write: F32 or F64 bytes of `shape`.
struct RawTensor {
  std::string name;
  const char* dtype;  // "F32" or "F64"
  Shape shape;
  const void* data;
  std::size_t nbytes;
};

/// Writes `tensors` (names unique, not "__metadata__": ValueError) and `metadata` atomically.
void write_raw(const char* op, const std::vector<RawTensor>& tensors, const std::string& path,
               const std::map<std::string, std::string>& metadata);

/// Every tensor of a validated file in double (exact for F32, F64 and BF16), with its dtype.
struct LoadedTensor {
  std::string name;
  std::string dtype;
  Array<double> value;
};
struct LoadedFile {
  std::vector<LoadedTensor> tensors;  // in the order of their data
  std::map<std::string, std::string> metadata;
  std::uint32_t data_crc32 = 0;  // CRC-32 of the data section as read
};
LoadedFile read_raw(const char* op, const std::string& path);

template <class T>
void save_named(const char* op, const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
                const std::string& path, const std::map<std::string, std::string>& metadata);

template <class T>
void load_named(const char* op, const std::vector<std::pair<std::string, Tensor<T>>>& targets,
                const std::string& path, const Receiver& receiver);

}  // namespace xgrad::io::detail
