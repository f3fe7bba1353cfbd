// Atomic replacement of a file. The traps, each of which once bit a user:
// - open() of a FIFO for reading blocks until a writer appears, so readers open with O_NONBLOCK
//   and check the type before reading;
// - rename() over a device node or a FIFO would replace it with a regular file (and writing to
//   /dev/full "succeeds" that way), so only regular files are replaced;
// - rename() over a symbolic link replaces the link and leaves its target stale, so links are
//   followed first, as open(O_TRUNC) would;
// - a new file gets the umask's mode, so a 0600 checkpoint would become 0644 on overwrite;
// - "<name>.tmp.<...>" exceeds NAME_MAX for a long name, so temporary names have a fixed length;
// - a writer killed by SIGKILL cannot remove its temporary file, so later saves of the same
//   target remove those whose writer is gone: its pid is dead and its lock is free (the lock
//   covers a pid reused by, or seen from, another pid namespace).

#include "core/atomic_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

#include <xgrad/error.hpp>

namespace xgrad::io::detail {

namespace {

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

[[noreturn]] void fail(const char* op, const std::string& path, const std::string& what) {
  throw IoError(std::string(op) + ": " + path + ": " + what);
}

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/// Unlinks a temporary file unless released.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

void write_all(const char* op, const std::string& path, const TempFile& tmp, int fd,
               const Chunk& chunk, std::uint64_t& written) {
  const auto* src = static_cast<const unsigned char*>(chunk.data);
  std::size_t done = 0;
  while (done < chunk.size) {
    const std::size_t n = std::min<std::size_t>(chunk.size - done, std::size_t{1} << 30);
    const ssize_t put = ::write(fd, src + done, n);
    if (put < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      fail(op, path,
           "writing the temporary file " + tmp.path() + " failed at byte " +
               std::to_string(written) + ": " + errno_text(err));
    }
    done += static_cast<std::size_t>(put);
    written += static_cast<std::uint64_t>(put);
  }
}

/// The file a write to `path` lands in: symbolic links followed (a dangling one to the file it
/// names), as open() would.
std::string follow_links(const char* op, const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p.string();
    std::error_code ec;
    const fs::path target = fs::read_symlink(p, ec);
    if (ec) fail(op, path, "cannot read the symbolic link " + p.string() + ": " + ec.message());
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  fail(op, path, "too many levels of symbolic links");
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool process_alive(long pid) {
  if (pid <= 0 || static_cast<pid_t>(pid) != pid) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

/// Removes the temporary files of earlier saves of `name` in `dir` whose writer is gone. Best
/// effort: a file that cannot be examined or removed is left alone.
void remove_stale_temps(const std::string& dir, const std::string& name) {
  const std::string prefix = temp_prefix(name);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  const long self = static_cast<long>(::getpid());
  while (const dirent* e = ::readdir(d)) {
    const std::string entry = e->d_name;
    if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) continue;
    long pid = 0;
    const char* first = entry.data() + prefix.size();
    const auto [end, ec] = std::from_chars(first, entry.data() + entry.size(), pid);
    if (ec != std::errc() || end == first || *end != '.') continue;
    if (pid == self || process_alive(pid)) continue;
    const std::string full = dir + "/" + entry;
    Fd fd(::open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // its writer still holds it
    ::unlink(full.c_str());
  }
  ::closedir(d);
}

}  // namespace

std::pair<Fd, std::uint64_t> open_regular_for_reading(const char* op, const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for regular files.
  Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    const int err = errno;
    fail(op, path, "cannot open for reading: " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    fail(op, path, "cannot stat: " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) fail(op, path, "not a regular file (" + kind_of(st.st_mode) + ")");
  return {std::move(fd), static_cast<std::uint64_t>(st.st_size)};
}

std::string temp_prefix(const std::string& target_name) {
  // A readable head of the name, cut on a UTF-8 character boundary, and a hash of the whole name
  // so that two long names with the same head do not share temporary files.
  std::size_t cut = std::min<std::size_t>(target_name.size(), 64);
  while (cut > 0 && cut < target_name.size() &&
         (static_cast<unsigned char>(target_name[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(target_name)));
  // Appended piece by piece: GCC 12 sees an impossible overflow in the operator+ chain.
  std::string prefix(1, '.');
  prefix.append(target_name.data(), cut);
  prefix.push_back('.');
  prefix.append(hash, 16);
  prefix.append(".xgrad-tmp.");
  return prefix;
}

void atomic_write(const char* op, const std::string& path, const std::vector<Chunk>& chunks) {
  if (path.empty()) throw IoError(std::string(op) + ": the path is empty");
  const std::string target = follow_links(op, path);
  const std::filesystem::path target_path(target);
  const std::string dir =
      target_path.has_parent_path() ? target_path.parent_path().string() : std::string(".");
  const std::string name = target_path.filename().string();
  if (name.empty() || name == "." || name == "..") fail(op, path, "names a directory");

  struct stat old {};
  bool exists = false;
  if (::stat(target.c_str(), &old) == 0) {
    exists = true;
    if (!S_ISREG(old.st_mode)) {
      fail(op, path,
           "is " + kind_of(old.st_mode) +
               "; only regular files are replaced, and it was left as it was");
    }
  } else if (errno != ENOENT) {
    const int err = errno;
    fail(op, path, "cannot stat: " + errno_text(err));
  }

  remove_stale_temps(dir, name);

  std::random_device rd;
  const std::uint64_t r = (std::uint64_t{rd()} << 32) ^ rd();
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(r));
  TempFile tmp(dir + "/" + temp_prefix(name) + std::to_string(::getpid()) + "." + suffix + ".tmp");

  const int raw = ::open(tmp.path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (raw < 0) {
    const int err = errno;
    tmp.release();  // never created: nothing to remove, and O_EXCL means it is not ours
    fail(op, path, "cannot create the temporary file " + tmp.path() + ": " + errno_text(err));
  }
  Fd fd(raw);
  // Held until the file is closed: tells remove_stale_temps that its writer is alive.
  ::flock(fd.get(), LOCK_EX | LOCK_NB);
  if (exists) {
    if (::fchmod(fd.get(), old.st_mode & 07777) != 0) {
      const int err = errno;
      fail(op, path,
           "cannot give the temporary file " + tmp.path() +
               " the mode of the file it replaces: " + errno_text(err));
    }
    // Keeping the group is possible only for its members; the mode is kept either way.
    if (::fchown(fd.get(), static_cast<uid_t>(-1), old.st_gid) != 0) {
    }
  }
  std::uint64_t written = 0;
  for (const auto& c : chunks) write_all(op, path, tmp, fd.get(), c, written);
  if (::fsync(fd.get()) != 0) {
    const int err = errno;
    fail(op, path, "fsync of the temporary file " + tmp.path() + " failed: " + errno_text(err));
  }
  if (const int err = fd.close()) {
    fail(op, path, "closing the temporary file " + tmp.path() + " failed: " + errno_text(err));
  }
  if (::rename(tmp.path().c_str(), target.c_str()) != 0) {
    const int err = errno;
    fail(op, path,
         "cannot move the temporary file " + tmp.path() + " into place: " + errno_text(err));
  }
  tmp.release();

  // The rename is durable only once the directory entry is on disk.
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int err = dfd.get() < 0 ? errno : 0;
  if (!err && ::fsync(dfd.get()) != 0 && errno != EINVAL) err = errno;
  if (err)
    fail(op, path, "written, but syncing the directory " + dir + " failed: " + errno_text(err));
}

}  // namespace xgrad::io::detail
