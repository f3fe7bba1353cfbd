// .npy reader and writer. xtensor's xnpy writes the files; it does not read them here because it
// trusts the header (it allocates whatever the shape claims, reads without checking that the data
// are there) and converts no dtype. The reader checks every size against the file first.

#include <xtensor/xtensor_config.hpp>
#if XTENSOR_VERSION_MAJOR == 0 && XTENSOR_VERSION_MINOR < 25
#include <xtensor/xnpy.hpp>
#else
#include <xtensor/io/xnpy.hpp>
#endif

#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <xgrad/data/npy.hpp>

#include "core/atomic_file.hpp"
#include "io_util.hpp"

namespace xgrad::data {

namespace {

constexpr const char* kReadOp = "xgrad::read_npy";
constexpr const char* kWriteOp = "xgrad::write_npy";
// numpy itself refuses headers longer than 10000 bytes unless told otherwise.
constexpr std::uint64_t kMaxHeader = 1u << 16;

struct NpyHeader {
  char order = '<';  // '<', '>' or '|'
  char kind = 'f';   // 'b', 'i', 'u' or 'f'
  std::size_t itemsize = 0;
  bool fortran = false;
  std::vector<std::uint64_t> shape;
};

/// Recursive-descent parser for the Python dict literal of a .npy header, e.g.
/// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text, std::uint64_t base)
      : path_(path), text_(text), base_(base) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const auto key_at = pos_;
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        skip_space();
        if (peek() == '[') fail_at(pos_, "structured dtypes are not supported");
        parse_descr(string_literal(), h);
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        h.shape = tuple();
        have_shape = true;
      } else {
        fail_at(key_at, "unexpected key '" + key + "' in the header");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != '}') fail_at(pos_, "expected ',' or '}' in the header");
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail_at(pos_, "unexpected text after the header's '}'");
    if (!have_descr || !have_fortran || !have_shape) {
      fail_at(0, "the header lacks one of 'descr', 'fortran_order' and 'shape'");
    }
    return h;
  }

 private:
  [[noreturn]] void fail_at(std::size_t pos, const std::string& what) const {
    detail::io_fail(kReadOp, path_,
                    "malformed header at byte " + std::to_string(base_ + pos) + ": " + what);
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail_at(pos_, std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail_at(pos_, "expected a quoted string");
    const auto end = text_.find(quote, pos_ + 1);
    if (end == std::string::npos) fail_at(pos_, "unterminated string");
    std::string s = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return s;
  }
  bool boolean() {
    skip_space();
    if (text_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (text_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail_at(pos_, "expected True or False");
  }
  std::vector<std::uint64_t> tuple() {
    std::vector<std::uint64_t> dims;
    expect('(');
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail_at(pos_, "expected a dim");
      std::uint64_t d = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (!detail::checked_mul(d, 10, d) || d + std::uint64_t(peek() - '0') < d) {
          fail_at(pos_, "dim too large");
        }
        d += std::uint64_t(peek() - '0');
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literal
      dims.push_back(d);
      if (dims.size() > 32) fail_at(pos_, "more than 32 dims");
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != ')') fail_at(pos_, "expected ',' or ')' in the shape");
    }
    ++pos_;
    return dims;
  }
  void parse_descr(const std::string& d, NpyHeader& h) {
    const auto bad = [&] {
      fail_at(0,
              "unsupported dtype '" + d +
                  "' (supported: b1, i1, i2, i4, i8, u1, u2, u4, u8, f4, f8, either byte order)");
    };
    if (d.size() < 3 || std::string("<>|=").find(d[0]) == std::string::npos) bad();
    h.order = d[0] == '=' ? (std::endian::native == std::endian::big ? '>' : '<') : d[0];
    h.kind = d[1];
    const std::string size = d.substr(2);
    if (size.size() != 1 || !std::isdigit(static_cast<unsigned char>(size[0]))) bad();
    h.itemsize = std::size_t(size[0] - '0');
    const bool ok = (h.kind == 'b' && h.itemsize == 1) ||
                    ((h.kind == 'i' || h.kind == 'u') &&
                     (h.itemsize == 1 || h.itemsize == 2 || h.itemsize == 4 || h.itemsize == 8)) ||
                    (h.kind == 'f' && (h.itemsize == 4 || h.itemsize == 8));
    if (!ok) bad();
  }

  const std::string& path_;
  const std::string& text_;
  std::uint64_t base_;
  std::size_t pos_ = 0;
};

template <class T>
void convert_npy(const NpyHeader& h, const unsigned char* src, std::size_t n, T* dst) {
  const bool big = h.order == '>';
  using namespace detail;
  switch (h.kind) {
    case 'b':
      for (std::size_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? T(1) : T(0);
      return;
    case 'i':
      if (h.itemsize == 1) convert_values<std::int8_t>(src, n, big, dst);
      if (h.itemsize == 2) convert_values<std::int16_t>(src, n, big, dst);
      if (h.itemsize == 4) convert_values<std::int32_t>(src, n, big, dst);
      if (h.itemsize == 8) convert_values<std::int64_t>(src, n, big, dst);
      return;
    case 'u':
      if (h.itemsize == 1) convert_values<std::uint8_t>(src, n, big, dst);
      if (h.itemsize == 2) convert_values<std::uint16_t>(src, n, big, dst);
      if (h.itemsize == 4) convert_values<std::uint32_t>(src, n, big, dst);
      if (h.itemsize == 8) convert_values<std::uint64_t>(src, n, big, dst);
      return;
    default:
      if (h.itemsize == 4) convert_values<float>(src, n, big, dst);
      if (h.itemsize == 8) convert_values<double>(src, n, big, dst);
      return;
  }
}

std::uint64_t le(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

}  // namespace

template <class T>
Tensor<T> read_npy(const std::string& path) {
  const auto fail = [&](const std::string& what) { detail::io_fail(kReadOp, path, what); };
  const std::uint64_t file_size = detail::regular_file_size(kReadOp, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(std::string("cannot open: ") + std::strerror(errno));

  unsigned char pre[12] = {};
  in.read(reinterpret_cast<char*>(pre), 8);
  if (in.gcount() < 8) {
    fail("truncated at byte " + std::to_string(in.gcount()) +
         ": the file ends inside the 8-byte magic and version");
  }
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) {
    fail("bad magic at byte 0: a .npy file starts with \\x93NUMPY");
  }
  const unsigned major = pre[6], minor = pre[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    fail("unsupported format version " + std::to_string(major) + "." + std::to_string(minor) +
         " at byte 6 (supported: 1.0, 2.0, 3.0)");
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  in.read(reinterpret_cast<char*>(pre + 8), std::streamsize(len_bytes));
  if (std::size_t(in.gcount()) < len_bytes) {
    fail("truncated at byte " + std::to_string(8 + in.gcount()) +
         ": the file ends inside the header length");
  }
  const std::uint64_t header_len = le(pre + 8, len_bytes);
  const std::uint64_t header_start = 8 + len_bytes;
  if (header_len > file_size - header_start) {
    fail("header length " + std::to_string(header_len) + " at byte 8 runs past the end of the " +
         std::to_string(file_size) + "-byte file");
  }
  if (header_len > kMaxHeader) {
    fail("header length " + std::to_string(header_len) + " at byte 8 exceeds the limit of " +
         std::to_string(kMaxHeader) + " bytes");
  }
  std::string text(header_len, '\0');
  in.read(text.data(), std::streamsize(header_len));
  if (std::uint64_t(in.gcount()) < header_len) fail("read error in the header (file shrank)");

  const NpyHeader h = HeaderParser(path, text, header_start).parse();
  const std::uint64_t data_start = header_start + header_len;
  std::uint64_t count = 0, bytes = 0;
  if (!detail::checked_product(h.shape, count) || !detail::checked_mul(count, h.itemsize, bytes)) {
    fail("the shape " + detail::dims_str(h.shape) + " in the header at byte " +
         std::to_string(header_start) + " overflows the data size");
  }
  const std::uint64_t present = file_size - data_start;
  if (present < bytes) {
    fail("truncated at byte " + std::to_string(file_size) + ": the shape " +
         detail::dims_str(h.shape) + " needs " + std::to_string(bytes) +
         " bytes of data from byte " + std::to_string(data_start) + ", the file has " +
         std::to_string(present));
  }
  if (present > bytes) {
    fail(std::to_string(present - bytes) + " trailing bytes at byte " +
         std::to_string(data_start + bytes) + " after the data the header declares");
  }

  std::vector<unsigned char> raw(bytes);
  in.read(reinterpret_cast<char*>(raw.data()), std::streamsize(bytes));
  if (std::uint64_t(in.gcount()) < bytes) fail("read error in the data (file shrank)");

  Shape shape(h.shape.begin(), h.shape.end());
  if (!h.fortran || shape.size() < 2) {
    Array<T> out = Array<T>::from_shape(shape);
    convert_npy(h, raw.data(), count, out.data());
    return Tensor<T>(std::move(out));
  }
  // Fortran order is the row-major layout of the transposed array.
  Array<T> transposed = Array<T>::from_shape(Shape(shape.rbegin(), shape.rend()));
  convert_npy(h, raw.data(), count, transposed.data());
  return Tensor<T>(Array<T>(xt::transpose(transposed)));
}

template <class T>
void write_npy(const Tensor<T>& tensor, const std::string& path) {
  const std::string bytes = xt::dump_npy(tensor.value());
  // Through the library's atomic writer: a failure never leaves a truncated file under the final
  // name, a link is written through, and a device or FIFO at `path` is refused untouched.
  io::detail::atomic_write(kWriteOp, path, {{bytes.data(), bytes.size()}});
}

template Tensor<float> read_npy<float>(const std::string&);
template Tensor<double> read_npy<double>(const std::string&);
template void write_npy<float>(const Tensor<float>&, const std::string&);
template void write_npy<double>(const Tensor<double>&, const std::string&);

}  // namespace xgrad::data
