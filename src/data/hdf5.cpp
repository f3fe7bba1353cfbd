// HDF5 reader over the C API. Every handle is owned by an RAII wrapper, and HDF5's habit of
// printing its error stack to stderr is switched off for the duration of a call (and restored, so
// that other users of the library in the process keep their setting).

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include <xgrad/data/hdf5.hpp>

#include "io_util.hpp"

namespace xgrad::data {

namespace {

constexpr const char* kOp = "xgrad::read_hdf5";
// Deflate cannot compress by more than about 1032:1, so a dataset claiming more than this many
// bytes per stored byte (plus a margin for small fill-valued datasets) is refused before the
// allocation rather than after it.
constexpr std::uint64_t kMaxExpansion = 1100;
constexpr std::uint64_t kFillMargin = 1u << 20;

/// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
  Closer close_;
};

/// Turns off HDF5's automatic error printing while alive, restoring the previous handler after.
class QuietErrors {
 public:
  QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// The innermost message of HDF5's current error stack ("" when empty), e.g. "can't read data".
std::string hdf5_error() {
  std::string msg;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        if (n == 0 && e->desc != nullptr) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "" : " (HDF5: " + msg + ")";
}

/// Names at the top level of the file, for the message about a missing dataset.
std::string top_level_names(hid_t file) {
  std::vector<std::string> names;
  H5Literate(
      file, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        auto& v = *static_cast<std::vector<std::string>*>(out);
        v.emplace_back(name);
        return v.size() >= 20 ? 1 : 0;  // enough for a message
      },
      &names);
  H5Eclear2(H5E_DEFAULT);
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

const char* class_name(H5T_class_t c) {
  switch (c) {
    case H5T_STRING:
      return "strings";
    case H5T_COMPOUND:
      return "compound records";
    case H5T_ENUM:
      return "enums";
    case H5T_ARRAY:
      return "arrays";
    case H5T_VLEN:
      return "variable-length sequences";
    case H5T_REFERENCE:
      return "references";
    case H5T_OPAQUE:
      return "opaque bytes";
    case H5T_BITFIELD:
      return "bitfields";
    case H5T_TIME:
      return "times";
    default:
      return "non-numeric values";
  }
}

/// Little-endian unsigned integer of n bytes.
std::uint64_t le(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

/// Checks the superblock before libhdf5 sees the file, which it parses in C with less care for
/// hostile input than for performance: the signature must sit at byte 0 or at a power of two from
/// 512 on (after a user block), the version be one libhdf5 1.10 writes, and the end-of-file
/// address it records lie within the file, so that cut-short files and files that are not HDF5 at
/// all are refused here with the byte at fault.
void check_superblock(const std::string& path, std::uint64_t size) {
  const auto fail = [&](const std::string& what) {
    detail::io_fail(kOp, path, "cannot open as an HDF5 file: " + what);
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(std::string("cannot open: ") + std::strerror(errno));
  static constexpr unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  unsigned char sb[64] = {};
  std::uint64_t at = 0;
  std::size_t got = 0;
  for (;;) {
    if (at + 8 > size) {
      fail(
          "no HDF5 signature (\\x89HDF\\r\\n\\x1a\\n) at byte 0, nor at 512, 1024, 2048, ... "
          "within its " +
          std::to_string(size) + " bytes");
    }
    in.clear();
    in.seekg(static_cast<std::streamoff>(at));
    in.read(reinterpret_cast<char*>(sb), sizeof sb);
    got = static_cast<std::size_t>(in.gcount());
    if (got >= 8 && std::memcmp(sb, kSignature, 8) == 0) break;
    at = at == 0 ? 512 : 2 * at;
  }
  const unsigned version = sb[8];
  std::size_t addresses = 0;  // offset of the base address within the superblock
  unsigned offset_size = 0;
  switch (version) {
    case 0:
    case 1:
      offset_size = sb[13];
      addresses = version == 0 ? 24 : 28;
      break;
    case 2:
    case 3:
      offset_size = sb[9];
      addresses = 12;
      break;
    default:
      fail("unknown superblock version " + std::to_string(version) + " at byte " +
           std::to_string(at + 8) + " (expected 0 to 3)");
  }
  const std::uint64_t size_at = at + (version < 2 ? 13 : 9);
  if (offset_size != 2 && offset_size != 4 && offset_size != 8) {
    fail("address size " + std::to_string(offset_size) + " at byte " + std::to_string(size_at) +
         " (expected 2, 4 or 8)");
  }
  // Base address, then the free-space (v0/1) or extension (v2/3) address, then end of file.
  // Addresses count from the signature: libhdf5 itself replaces a recorded base address that
  // differs from it (a user block added after the file was written).
  const std::size_t eof_at = addresses + 2 * offset_size;
  if (got < eof_at + offset_size) {
    fail("truncated at byte " + std::to_string(at + got) + ": the file ends inside the superblock");
  }
  const std::uint64_t eof = le(sb + eof_at, offset_size);
  std::uint64_t end = 0;
  if (__builtin_add_overflow(at, eof, &end) || end > size) {
    fail("the superblock at byte " + std::to_string(at) + " records the end of the file at byte " +
         (end < at ? std::string("beyond 2^64") : std::to_string(end)) + " (byte " +
         std::to_string(at + eof_at) + "), but the file has " + std::to_string(size) +
         " bytes: it is cut short or damaged");
  }
  if (version >= 2) return;
  // A v0/v1 superblock may point at a driver information block, whose 4-byte length libhdf5
  // allocates before checking it against the file (found by fuzzing: a 293-byte file asked for
  // 1.6 GB). Its 16-byte header (version, 3 reserved bytes, length, driver name) is checked here.
  const std::size_t driver_at = eof_at + offset_size;
  if (got < driver_at + offset_size) {
    fail("truncated at byte " + std::to_string(at + got) + ": the file ends inside the superblock");
  }
  const std::uint64_t driver = le(sb + driver_at, offset_size);
  const std::uint64_t undefined =
      offset_size == 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * offset_size)) - 1;
  if (driver == undefined) return;
  std::uint64_t block = 0;
  const bool inside =
      !__builtin_add_overflow(at, driver, &block) && block <= size && size - block >= 16;
  unsigned char header[16] = {};
  if (inside) {
    in.clear();
    in.seekg(static_cast<std::streamoff>(block));
    in.read(reinterpret_cast<char*>(header), sizeof header);
  }
  if (!inside || in.gcount() < 16) {
    fail("the driver information block at address " + std::to_string(driver) + " (byte " +
         std::to_string(at + driver_at) + ") lies beyond the end of the " + std::to_string(size) +
         "-byte file");
  }
  const std::uint64_t length = le(header + 4, 4);
  if (length > size - block - 16) {
    fail("the driver information block at byte " + std::to_string(block) + " declares " +
         std::to_string(length) + " bytes (byte " + std::to_string(block + 4) +
         "), more than the file holds after it");
  }
}

/// Why the bit layout of a numeric type does not fit in its bytes ("" when it does). libhdf5 1.10
/// takes the precision, offset and float fields from the file and converts values by them without
/// checking them against the size, reading out of bounds (found by fuzzing: a SIGBUS in
/// H5T__bit_copy under H5Dread).
std::string bad_bit_layout(hid_t type, H5T_class_t cls, std::size_t size) {
  if (size == 0 || size > 16) return "its type has a size of " + std::to_string(size) + " bytes";
  const std::size_t bits = 8 * size;
  const std::size_t precision = H5Tget_precision(type);
  const int offset = H5Tget_offset(type);
  H5Eclear2(H5E_DEFAULT);
  const auto layout = [&] {
    return std::to_string(precision) + " bits at bit offset " + std::to_string(offset) + " in " +
           std::to_string(size) + " bytes";
  };
  if (precision == 0 || offset < 0 || std::size_t(offset) + precision > bits) {
    return "its type's bit layout does not fit: " + layout();
  }
  if (cls == H5T_FLOAT) {
    std::size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
    if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) {
      return "cannot read its floating-point fields" + hdf5_error();
    }
    const auto within = [&](std::size_t pos, std::size_t n) {
      return pos >= std::size_t(offset) && n <= precision &&
             pos - std::size_t(offset) <= precision - n;
    };
    if (esize == 0 || esize > 32 || msize == 0 || !within(spos, 1) || !within(epos, esize) ||
        !within(mpos, msize)) {
      return "its floating-point fields do not fit: sign at bit " + std::to_string(spos) +
             ", exponent " + std::to_string(esize) + " bits at " + std::to_string(epos) +
             ", mantissa " + std::to_string(msize) + " bits at " + std::to_string(mpos) + ", in " +
             layout();
    }
  }
  return "";
}

}  // namespace

template <class T>
Tensor<T> read_hdf5(const std::string& path, const std::string& dataset) {
  const std::string where = path + ": dataset '" + dataset + "'";
  const auto fail = [&](const std::string& what) { detail::io_fail(kOp, where, what); };
  const std::uint64_t file_size = detail::regular_file_size(kOp, path);
  check_superblock(path, file_size);
  QuietErrors quiet;

  Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) {
    detail::io_fail(kOp, path, "cannot open as an HDF5 file" + hdf5_error());
  }
  // An external link makes the file choose another file on this machine to open, so none is
  // followed: the traversal callback refuses every one.
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  Handle gapl(H5Pcreate(H5P_GROUP_ACCESS), H5Pclose);
  const H5L_elink_traverse_t refuse = [](const char*, const char*, const char*, const char*,
                                         unsigned*, hid_t, void*) -> herr_t { return -1; };
  if (!dapl.valid() || !gapl.valid() || H5Pset_elink_cb(dapl.get(), refuse, nullptr) < 0 ||
      H5Pset_elink_cb(gapl.get(), refuse, nullptr) < 0) {
    fail("cannot set up link access" + hdf5_error());
  }
  // H5Lexists fails (negative) rather than returning 0 when an intermediate group is missing.
  if (dataset.empty() || H5Lexists(file.get(), dataset.c_str(), dapl.get()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    fail("no such dataset (top level of the file: " + top_level_names(file.get()) + ")");
  }
  Handle ds(H5Dopen2(file.get(), dataset.c_str(), dapl.get()), H5Dclose);
  if (!ds.valid()) {
    H5Eclear2(H5E_DEFAULT);
    Handle group(H5Gopen2(file.get(), dataset.c_str(), gapl.get()), H5Gclose);
    H5Eclear2(H5E_DEFAULT);
    H5L_info_t link{};
    if (!group.valid() && H5Lget_info(file.get(), dataset.c_str(), &link, H5P_DEFAULT) >= 0 &&
        link.type == H5L_TYPE_EXTERNAL) {
      fail("is an external link to another file, which xgrad does not follow");
    }
    H5Eclear2(H5E_DEFAULT);
    fail(group.valid() ? "is a group, not a dataset" : "is not a dataset");
  }
  // Likewise for data kept outside the file: external raw storage names any file to read.
  {
    Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
    if (!dcpl.valid()) fail("cannot read its creation properties" + hdf5_error());
    if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL) {
      fail("is a virtual dataset mapping other files, which xgrad does not follow");
    }
    if (const int n = H5Pget_external_count(dcpl.get()); n != 0) {
      fail("keeps its data in " + std::to_string(n) +
           " external file(s), which xgrad does not read");
    }
  }

  Handle type(H5Dget_type(ds.get()), H5Tclose);
  if (!type.valid()) fail("cannot read its type" + hdf5_error());
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    fail(std::string("holds ") + class_name(cls) + ", not integers or floats");
  }
  const std::size_t type_size = H5Tget_size(type.get());
  if (const std::string bad = bad_bit_layout(type.get(), cls, type_size); !bad.empty()) fail(bad);

  Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!space.valid()) fail("cannot read its dataspace" + hdf5_error());
  const H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
  if (space_class == H5S_NULL) fail("has a null dataspace (no elements, no shape)");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail("cannot read its rank" + hdf5_error());
  std::vector<hsize_t> hdims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), hdims.data(), nullptr) < 0) {
    fail("cannot read its dims" + hdf5_error());
  }
  const std::vector<std::uint64_t> dims(hdims.begin(), hdims.end());

  std::uint64_t count = 0, file_bytes = 0, out_bytes = 0;
  if (!detail::checked_product(dims, count) || !detail::checked_mul(count, type_size, file_bytes) ||
      !detail::checked_mul(count, sizeof(T), out_bytes)) {
    fail("the dims " + detail::dims_str(dims) + " overflow the data size");
  }
  // The storage size comes from the file's own chunk index, so it is believed only up to the
  // file's size.
  const std::uint64_t stored = H5Dget_storage_size(ds.get());
  if (stored > file_size) {
    fail("its storage size " + std::to_string(stored) + " exceeds the " +
         std::to_string(file_size) + "-byte file");
  }
  if (file_bytes > kFillMargin && file_bytes / kMaxExpansion > stored) {
    fail("the dims " + detail::dims_str(dims) + " declare " + std::to_string(file_bytes) +
         " bytes but the file stores only " + std::to_string(stored) + " for it");
  }

  Array<T> out = Array<T>::from_shape(Shape(dims.begin(), dims.end()));
  const hid_t mem_type = std::is_same_v<T, float> ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
  if (count > 0 && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    fail("reading " + std::to_string(count) + " elements failed" + hdf5_error());
  }
  return Tensor<T>(std::move(out));
}

template Tensor<float> read_hdf5<float>(const std::string&, const std::string&);
template Tensor<double> read_hdf5<double>(const std::string&, const std::string&);

}  // namespace xgrad::data
