#include "viz/common.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <xgrad/error.hpp>

namespace xgrad::viz::detail {

namespace {

[[noreturn]] void fail(const std::string& path, const char* op, const std::string& what) {
  throw IoError(std::string("xgrad::") + op + ": cannot write '" + path + "': " + what);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes, const char* op) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) fail(path, op, "cannot open '" + tmp + "': " + std::strerror(errno));
  const std::size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int write_errno = errno;
  const bool closed = std::fclose(f) == 0;
  const int close_errno = errno;
  if (written != bytes.size()) {
    std::remove(tmp.c_str());
    fail(path, op,
         "short write to '" + tmp + "' (" + std::to_string(written) + " of " +
             std::to_string(bytes.size()) + " bytes): " + std::strerror(write_errno));
  }
  if (!closed) {
    std::remove(tmp.c_str());
    fail(path, op, "cannot close '" + tmp + "': " + std::strerror(close_errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail(path, op, "cannot rename '" + tmp + "' onto it: " + std::strerror(e));
  }
}

}  // namespace xgrad::viz::detail
