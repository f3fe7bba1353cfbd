// Defects of saving and loading found by trying the library as a user would, with hostile files
// and faults, and the smaller defects met on the way (L-BFGS, Dropout, bce_with_logits). Each test
// failed before its fix.

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <xgrad/data/npy.hpp>
#include <xgrad/io/safetensors.hpp>
#include <xgrad/optim/lbfgs.hpp>

#include "test_util.hpp"

namespace xgrad {
namespace {

namespace fs = std::filesystem;
using test::expect_error;

class TwoParams : public nn::Module<float> {
 public:
  explicit TwoParams(std::uint64_t seed, std::size_t rows = 3) {
    w_ = this->register_parameter("weight", Tensor<float>::randn({rows, 2}, seed));
    b_ = this->register_parameter("bias", Tensor<float>::randn({rows}, seed + 1));
  }
  Tensor<float> forward(const Tensor<float>& x) override { return linear(x, w_, b_); }
  std::string describe() const override { return "TwoParams"; }
  const Tensor<float>& weight() const { return w_; }

 private:
  Tensor<float> w_, b_;
};

class IoDefects : public ::testing::Test {
 protected:
  test::ScratchDir scratch_{"xgrad_defects_"};
  const fs::path& dir_ = scratch_.dir();
  std::string path(const std::string& name) const { return scratch_.path(name); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

bool same_values(const Array<float>& a, const Array<float>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// 1. Opening a FIFO for reading blocks until a writer comes; the loaders must refuse it first.
// The loads run in a child with an alarm, so that the old behaviour fails instead of hanging.
TEST_F(IoDefects, FifoIsRefusedWithoutBlocking) {
  const std::string fifo = path("pipe.safetensors");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::alarm(20);  // a watchdog only: every load below returns at once when correct
    int refused = 0;
    auto attempt = [&](auto&& f) {
      try {
        f();
      } catch (const IoError& e) {
        if (std::strstr(e.what(), "not a regular file")) ++refused;
      } catch (...) {
      }
    };
    TwoParams m(1);
    attempt([&] { io::load_tensors<float>(fifo); });
    attempt([&] { io::load(m, fifo); });
    attempt([&] { io::load_metadata(fifo); });
    attempt([&] { io::load_into<float>(m.named_parameters(), fifo); });
    ::_exit(refused == 4 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_FALSE(WIFSIGNALED(status))
      << "a load blocked on the FIFO (killed by signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "not every load raised IoError 'not a regular file'";
}

// 2. Saving onto a FIFO or a device node must not replace it with a regular file.
TEST_F(IoDefects, SavingOntoANonRegularFileIsRefusedAndLeavesIt) {
  std::vector<std::string> targets;
  const std::string fifo = path("model.safetensors");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  targets.push_back(fifo);
  // Look-alikes of /dev/null and /dev/full where the system lets us make device nodes.
  for (const auto& [name, minor] : {std::pair{"null", 3u}, std::pair{"full", 7u}}) {
    const std::string dev = path(name);
    if (::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, minor)) == 0) targets.push_back(dev);
  }
  const TwoParams m(1);
  for (const auto& target : targets) {
    SCOPED_TRACE(target);
    struct stat before {};
    ASSERT_EQ(::lstat(target.c_str(), &before), 0);
    expect_error<IoError>([&] { io::save(m, target); },
                          {"xgrad::io::save", target, "only regular files are replaced"});
    expect_error<IoError>([&] { io::save_tensors<float>(m.named_parameters(), target); },
                          {"xgrad::io::save_tensors", target});
    expect_error<IoError>([&] { data::write_npy(m.weight(), target); },
                          {"xgrad::write_npy", target});
    struct stat after {};
    ASSERT_EQ(::lstat(target.c_str(), &after), 0);
    EXPECT_EQ(after.st_mode, before.st_mode);
    EXPECT_EQ(after.st_rdev, before.st_rdev);
    EXPECT_EQ(after.st_ino, before.st_ino);
  }
  EXPECT_EQ(entries().size(), targets.size()) << "a temporary file was left behind";
}

// 3. An overwrite keeps the permission bits of the file it replaces.
TEST_F(IoDefects, OverwriteKeepsTheFileMode) {
  const std::string file = path("model.safetensors");
  const std::string npy = path("weight.npy");
  const TwoParams m(1);
  io::save(m, file);
  data::write_npy(m.weight(), npy);
  for (const mode_t mode : {0600u, 0640u, 0604u}) {
    SCOPED_TRACE(mode);
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
    ASSERT_EQ(::chmod(npy.c_str(), mode), 0);
    io::save(m, file);
    data::write_npy(m.weight(), npy);
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, mode);
    ASSERT_EQ(::stat(npy.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, mode);
  }
}

// 4. A name at the 255-byte limit leaves no room for a suffix: temporary names have their own.
TEST_F(IoDefects, LongFileNamesSaveAndLoad) {
  for (const std::size_t length : {250u, 255u}) {
    const std::string name =
        std::string(length - std::string(".safetensors").size(), 'a') + ".safetensors";
    ASSERT_EQ(name.size(), length);
    const std::string file = path(name);
    const TwoParams m(1);
    io::save(m, file);
    TwoParams back(2);
    io::load(back, file);
    EXPECT_TRUE(same_values(back.weight().value(), m.weight().value()));
    data::write_npy(m.weight(), path(std::string(length - 4, 'n') + ".npy"));
  }
  EXPECT_EQ(entries().size(), 4u);
}

// 5. Saving through a symbolic link writes the file it points to, as ofstream and torch.save do.
TEST_F(IoDefects, SavingThroughASymlinkWritesItsTarget) {
  fs::create_directories(dir_ / "real");
  const std::string real = path("real/model.safetensors");
  const std::string link = path("latest.safetensors");
  fs::create_symlink("real/model.safetensors", link);  // relative, as users make them
  const TwoParams a(1), b(2);
  io::save(a, real);
  io::save(b, link);
  EXPECT_TRUE(fs::is_symlink(link));
  TwoParams back(3);
  io::load(back, real);
  EXPECT_TRUE(same_values(back.weight().value(), b.weight().value()));

  // A dangling link gets its target created; a chain of links is followed to the end.
  const std::string chain = path("chain.safetensors");
  fs::create_symlink("latest.safetensors", chain);
  const std::string dangling = path("next.safetensors");
  fs::create_symlink("real/next.safetensors", dangling);
  io::save(a, chain);
  io::save(a, dangling);
  data::write_npy(a.weight(), dangling);  // .npy through the same link
  EXPECT_TRUE(fs::is_symlink(chain) && fs::is_symlink(dangling));
  io::load(back, real);
  EXPECT_TRUE(same_values(back.weight().value(), a.weight().value()));
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(path("real/next.safetensors"))));
}

// 6. A save killed mid-write leaves its temporary file; the next save of the same file removes it,
// but never the temporary file of a process that is still alive.
TEST_F(IoDefects, StaleTemporaryFilesOfKilledSavesAreRemoved) {
  const std::string file = path("model.safetensors");
  const TwoParams big(1, 4096);  // 48 KiB of weights
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The file size limit kills the writer with SIGXFSZ part way through, like a SIGKILL would.
    const rlimit core{0, 0}, fsize{16384, 16384};
    ::setrlimit(RLIMIT_CORE, &core);
    ::setrlimit(RLIMIT_FSIZE, &fsize);
    ::signal(SIGXFSZ, SIG_DFL);
    try {
      io::save(big, file);
    } catch (...) {
    }
    ::_exit(3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ);
  auto left = entries();
  ASSERT_EQ(left.size(), 1u) << "the killed save left no temporary file";
  const std::string stale = left[0];
  // Hidden and ending in .tmp: never taken for a checkpoint by a glob or a listing.
  EXPECT_EQ(stale.front(), '.');
  EXPECT_EQ(stale.substr(stale.size() - 4), ".tmp");
  EXPECT_EQ(stale.find(".safetensors", stale.size() - 12), std::string::npos);

  // The same name with the pid of a live process (a child waiting on a pipe) and with ours.
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t live = ::fork();
  ASSERT_GE(live, 0);
  if (live == 0) {
    ::close(pipefd[1]);
    char c;
    while (::read(pipefd[0], &c, 1) < 0) {
    }
    ::_exit(0);
  }
  ::close(pipefd[0]);
  const std::string dead_pid = std::to_string(pid);
  const auto at = stale.find(".xgrad-tmp." + dead_pid + ".");
  ASSERT_NE(at, std::string::npos) << stale;
  auto renamed = [&](pid_t p) {
    std::string s = stale;
    return s.replace(at + 11, dead_pid.size(), std::to_string(p));
  };
  const std::string of_live = renamed(live), of_self = renamed(::getpid());
  std::ofstream(path(of_live)) << "in progress";
  std::ofstream(path(of_self)) << "in progress";
  // Another file's temporary file is not this save's business either.
  const std::string other = stale.substr(0, 1) + "other" + stale.substr(6);
  std::ofstream(path(other)) << "not ours";

  io::save(big, file);
  left = entries();
  std::vector<std::string> expected = {of_live, of_self, other, "model.safetensors"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(left, expected);
  ::close(pipefd[1]);
  ASSERT_EQ(::waitpid(live, &status, 0), live);
  TwoParams back(2, 4096);
  io::load(back, file);
  EXPECT_TRUE(same_values(back.weight().value(), big.weight().value()));
}

// 7. A double too large for float must not load as inf.
TEST_F(IoDefects, DoubleBeyondFloatRangeIsRefused) {
  const std::string file = path("wide.safetensors");
  io::save_tensors<double>(
      {{"weight", Tensor<double>(Array<double>{{1.0, 2.0}, {3.0, 1e39}, {4.0, 5.0}})},
       {"bias", Tensor<double>(Array<double>{1.0, 2.0, 3.0})}},
      file);
  expect_error<IoError>([&] { io::load_tensors<float>(file); },
                        {"xgrad::io::load_tensors", "'weight'", "1e+39", "element 3", "float"});
  TwoParams m(1);
  const Array<float> before = m.weight().value();
  expect_error<IoError>([&] { io::load(m, file); }, {"xgrad::io::load", "'weight'", "1e+39"});
  EXPECT_TRUE(same_values(m.weight().value(), before));
  // As double it loads; a float's own inf and the largest float still load as float.
  EXPECT_EQ(io::load_tensors<double>(file)[0].second(1, 1), 1e39);
  const double big = std::numeric_limits<float>::max();
  io::save_tensors<double>(
      {{"w", Tensor<double>(Array<double>{big, -std::numeric_limits<double>::infinity()})}}, file);
  const auto back = io::load_tensors<float>(file)[0].second;
  EXPECT_EQ(back(0), std::numeric_limits<float>::max());
  EXPECT_EQ(back(1), -std::numeric_limits<float>::infinity());
}

// 8. A closure that never calls backward() leaves no gradient: that is a mistake, not convergence.
TEST(OptimDefects, LbfgsClosureWithoutBackwardThrows) {
  auto x = Tensor<double>(Array<double>{1.0, 2.0}).requires_grad_();
  optim::LBFGS<double> opt({x});
  expect_error<ValueError>(
      [&] {
        opt.step([&] {
          opt.zero_grad();
          return sum(x * x);
        });
      },
      {"xgrad::LBFGS", "gradient", "backward()"});
  // With backward() it converges.
  const double loss = opt.step([&] {
    opt.zero_grad();
    auto l = sum(x * x);
    l.backward();
    return l;
  });
  EXPECT_LT(loss, 1e-8);
}

// 9. Dropout draws from the global generator: two layers differ, manual_seed repeats them, and an
// explicit seed or generator still gives a layer masks of its own.
TEST(NnDefects, DropoutDrawsFromTheGlobalGenerator) {
  const auto ones = Tensor<double>::ones({256});
  nn::Dropout<double> first(0.5), second(0.5);
  manual_seed(11);
  const Array<double> a = first(ones).value();
  const Array<double> b = second(ones).value();
  EXPECT_NE(a, b) << "two Dropout layers drew the same mask";
  manual_seed(11);
  EXPECT_EQ(first(ones).value(), a);
  EXPECT_EQ(second(ones).value(), b);
  EXPECT_EQ(&first.generator(), &default_generator());

  nn::Dropout<double> seeded1(0.5, 7), seeded2(0.5, 7);
  manual_seed(11);
  EXPECT_EQ(seeded1(ones).value(), seeded2(ones).value());
  Generator g1(5), g2(5);
  nn::Dropout<double> with1(0.5, g1), with2(0.5, g2);
  EXPECT_EQ(with1(ones).value(), with2(ones).value());
  EXPECT_EQ(&with1.generator(), &g1);
}

// 10. At infinite logits the loss is its limit, never NaN.
TEST(LossDefects, BceWithLogitsAtInfiniteLogits) {
  const double inf = std::numeric_limits<double>::infinity();
  auto x = Tensor<double>(Array<double>{inf, -inf, inf, -inf, 2.0}).requires_grad_();
  const auto y = Tensor<double>(Array<double>{1.0, 0.0, 0.0, 1.0, 1.0});
  const auto loss = bce_with_logits(x, y, Reduction::None).value();
  EXPECT_EQ(loss(0), 0.0);
  EXPECT_EQ(loss(1), 0.0);
  EXPECT_EQ(loss(2), inf);
  EXPECT_EQ(loss(3), inf);
  EXPECT_NEAR(loss(4), std::log1p(std::exp(-2.0)), 1e-15);
  auto agree = bce_with_logits(Tensor<double>(Array<double>{inf, -inf}).requires_grad_(),
                               Tensor<double>(Array<double>{1.0, 0.0}));
  EXPECT_EQ(agree.item(), 0.0);
  sum(bce_with_logits(x, y, Reduction::None)).backward();
  for (const double g : x.grad().value()) EXPECT_TRUE(std::isfinite(g));
}

}  // namespace
}  // namespace xgrad
