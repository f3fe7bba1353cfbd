// IDX reader. Every size in the header is checked against the data actually present before
// anything is allocated: for a plain file against its size, for a gzip file by decompressing
// into a buffer that grows with the data received (never beyond what the header declares), since
// a gzip file does not reliably record its decompressed size.

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <xgrad/data/idx.hpp>

#include "idx_rows.hpp"
#include "io_util.hpp"

namespace xgrad::data {

namespace detail {

namespace {

/// "0x0d" for {0x0d}, "0x1f8b0800" for four bytes.
std::string hex_bytes(const unsigned char* p, std::size_t n) {
  std::string s = "0x";
  for (std::size_t i = 0; i < n; ++i) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", unsigned(p[i]));
    s += buf;
  }
  return s;
}

std::size_t idx_type_size(std::uint8_t type) {
  switch (type) {
    case kIdxU8:
    case kIdxI8:
      return 1;
    case kIdxI16:
      return 2;
    case kIdxI32:
    case kIdxF32:
      return 4;
    case kIdxF64:
      return 8;
    default:
      return 0;
  }
}

/// The bytes of a plain or gzip file, read in order.
class ByteSource {
 public:
  ByteSource(const char* op, const std::string& path) : op_(op), path_(path) {
    file_size_ = regular_file_size(op, path);
    {
      std::ifstream sniff(path, std::ios::binary);
      if (!sniff) io_fail(op, path, std::string("cannot open: ") + std::strerror(errno));
      unsigned char magic[2] = {0, 0};
      sniff.read(reinterpret_cast<char*>(magic), 2);
      gzip_ = sniff.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    }
    if (gzip_) {
      gz_ = gzopen(path.c_str(), "rb");
      if (gz_ == nullptr) io_fail(op, path, std::string("cannot open: ") + std::strerror(errno));
      gzbuffer(gz_, 1u << 17);
    } else {
      plain_.open(path, std::ios::binary);
      if (!plain_) io_fail(op, path, std::string("cannot open: ") + std::strerror(errno));
    }
  }
  ~ByteSource() {
    if (gz_ != nullptr) gzclose(gz_);
  }
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }
  /// Offset of the next byte (in the decompressed data for a gzip file).
  std::uint64_t pos() const { return pos_; }
  /// " (offsets in the decompressed data)" for a gzip file.
  std::string where() const { return gzip_ ? " (offsets count decompressed bytes)" : ""; }

  /// Reads up to n bytes; fewer only at the end of the data.
  std::size_t read(unsigned char* dst, std::size_t n) {
    std::size_t got = 0;
    if (gzip_) {
      while (got < n) {
        const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
        const int r = gzread(gz_, dst + got, chunk);
        if (r < 0) {
          io_fail(op_, path_,
                  "corrupt gzip data after byte " + std::to_string(pos_ + got) + ": " +
                      zlib_message() + where());
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
      }
    } else {
      plain_.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
      got = static_cast<std::size_t>(plain_.gcount());
      if (got < n && plain_.bad()) {
        io_fail(op_, path_, "read error at byte " + std::to_string(pos_ + got));
      }
    }
    pos_ += got;
    return got;
  }

  /// zlib's message about the last error, without the path it starts with ("" when none).
  std::string zlib_message() const {
    if (!gzip_) return "";
    int err = Z_OK;
    std::string msg = gzerror(gz_, &err);
    if (err == Z_OK) return "";
    if (msg.rfind(path_ + ": ", 0) == 0) msg.erase(0, path_.size() + 2);
    return msg;
  }
  /// True when the gzip stream ended before its trailer (the compressed file was cut short).
  bool gzip_cut_short() const {
    int err = Z_OK;
    if (gzip_) gzerror(gz_, &err);
    return err == Z_BUF_ERROR;
  }

 private:
  const char* op_;
  const std::string& path_;
  std::uint64_t file_size_ = 0;
  bool gzip_ = false;
  gzFile gz_ = nullptr;
  std::ifstream plain_;
  std::uint64_t pos_ = 0;
};

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

template <class T>
void convert_idx(std::uint8_t type, const unsigned char* src, std::size_t n, T* dst) {
  switch (type) {
    case kIdxU8:
      convert_values<std::uint8_t>(src, n, true, dst);
      break;
    case kIdxI8:
      convert_values<std::int8_t>(src, n, true, dst);
      break;
    case kIdxI16:
      convert_values<std::int16_t>(src, n, true, dst);
      break;
    case kIdxI32:
      convert_values<std::int32_t>(src, n, true, dst);
      break;
    case kIdxF32:
      convert_values<float>(src, n, true, dst);
      break;
    case kIdxF64:
      convert_values<double>(src, n, true, dst);
      break;
    default:
      break;  // unreachable: the type was checked with the header
  }
}

}  // namespace

template <class T>
IdxData<T> read_idx_rows(const char* op, const std::string& path, std::size_t max_rows) {
  ByteSource src(op, path);
  auto fail = [&](const std::string& what) { io_fail(op, path, what + src.where()); };

  unsigned char magic[4];
  if (const auto n = src.read(magic, 4); n < 4) {
    fail("truncated at byte " + std::to_string(n) + ": the file ends inside the 4-byte magic");
  }
  if (magic[0] != 0 || magic[1] != 0) {
    fail("bad magic " + hex_bytes(magic, 4) + " at byte 0: an IDX file starts with two zero bytes");
  }
  const std::uint8_t type = magic[2];
  const std::size_t esize = idx_type_size(type);
  if (esize == 0) {
    fail("unknown data type " + hex_bytes(&type, 1) +
         " at byte 2 (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)");
  }
  const unsigned ndims = magic[3];
  if (ndims == 0 || ndims > 8) {
    fail("bad number of dims " + std::to_string(ndims) + " at byte 3 (expected 1 to 8)");
  }

  unsigned char dim_bytes[32];
  const std::size_t header = 4 + 4 * std::size_t(ndims);
  if (const auto n = src.read(dim_bytes, 4 * ndims); n < 4 * ndims) {
    fail("truncated at byte " + std::to_string(4 + n) + ": the header declares " +
         std::to_string(ndims) + " dims, which end at byte " + std::to_string(header));
  }
  std::vector<std::uint64_t> dims(ndims);
  for (unsigned i = 0; i < ndims; ++i) dims[i] = be32(dim_bytes + 4 * i);

  std::uint64_t count = 0;
  std::uint64_t declared = 0;
  if (!checked_product(dims, count) || !checked_mul(count, esize, declared)) {
    fail("the dims " + dims_str(dims) + " at byte 4 overflow the data size");
  }

  const bool partial = max_rows > 0 && max_rows < dims[0];
  if (partial) {
    dims[0] = max_rows;
    checked_product(dims, count);  // cannot overflow: smaller than the product checked above
  }
  const std::uint64_t want = count * esize;

  auto truncated = [&](std::uint64_t present, const std::string& note) {
    fail("truncated at byte " + std::to_string(header + present) + ": the header declares " +
         std::to_string(declared) + " bytes of data from byte " + std::to_string(header) +
         ", the file has " + std::to_string(present) + note);
  };

  std::vector<unsigned char> bytes;
  if (!src.gzip()) {
    const std::uint64_t present = src.file_size() - header;
    if (present < want) truncated(present, "");
    if (!partial && present > want) {
      fail(std::to_string(present - want) + " trailing bytes at byte " +
           std::to_string(header + want) + " after the data the header declares");
    }
    bytes.resize(want);
    if (src.read(bytes.data(), want) < want) truncated(src.pos() - header, " (file shrank)");
  } else {
    // Grow geometrically, capped at what the header declares: never more than twice the data
    // actually decompressed so far.
    std::uint64_t got = 0;
    while (got < want) {
      if (bytes.size() == got) {
        bytes.resize(std::min<std::uint64_t>(want, std::max<std::uint64_t>(2 * got, 1u << 20)));
      }
      const auto n = src.read(bytes.data() + got, bytes.size() - got);
      if (n == 0) break;
      got += n;
    }
    if (got < want) {
      truncated(got, src.gzip_cut_short() ? " (the compressed file is cut short)" : "");
    }
    if (!partial) {
      unsigned char extra = 0;
      if (src.read(&extra, 1) != 0) {
        fail("trailing bytes at byte " + std::to_string(header + want) +
             " after the data the header declares");
      }
      // All the data arrived but the stream stopped before the trailer that holds its CRC, so
      // nothing vouches for those bytes.
      if (src.gzip_cut_short()) {
        fail("the compressed file is cut short after byte " + std::to_string(header + want) +
             ": its gzip trailer (CRC and length) is missing");
      }
    }
  }

  IdxData<T> out;
  out.type = type;
  out.values = Array<T>::from_shape(Shape(dims.begin(), dims.end()));
  convert_idx(type, bytes.data(), count, out.values.data());
  return out;
}

template IdxData<float> read_idx_rows<float>(const char*, const std::string&, std::size_t);
template IdxData<double> read_idx_rows<double>(const char*, const std::string&, std::size_t);

}  // namespace detail

template <class T>
Tensor<T> read_idx(const std::string& path) {
  return Tensor<T>(detail::read_idx_rows<T>("xgrad::read_idx", path, 0).values);
}

template Tensor<float> read_idx<float>(const std::string&);
template Tensor<double> read_idx<double>(const std::string&);

}  // namespace xgrad::data
