#pragma once
// Replacing a file so that readers see either the old contents or the complete new ones. Every
// writer of the library uses it (safetensors and checkpoints in io, .npy files in data), so it
// lives in core, which both components link.

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace xgrad::io::detail {

/// Closes its descriptor on scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  /// Closes now and reports close()'s error (a delayed write error on some file systems).
  int close() {
    const int rc = ::close(std::exchange(fd_, -1));
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_ = -1;
};

/// Opens `path` for reading without blocking on a FIFO or device, and refuses anything but a
/// regular file with IoError("<op>: <path>: ..."). Returns the descriptor and the file's size.
std::pair<Fd, std::uint64_t> open_regular_for_reading(const char* op, const std::string& path);

/// Bytes to write, in order.
struct Chunk {
  const void* data;
  std::size_t size;
};

/// Replaces the regular file `path` (or creates it) with `chunks`: a temporary file in the same
/// directory, fsync, rename over the target, fsync of the directory. A symbolic link is followed
/// and its final target replaced; an existing target keeps its permission bits and group. A
/// target that exists but is not a regular file (a device, a FIFO, a directory) is refused with
/// IoError and left as it was. Temporary files of earlier saves of the same target whose writer
/// has died are removed first.
void atomic_write(const char* op, const std::string& path, const std::vector<Chunk>& chunks);

/// The name prefix every temporary file of a save of `target` starts with (hidden, within the
/// 255-byte name limit whatever the target's name); followed by "<pid>.<random>.tmp".
std::string temp_prefix(const std::string& target_name);

}  // namespace xgrad::io::detail
