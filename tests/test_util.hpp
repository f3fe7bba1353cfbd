#pragma once
// Small helpers shared by the tests.

#include <gtest/gtest.h>
#include <pthread.h>

#include <unistd.h>

#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <xgrad/xgrad.hpp>

namespace xgrad::test {

/// A directory of the running test's own under `base`, made empty at construction and removed
/// with everything in it at destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix,
                      const std::filesystem::path& base = std::filesystem::temp_directory_path())
      : dir_(base / (prefix + std::to_string(::getpid()) + "_" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& dir() const { return dir_; }
  /// `name` inside the directory.
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

/// Uniform values in [lo, hi), reproducible from the seed.
inline Tensor<double> uniform(const Shape& shape, std::uint64_t seed, double lo = -1,
                              double hi = 1) {
  auto t = Tensor<double>::rand(shape, seed);
  return Tensor<double>(Array<double>(t.value() * (hi - lo) + lo));
}

/// Values whose magnitude is at least `gap`: inputs moved off a kink at 0.
inline Tensor<double> off_zero(const Shape& shape, std::uint64_t seed, double gap = 0.2) {
  auto u = uniform(shape, seed).value();
  return Tensor<double>(Array<double>(xt::where(u >= 0, u + gap, u - gap)));
}

/// Runs `f` and expects it to throw E with a message containing every fragment.
template <class E, class F>
void expect_error(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "expected an exception";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments) {
      EXPECT_NE(msg.find(frag), std::string::npos) << "message: " << msg << "\nmissing: " << frag;
    }
  }
}

/// Runs fn on a thread with exactly `stack_bytes` of stack, rethrowing what it throws.
inline void run_with_stack(std::size_t stack_bytes, std::function<void()> fn) {
  struct Job {
    std::function<void()> fn;
    std::exception_ptr error;
  } job{std::move(fn), nullptr};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, stack_bytes), 0);
  pthread_t thread;
  auto body = [](void* p) -> void* {
    auto* j = static_cast<Job*>(p);
    try {
      j->fn();
    } catch (...) {
      j->error = std::current_exception();
    }
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, body, &job), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace xgrad::test
