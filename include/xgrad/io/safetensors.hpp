#pragma once
// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), so that
// weights move between xgrad, PyTorch, JAX and NumPy without pickle:
//
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   JSON: {"name": {"dtype": "F32", "shape": [2,3], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"key": "value"}}, padded with spaces to a multiple of 8
//   the rest  raw little-endian row-major data; offsets count from the start of this section,
//             and the tensors cover it exactly, with no gap, overlap or trailing byte
//
// Writes are atomic (temporary file, fsync, rename, fsync of the directory), so a crash or a full
// disk never leaves a damaged checkpoint behind. A symbolic link is written through to its target;
// an existing file keeps its permission bits and (where allowed) its group; a path that exists but
// is not a regular file (a device, a FIFO) is refused with IoError and left as it was. Temporary
// files are hidden (".<name>.<hash>.xgrad-tmp.<pid>.<random>.tmp"); one left by a killed save is
// removed by a later save of the same file once its process is gone. Reads refuse anything but
// a regular file before they could block, and check every field and offset against the file
// before trusting it; any fault raises IoError naming the path, the tensor and the byte. A double
// beyond float's range, loaded as float, is such a fault (it would become inf).

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/error.hpp>
#include <xgrad/nn/module.hpp>
#include <xgrad/tensor.hpp>

namespace xgrad::io {

/// Writes `tensors` to `path` as F32 (float) or F64 (double), header and data in the order given,
/// with `metadata` as "__metadata__" when not empty. Replaces `path` atomically. Names must be
/// unique, valid UTF-8 and not "__metadata__" (ValueError); I/O failures raise IoError.
template <class T>
void save_tensors(const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
                  const std::string& path, const std::map<std::string, std::string>& metadata = {});

/// Every tensor of a safetensors file converted to T, in the order of their data in the file
/// (which is the order save_tensors was given; empty tensors at one offset by name). Reads F32,
/// F64 and BF16, and I64 and I32 values that T holds exactly (up to 2^24 in magnitude for float,
/// 2^53 for double); other dtypes, larger integers and any malformed file raise IoError.
template <class T>
std::vector<std::pair<std::string, Array<T>>> load_tensors(const std::string& path);

/// The "__metadata__" map of a safetensors file ({} if it has none), after validating the file.
std::map<std::string, std::string> load_metadata(const std::string& path);

/// Copies a file's tensors into `tensors` by name, all or nothing: the names must match exactly
/// and the shapes agree, else IoError listing every offending name and shape, with no tensor
/// modified. Values are written through mutable_value(), so handles keep sharing them.
template <class T>
void load_into(const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
               const std::string& path);

/// Saves every parameter and buffer of `module` under its dotted name (state_dict()), with a
/// CRC-32 of the data section as __metadata__ "xgrad.crc32".
template <class T>
void save(const nn::Module<T>& module, const std::string& path);

/// Loads a checkpoint into `module`'s parameters and buffers, all or nothing (see load_into). A
/// file that records "xgrad.crc32" must match it (IoError otherwise): a flipped bit in the data is
/// refused.
template <class T>
void load(nn::Module<T>& module, const std::string& path);

}  // namespace xgrad::io
