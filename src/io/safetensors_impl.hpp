#pragma once
// Shared by safetensors.cpp and module_io.cpp: the save and load paths with the operation name
// and wording of their messages as parameters, so that io::load reports "xgrad::io::load: ..."
// and speaks of the module's parameters.

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

template <class T>
void save_named(const char* op, const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
                const std::string& path, const std::map<std::string, std::string>& metadata);

template <class T>
void load_named(const char* op, const std::vector<std::pair<std::string, Tensor<T>>>& targets,
                const std::string& path, const Receiver& receiver);

}  // namespace xgrad::io::detail
