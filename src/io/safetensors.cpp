// The safetensors format: validation of untrusted files, conversion to float/double, and atomic
// writes. A file is parsed into a list of checked entries first; no tensor data is read, and no
// destination touched, until every entry has been checked against the file's real size.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <zlib.h>

#include <xgrad/io/safetensors.hpp>

#include "core/atomic_file.hpp"
#include "safetensors_impl.hpp"

namespace xgrad::io {

namespace {

// Tensor bytes are copied to and from memory as they are; the format is little-endian.
static_assert(std::endian::native == std::endian::little,
              "xgrad::io reads and writes safetensors data in native byte order");

using json = nlohmann::json;
using detail::atomic_write;
using detail::Chunk;
using detail::Fd;

/// The reference implementation refuses larger headers; so do we, before allocating them.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

/// Every dtype of the format, with its element size in bits (F4/F6 pack below a byte).
struct Dtype {
  const char* name;
  std::uint64_t bits;
};
constexpr Dtype kDtypes[] = {
    {"BOOL", 8},    {"U8", 8},    {"I8", 8},      {"F8_E5M2", 8}, {"F8_E4M3", 8},
    {"F8_E8M0", 8}, {"F4", 4},    {"F6_E2M3", 6}, {"I16", 16},    {"U16", 16},
    {"F16", 16},    {"BF16", 16}, {"F6_E3M2", 6}, {"I32", 32},    {"U32", 32},
    {"F32", 32},    {"F64", 64},  {"I64", 64},    {"U64", 64},    {"C64", 64},
};

const Dtype* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

/// The dtypes load converts to T: exact widenings, F64 -> float rounding, and integers (a
/// PyTorch BatchNorm's num_batches_tracked is I64) that T holds exactly.
bool readable(const std::string& dtype) {
  return dtype == "F32" || dtype == "F64" || dtype == "BF16" || dtype == "I64" || dtype == "I32";
}

template <class T>
constexpr const char* dtype_of() {
  return std::is_same_v<T, float> ? "F32" : "F64";
}

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

[[noreturn]] void fail(const char* op, const std::string& path, const std::string& what) {
  throw IoError(std::string(op) + ": " + path + ": " + what);
}

std::string in_quotes(const std::string& name) {
  return "'" + name + "'";
}

/// "bytes 120-143" for the half-open range [begin, end) of the file.
std::string byte_range(std::uint64_t begin, std::uint64_t end) {
  if (end <= begin) return "byte " + std::to_string(begin);
  return "bytes " + std::to_string(begin) + "-" + std::to_string(end - 1);
}

/// Reads exactly n bytes at `offset`; a short file is an error (it shrank after fstat).
void read_exact(const char* op, const std::string& path, int fd, void* dst, std::uint64_t n,
                std::uint64_t offset, const std::string& what) {
  auto* out = static_cast<unsigned char*>(dst);
  std::uint64_t done = 0;
  while (done < n) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(n - done, 1u << 30));
    const ssize_t got = ::pread(fd, out + done, chunk, static_cast<off_t>(offset + done));
    if (got < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      fail(op, path,
           "cannot read " + what + " at byte " + std::to_string(offset + done) + ": " +
               errno_text(err));
    }
    if (got == 0) {
      fail(op, path,
           "the file ended at byte " + std::to_string(offset + done) + " while reading " + what);
    }
    done += static_cast<std::uint64_t>(got);
  }
}

/// One checked tensor entry of a header; offsets relative to the data section.
struct Entry {
  std::string name;
  std::string dtype;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

/// A validated file, still open for reading its data.
struct Parsed {
  Fd fd;
  std::uint64_t data_start = 0;  // 8 + N
  std::vector<Entry> entries;    // by (begin, end, name): the order of their data
  std::map<std::string, std::string> metadata;
};

/// Where `name`'s entry starts in the header, for messages: the key as we would write it,
/// followed by ':' and '{'. 0 when the file spells the key differently (escapes).
std::uint64_t entry_position(const std::string& header, const std::string& name) {
  std::string key;
  try {
    key = json(name).dump();
  } catch (const json::exception&) {
    return 0;
  }
  for (auto pos = header.find(key); pos != std::string::npos; pos = header.find(key, pos + 1)) {
    auto i = header.find_first_not_of(" \t\r\n", pos + key.size());
    if (i == std::string::npos || header[i] != ':') continue;
    i = header.find_first_not_of(" \t\r\n", i + 1);
    if (i != std::string::npos && header[i] == '{') return 8 + pos;
  }
  return 0;
}

/// A non-negative JSON integer as uint64, or nothing for anything else (negative, float, ...).
bool as_count(const json& j, std::uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<std::uint64_t>();
  return true;
}

std::string describe_json(const json& j) {
  // dump() recurses once per nesting level, and a 100 MB header can nest millions deep: only
  // flat values are spelled out.
  bool flat = true;
  if (j.is_structured()) {
    for (const auto& child : j) flat = flat && !child.is_structured();
  }
  if (!flat) {
    return (j.is_array() ? "an array of " : "an object of ") + std::to_string(j.size()) +
           (j.is_array() ? " items" : " members");
  }
  std::string s = j.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

/// Checks one header entry's fields; `where` locates it in messages. It is called only on failure:
/// finding an entry in the header costs a scan, which for every entry of a large header would be
/// quadratic.
Entry parse_entry(const char* op, const std::string& path, const std::string& name, const json& v,
                  const std::function<std::string()>& where) {
  const auto tensor = [&] { return "tensor " + in_quotes(name) + " (" + where() + ")"; };
  if (!v.is_object()) {
    fail(op, path, tensor() + ": entry is " + describe_json(v) + ", not an object");
  }
  Entry e;
  e.name = name;
  const auto dtype = v.find("dtype");
  if (dtype == v.end() || !dtype->is_string()) {
    fail(op, path, tensor() + ": \"dtype\" is missing or not a string");
  }
  e.dtype = dtype->get<std::string>();
  const Dtype* info = find_dtype(e.dtype);
  if (!info) fail(op, path, tensor() + ": unknown dtype " + in_quotes(e.dtype));

  const auto shape = v.find("shape");
  if (shape == v.end() || !shape->is_array()) {
    fail(op, path, tensor() + ": \"shape\" is missing or not an array");
  }
  // Elements counted over the non-zero extents as well, so that a shape like [0, 2^40, 2^40]
  // cannot overflow the strides of the array built from it.
  std::uint64_t elements = 1;
  std::uint64_t nonzero = 1;
  constexpr auto kMaxExtent =
      static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
  for (std::size_t i = 0; i < shape->size(); ++i) {
    std::uint64_t d = 0;
    if (!as_count((*shape)[i], d)) {
      fail(op, path,
           tensor() + ": shape[" + std::to_string(i) + "] is " + describe_json((*shape)[i]) +
               ", not a non-negative integer");
    }
    if (d != 0 && (__builtin_mul_overflow(nonzero, d, &nonzero) || nonzero > kMaxExtent)) {
      fail(op, path,
           tensor() + ": shape " + describe_json(*shape) + " overflows the element count");
    }
    elements *= d;
    e.shape.push_back(static_cast<std::size_t>(d));
  }
  std::uint64_t bits = 0;
  if (__builtin_mul_overflow(elements, info->bits, &bits)) {
    fail(op, path, tensor() + ": shape " + shape_str(e.shape) + " overflows the byte count");
  }
  if (bits % 8 != 0) {
    fail(op, path,
         tensor() + ": " + std::to_string(elements) + " elements of " + e.dtype +
             " do not fill a whole number of bytes");
  }
  const std::uint64_t nbytes = bits / 8;

  const auto offsets = v.find("data_offsets");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2 ||
      !as_count((*offsets)[0], e.begin) || !as_count((*offsets)[1], e.end)) {
    fail(op, path,
         tensor() + ": \"data_offsets\" must be [begin, end] with non-negative integers, not " +
             (offsets == v.end() ? std::string("missing") : describe_json(*offsets)));
  }
  if (e.end < e.begin) {
    fail(op, path,
         tensor() + ": data_offsets [" + std::to_string(e.begin) + "," + std::to_string(e.end) +
             "] end before they begin");
  }
  if (e.end - e.begin != nbytes) {
    fail(op, path,
         tensor() + ": dtype " + e.dtype + " and shape " + shape_str(e.shape) + " need " +
             std::to_string(nbytes) + " bytes but data_offsets [" + std::to_string(e.begin) + "," +
             std::to_string(e.end) + "] span " + std::to_string(e.end - e.begin));
  }
  return e;
}

/// Opens and validates `path` completely: header length, JSON, every entry, and that the entries
/// tile the data section exactly (the format forbids holes, overlaps and trailing bytes).
Parsed parse_file(const char* op, const std::string& path) {
  Parsed p;
  auto [opened, size] = detail::open_regular_for_reading(op, path);
  p.fd = std::move(opened);
  const int fd = p.fd.get();
  if (size < 8) {
    fail(op, path,
         "the file has " + std::to_string(size) +
             " bytes, fewer than the 8 of the header length field");
  }

  unsigned char len[8];
  read_exact(op, path, fd, len, 8, 0, "the header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (n > kMaxHeaderBytes) {
    fail(op, path,
         "the header length at bytes 0-7 is " + std::to_string(n) + ", over the limit of " +
             std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (n > size - 8) {
    fail(op, path,
         "the header length at bytes 0-7 is " + std::to_string(n) + " but only " +
             std::to_string(size - 8) + " bytes follow it");
  }
  std::string header(static_cast<std::size_t>(n), '\0');
  read_exact(op, path, fd, header.data(), n, 8, "the header");
  if (n == 0 || header[0] != '{') {
    fail(op, path, "the header at byte 8 does not start with '{'");
  }

  // nlohmann stops at a NUL as at the end of input, which would let bytes after it pass unseen.
  if (const auto nul = header.find('\0'); nul != std::string::npos) {
    fail(op, path, "the header has a NUL byte at byte " + std::to_string(8 + nul));
  }

  // nlohmann keeps the last of duplicate keys silently; the format forbids them, so note them.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  const json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(header, track);
  } catch (const json::parse_error& e) {
    std::string why = e.what();
    if (const auto close = why.find("] ");
        why.rfind("[json.exception", 0) == 0 && close != why.npos) {
      why = why.substr(close + 2);
    }
    const std::uint64_t at = 8 + (e.byte > 0 ? e.byte - 1 : 0);
    fail(op, path, "the header is not valid JSON at byte " + std::to_string(at) + ": " + why);
  } catch (const json::exception& e) {
    // Not a syntax error but a value nlohmann cannot hold (a number beyond double, 1e999); it
    // records no position, so the message gives the header's range.
    std::string why = e.what();
    if (const auto close = why.find("] ");
        why.rfind("[json.exception", 0) == 0 && close != why.npos) {
      why = why.substr(close + 2);
    }
    fail(op, path, "the header at " + byte_range(8, 8 + n) + " is not usable JSON: " + why);
  }
  if (!duplicate.empty()) fail(op, path, "the header repeats the key " + in_quotes(duplicate));

  p.data_start = 8 + n;
  const std::uint64_t data_size = size - p.data_start;
  for (const auto& [key, value] : j.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) fail(op, path, "\"__metadata__\" is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          fail(op, path,
               "\"__metadata__\" must map strings to strings, but " + in_quotes(mk) + " holds " +
                   describe_json(mv));
        }
        p.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    const auto where = [&, &key = key] {
      const std::uint64_t pos = entry_position(header, key);
      return pos ? "header byte " + std::to_string(pos)
                 : "in the header at " + byte_range(8, 8 + n);
    };
    Entry e = parse_entry(op, path, key, value, where);
    if (e.end > data_size) {
      fail(op, path,
           "tensor " + in_quotes(key) + ": data_offsets [" + std::to_string(e.begin) + "," +
               std::to_string(e.end) + "] run past the data section, which has " +
               std::to_string(data_size) + " bytes (file " +
               byte_range(p.data_start, p.data_start + data_size) + ")");
    }
    p.entries.push_back(std::move(e));
  }

  std::sort(p.entries.begin(), p.entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t covered = 0;  // the data section is tiled up to here
  const Entry* previous = nullptr;
  for (const auto& e : p.entries) {
    if (e.begin < covered) {
      fail(op, path,
           "tensor " + in_quotes(e.name) + " at file " +
               byte_range(p.data_start + e.begin, p.data_start + e.end) + " overlaps tensor " +
               in_quotes(previous->name) + " at file " +
               byte_range(p.data_start + previous->begin, p.data_start + previous->end));
    }
    if (e.begin > covered) {
      fail(op, path,
           "file " + byte_range(p.data_start + covered, p.data_start + e.begin) +
               " belong to no tensor (a hole before tensor " + in_quotes(e.name) +
               "); the format requires the tensors to tile the data section");
    }
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size) {
    fail(op, path,
         std::to_string(data_size - covered) + " trailing bytes at file " +
             byte_range(p.data_start + covered, size) +
             " belong to no tensor; the format requires the tensors to tile the data section");
  }
  return p;
}

/// Refuses the dtypes load cannot convert, before any data is read.
void require_readable(const char* op, const std::string& path, const Parsed& p) {
  for (const auto& e : p.entries) {
    if (!readable(e.dtype)) {
      fail(op, path,
           "tensor " + in_quotes(e.name) + " has dtype " + e.dtype +
               ", which xgrad does not load (it reads F32, F64, BF16, I64 and I32)");
    }
  }
}

template <class T, class S>
void convert(const unsigned char* src, std::size_t count, T* dst) {
  for (std::size_t i = 0; i < count; ++i) {
    S s;
    std::memcpy(&s, src + i * sizeof(S), sizeof(S));
    dst[i] = static_cast<T>(s);
  }
}

/// Integers become T only where T holds them exactly (up to 2^24 in magnitude for float, 2^53
/// for double): a larger count or index would load as a different number, so it is refused,
/// naming the element and its value.
template <class T, class S>
void convert_integers(const char* op, const std::string& path, const Entry& e,
                      const unsigned char* src, std::size_t count, T* dst, std::size_t first) {
  constexpr std::int64_t limit = std::int64_t{1} << std::numeric_limits<T>::digits;
  for (std::size_t i = 0; i < count; ++i) {
    S s;
    std::memcpy(&s, src + i * sizeof(S), sizeof(S));
    const auto v = static_cast<std::int64_t>(s);
    if (v > limit || v < -limit) {
      fail(op, path,
           "tensor " + in_quotes(e.name) + " (" + e.dtype + ") holds " + std::to_string(v) +
               " at element " + std::to_string(first + i) + ", which " +
               (std::is_same_v<T, float> ? "float" : "double") +
               " does not hold exactly (beyond 2^" +
               std::to_string(std::numeric_limits<T>::digits) + ")" +
               (std::is_same_v<T, float> ? "; load it as double" : ""));
    }
    dst[i] = static_cast<T>(v);
  }
}

/// BF16 is the upper half of an F32: widening is a shift.
template <class T>
void convert_bf16(const unsigned char* src, std::size_t count, T* dst) {
  for (std::size_t i = 0; i < count; ++i) {
    std::uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = static_cast<T>(std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16));
  }
}

/// A finite double beyond float's range would round to inf: a silently different weight, so it is
/// refused, naming the element and its value.
void check_float_range(const char* op, const std::string& path, const Entry& e,
                       const unsigned char* src, std::size_t count, const float* converted,
                       std::size_t first) {
  for (std::size_t i = 0; i < count; ++i) {
    if (!std::isinf(converted[i])) continue;
    double d;
    std::memcpy(&d, src + i * sizeof(double), sizeof(double));
    if (std::isinf(d)) continue;
    char text[32];
    const auto res = std::to_chars(text, text + sizeof text, d);
    fail(op, path,
         "tensor " + in_quotes(e.name) + " (F64) holds " + std::string(text, res.ptr) +
             " at element " + std::to_string(first + i) +
             ", beyond the range of float (+-3.4028235e+38); load it as double");
  }
}

/// Reads one validated entry into a new array of T.
template <class T>
Array<T> read_values(const char* op, const std::string& path, const Parsed& p, const Entry& e) {
  Array<T> out = Array<T>::from_shape(e.shape);
  const std::uint64_t nbytes = e.end - e.begin;
  const std::string what = "tensor " + in_quotes(e.name);
  if (e.dtype == dtype_of<T>()) {
    read_exact(op, path, p.fd.get(), out.data(), nbytes, p.data_start + e.begin, what);
    return out;
  }
  // Converted in bounded chunks, so a large tensor never needs a second full-size buffer.
  const std::size_t elem = e.dtype == "F64" || e.dtype == "I64"   ? 8
                           : e.dtype == "F32" || e.dtype == "I32" ? 4
                                                                  : 2;
  const std::size_t per_chunk = (std::size_t{1} << 20) / elem;
  std::vector<unsigned char> buf(std::min<std::uint64_t>(nbytes, per_chunk * elem));
  for (std::size_t first = 0; first < out.size(); first += per_chunk) {
    const std::size_t count = std::min(per_chunk, out.size() - first);
    read_exact(op, path, p.fd.get(), buf.data(), count * elem,
               p.data_start + e.begin + first * elem, what);
    if (e.dtype == "F64") {
      convert<T, double>(buf.data(), count, out.data() + first);
      if constexpr (std::is_same_v<T, float>) {
        check_float_range(op, path, e, buf.data(), count, out.data() + first, first);
      }
    } else if (e.dtype == "F32") {
      convert<T, float>(buf.data(), count, out.data() + first);
    } else if (e.dtype == "I64") {
      convert_integers<T, std::int64_t>(op, path, e, buf.data(), count, out.data() + first, first);
    } else if (e.dtype == "I32") {
      convert_integers<T, std::int32_t>(op, path, e, buf.data(), count, out.data() + first, first);
    } else {
      convert_bf16<T>(buf.data(), count, out.data() + first);
    }
  }
  return out;
}

}  // namespace

namespace detail {

template <class T>
void save_named(const char* op, const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
                const std::string& path, const std::map<std::string, std::string>& metadata) {
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (!t.defined())
      throw ValueError(std::string(op) + ": tensor " + in_quotes(name) + " is undefined");
    if (name == kMetadataKey) {
      throw ValueError(std::string(op) + ": the name \"__metadata__\" is reserved by the format");
    }
    if (!seen.insert(name).second) {
      throw ValueError(std::string(op) + ": two tensors are named " + in_quotes(name));
    }
  }

  std::vector<RawTensor> raw;
  raw.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    const Array<T>& value = t.value();
    raw.push_back({name, dtype_of<T>(), t.shape(), value.data(), value.size() * sizeof(T)});
  }
  write_raw(op, raw, path, metadata);
}

void write_raw(const char* op, const std::vector<RawTensor>& tensors, const std::string& path,
               const std::map<std::string, std::string>& metadata) {
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    if (t.name == kMetadataKey) {
      throw ValueError(std::string(op) + ": the name \"__metadata__\" is reserved by the format");
    }
    if (!seen.insert(t.name).second) {
      throw ValueError(std::string(op) + ": two tensors are named " + in_quotes(t.name));
    }
  }
  // ordered_json keeps the header in the order of the data, as the caller gave it.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header[kMetadataKey] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::vector<Chunk> chunks;
  chunks.reserve(tensors.size() + 2);
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::uint64_t nbytes = t.nbytes;
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    if (nbytes) chunks.push_back({t.data, static_cast<std::size_t>(nbytes)});
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    throw ValueError(std::string(op) + ": a tensor name or metadata string is not valid UTF-8 (" +
                     e.what() + ")");
  }
  // Padding to 8 keeps every F64 (and F32) tensor aligned for readers that map the file.
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  chunks.insert(chunks.begin(), {{len, 8}, {text.data(), text.size()}});
  atomic_write(op, path, chunks);
}

LoadedFile read_raw(const char* op, const std::string& path) {
  const Parsed p = parse_file(op, path);
  require_readable(op, path, p);
  LoadedFile out;
  out.metadata = p.metadata;
  for (const auto& e : p.entries) {
    out.tensors.push_back({e.name, e.dtype, read_values<double>(op, path, p, e)});
  }
  // The data section once more, as bytes: its checksum is the file's, whatever the dtypes.
  uLong crc = ::crc32(0, Z_NULL, 0);
  const std::uint64_t end = p.entries.empty() ? 0 : p.entries.back().end;
  std::vector<unsigned char> buf(std::min<std::uint64_t>(end, std::uint64_t{1} << 20));
  for (std::uint64_t at = 0; at < end; at += buf.size()) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end - at));
    read_exact(op, path, p.fd.get(), buf.data(), n, p.data_start + at, "the data section");
    crc = ::crc32(crc, buf.data(), static_cast<uInt>(n));
  }
  out.data_crc32 = static_cast<std::uint32_t>(crc);
  return out;
}

template <class T>
void load_named(const char* op, const std::vector<std::pair<std::string, Tensor<T>>>& targets,
                const std::string& path, const Receiver& receiver) {
  std::map<std::string, std::size_t> wanted;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const auto& [name, t] = targets[i];
    if (!t.defined()) {
      throw ValueError(std::string(op) + ": " + receiver.item + " " + in_quotes(name) +
                       " is undefined");
    }
    if (!wanted.emplace(name, i).second) {
      throw ValueError(std::string(op) + ": " + receiver.holder + " has two " + receiver.item +
                       "s named " + in_quotes(name));
    }
  }

  const Parsed p = parse_file(op, path);
  std::map<std::string, const Entry*> in_file;
  for (const auto& e : p.entries) in_file.emplace(e.name, &e);

  std::vector<std::string> problems;
  std::vector<const Entry*> source(targets.size(), nullptr);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const auto& [name, t] = targets[i];
    const auto it = in_file.find(name);
    if (it == in_file.end()) {
      problems.push_back(std::string(receiver.item) + " " + in_quotes(name) + " with shape " +
                         shape_str(t.shape()) + " is missing from the file");
    } else if (it->second->shape != t.shape()) {
      problems.push_back(std::string(receiver.item) + " " + in_quotes(name) + " has shape " +
                         shape_str(t.shape()) + " in " + receiver.holder + " but " +
                         shape_str(it->second->shape) + " in the file");
    } else {
      source[i] = it->second;
    }
  }
  for (const auto& e : p.entries) {
    if (!wanted.count(e.name)) {
      problems.push_back("the file's tensor " + in_quotes(e.name) + " with shape " +
                         shape_str(e.shape) + " matches no " + receiver.item + " of " +
                         receiver.holder);
    }
  }
  if (!problems.empty()) {
    constexpr std::size_t kShown = 8;
    std::string msg;
    for (std::size_t i = 0; i < std::min(problems.size(), kShown); ++i) {
      msg += (i ? "; " : "") + problems[i];
    }
    if (problems.size() > kShown) {
      msg += "; and " + std::to_string(problems.size() - kShown) + " more";
    }
    fail(op, path, msg);
  }
  require_readable(op, path, p);

  // Everything is read before anything is written, so a failure leaves the targets unchanged.
  std::vector<Array<T>> values;
  values.reserve(targets.size());
  for (const Entry* e : source) values.push_back(read_values<T>(op, path, p, *e));
  for (std::size_t i = 0; i < targets.size(); ++i) {
    Tensor<T> handle = targets[i].second;  // shares the value; the list itself stays const
    Array<T>& dst = handle.mutable_value();
    if (values[i].size())
      std::copy(values[i].data(), values[i].data() + values[i].size(), dst.data());
  }
}

}  // namespace detail

template <class T>
void save_tensors(const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
                  const std::string& path, const std::map<std::string, std::string>& metadata) {
  detail::save_named<T>("xgrad::io::save_tensors", tensors, path, metadata);
}

template <class T>
std::vector<std::pair<std::string, Array<T>>> load_tensors(const std::string& path) {
  constexpr const char* op = "xgrad::io::load_tensors";
  const Parsed p = parse_file(op, path);
  require_readable(op, path, p);
  std::vector<std::pair<std::string, Array<T>>> out;
  out.reserve(p.entries.size());
  for (const auto& e : p.entries) out.emplace_back(e.name, read_values<T>(op, path, p, e));
  return out;
}

std::map<std::string, std::string> load_metadata(const std::string& path) {
  return parse_file("xgrad::io::load_metadata", path).metadata;
}

template <class T>
void load_into(const std::vector<std::pair<std::string, Tensor<T>>>& tensors,
               const std::string& path) {
  detail::load_named<T>("xgrad::io::load_into", tensors, path, {"tensor", "the destination"});
}

#define XGRAD_INSTANTIATE_SAFETENSORS(T)                                                        \
  template void save_tensors<T>(const std::vector<std::pair<std::string, Tensor<T>>>&,          \
                                const std::string&, const std::map<std::string, std::string>&); \
  template std::vector<std::pair<std::string, Array<T>>> load_tensors<T>(const std::string&);   \
  template void load_into<T>(const std::vector<std::pair<std::string, Tensor<T>>>&,             \
                             const std::string&);                                               \
  template void detail::save_named<T>(                                                          \
      const char*, const std::vector<std::pair<std::string, Tensor<T>>>&, const std::string&,   \
      const std::map<std::string, std::string>&);                                               \
  template void detail::load_named<T>(const char*,                                              \
                                      const std::vector<std::pair<std::string, Tensor<T>>>&,    \
                                      const std::string&, const detail::Receiver&);

XGRAD_INSTANTIATE_SAFETENSORS(float)
XGRAD_INSTANTIATE_SAFETENSORS(double)

}  // namespace xgrad::io
