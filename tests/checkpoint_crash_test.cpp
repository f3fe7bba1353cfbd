// Nothing lost: a save killed at any moment leaves a checkpoint that loads intact (the previous
// one, or the new one once the rename is done), and damaged files are refused without touching
// the module they were meant for.

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <xgrad/io/safetensors.hpp>

#include "core/atomic_file.hpp"
#include "test_util.hpp"

namespace xgrad {
namespace {

namespace fs = std::filesystem;

/// A module with one big parameter: 3,300 x 4,000 floats, 52.8 MB of data, filled with a
/// pattern that differs from element to element and from one `seed` to another (cheaper to make
/// than random numbers).
class Big : public nn::Module<float> {
 public:
  explicit Big(int seed) {
    Array<float> w = Array<float>::from_shape({3300, 4000});
    float* p = w.data();
    for (std::size_t i = 0; i < w.size(); ++i) p[i] = static_cast<float>(i % 8191) * 0.5f + seed;
    weight_ = this->register_parameter("weight", Tensor<float>(std::move(w)));
  }
  Tensor<float> forward(const Tensor<float>& x) override { return x.matmul(weight_); }
  std::string describe() const override { return "Big"; }
  const Array<float>& value() const { return weight_.value(); }

 private:
  Tensor<float> weight_;
};

bool same_bits(const Array<float>& a, const Array<float>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class NothingLost : public ::testing::Test {
 protected:
  // NOTE: tmpfs when there is one: a killed process loses nothing the page cache holds, so
  // the disk adds only time here (fsync of 50 MB, and ext4's discards for the many small
  // files of the damage test).
  test::ScratchDir scratch_{"xgrad_crash_", fs::is_directory("/dev/shm")
                                                ? fs::path("/dev/shm")
                                                : fs::temp_directory_path()};
  const fs::path& dir_ = scratch_.dir();
  std::string path(const std::string& name) const { return scratch_.path(name); }

  /// The temporary file a save of `target` by process `pid` is writing, if it exists yet.
  std::optional<fs::path> temp_file_of(const std::string& target, pid_t pid) const {
    const std::string prefix =
        io::detail::temp_prefix(fs::path(target).filename().string()) + std::to_string(pid) + ".";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) return e.path();
    }
    return std::nullopt;
  }
};

TEST_F(NothingLost, SaveKilledAtAnyPointLeavesACheckpointThatLoadsIntact) {
  const std::string file = path("model.safetensors");
  const Big a(1), b(2);
  io::save(a, file);
  const auto full = fs::file_size(file);
  ASSERT_GE(full, 50u * 1000 * 1000);

  // Kill points spread over the save: before it starts, then each time another eighth of
  // the file has reached the temporary file (so from the first write to the fsync and rename), and
  // finally not at all. No sleeping: the parent watches the temporary file grow.
  constexpr int kSteps = 8;
  bool a_on_disk = true;
  int kept_previous = 0, got_new = 0;
  for (int k = -1; k <= kSteps + 1; ++k) {
    SCOPED_TRACE("kill point " + std::to_string(k));
    const Big& next = a_on_disk ? b : a;
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // NOTE: the parent may run other threads (OpenBLAS); the child only saves and leaves,
      // without running exit handlers.
      try {
        io::save(next, file);
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(0);
    }
    int status = 0;
    bool exited = false;
    if (k >= 0 && k <= kSteps) {
      const auto threshold = full * static_cast<std::uintmax_t>(k) / kSteps;
      while (true) {
        if (::waitpid(pid, &status, WNOHANG) == pid) {
          exited = true;
          break;
        }
        const auto tmp = temp_file_of(file, pid);
        std::error_code ec;
        if (tmp && fs::file_size(*tmp, ec) >= threshold && !ec) break;
        ::sched_yield();
      }
    }
    if (!exited) {
      if (k <= kSteps) ::kill(pid, SIGKILL);
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    }
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0);
    }

    Big loaded(3);
    io::load(loaded, file);
    if (same_bits(loaded.value(), (a_on_disk ? a : b).value())) {
      ++kept_previous;
    } else {
      ASSERT_TRUE(same_bits(loaded.value(), next.value()))
          << "the checkpoint is neither the previous one nor the new one";
      ++got_new;
      a_on_disk = !a_on_disk;
    }
    // A killed save cannot remove its temporary file; nothing else is left behind.
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path() == fs::path(file)) continue;
      EXPECT_EQ(e.path().filename().string().rfind(
                    io::detail::temp_prefix("model.safetensors") + std::to_string(pid) + ".", 0),
                0u)
          << e.path();
      fs::remove(e.path());
    }
  }
  EXPECT_GT(kept_previous, 0);
  EXPECT_GT(got_new, 0);
}

/// Two small parameters, so that every byte of the file can be damaged in turn.
class Small : public nn::Module<float> {
 public:
  explicit Small(std::uint64_t seed) {
    w_ = this->register_parameter("weight", Tensor<float>::randn({3, 2}, seed));
    b_ = this->register_parameter("bias", Tensor<float>::randn({3}, seed + 1));
  }
  Tensor<float> forward(const Tensor<float>& x) override { return linear(x, w_, b_); }
  std::string describe() const override { return "Small"; }

 private:
  Tensor<float> w_, b_;
};

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

struct Params {
  explicit Params(const nn::Module<float>& m) {
    for (const auto& p : m.parameters()) {
      values.push_back(p.value());
      versions.push_back(p.version());
    }
  }
  bool operator==(const Params& o) const {
    if (versions != o.versions || values.size() != o.values.size()) return false;
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!same_bits(values[i], o.values[i])) return false;
    }
    return true;
  }
  std::vector<Array<float>> values;
  std::vector<std::uint64_t> versions;
};

TEST_F(NothingLost, EveryTruncationAndEveryBitFlipIsRefusedAndChangesNothing) {
  const std::string good_file = path("good.safetensors");
  const std::string bad_file = path("bad.safetensors");
  io::save(Small(1), good_file);
  const std::string good = read_bytes(good_file);
  Small reference(3);
  io::load(reference, good_file);
  const Params intact(reference);
  // The one place where a flip may go unnoticed: the name of the checksum entry itself (the
  // file then just has no checksum), which leaves the data intact.
  const std::size_t key_at = good.find("xgrad.crc32");
  ASSERT_NE(key_at, std::string::npos);
  const std::size_t key_end = key_at + std::string("xgrad.crc32").size();

  int refused = 0;
  // Returns false when the damaged file was accepted (then with the intact values).
  auto load_damaged = [&](const std::string& bytes, const std::string& what) {
    write_bytes(bad_file, bytes);
    Small target(2);
    const Params before(target);
    try {
      io::load(target, bad_file);
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("xgrad::io::load: " + bad_file), std::string::npos)
          << e.what();
      EXPECT_TRUE(Params(target) == before) << what << " changed the module";
      ++refused;
      return true;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": not an IoError: " << e.what();
      return true;
    }
    EXPECT_TRUE(same_bits(Params(target).values[0], intact.values[0]) &&
                same_bits(Params(target).values[1], intact.values[1]))
        << what << " was accepted with other values";
    return false;
  };
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_TRUE(load_damaged(good.substr(0, n), "a file cut to " + std::to_string(n) + " bytes"));
  }
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string bytes = good;
    bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
    const bool in_key = bit / 8 >= key_at && bit / 8 < key_end;
    const bool was_refused = load_damaged(bytes, "bit " + std::to_string(bit) + " flipped");
    if (!in_key) {
      EXPECT_TRUE(was_refused) << "bit " << bit << " (byte " << bit / 8 << ") flipped";
    }
  }
  EXPECT_TRUE(load_damaged(good + std::string(1, '\0'), "a trailing byte"));
  EXPECT_GE(refused, static_cast<int>(good.size() * 9 + 1 - 8 * (key_end - key_at)));
}

}  // namespace
}  // namespace xgrad
