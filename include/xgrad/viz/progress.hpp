#pragma once
// A training progress bar. On a terminal it redraws one line in place (at most ~10 times a
// second); in a log it prints a plain line every 10% so logs stay short.

#include <cstddef>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

namespace xgrad::viz {

/// Progress of one loop of `total` steps (an epoch of batches), with loss, rate and ETA.
class ProgressBar {
 public:
  /// Seconds from an arbitrary origin; only differences are used.
  using Clock = std::function<double()>;

  /// `interactive` defaults to whether `out` is std::cout and stdout is a terminal; `clock`
  /// defaults to std::chrono::steady_clock (inject one to test without sleeping).
  /// Raises ValueError if total is 0.
  explicit ProgressBar(std::size_t total, std::string prefix = "", std::ostream& out = std::cout,
                       std::optional<bool> interactive = std::nullopt, Clock clock = {});
  /// Ends a redrawn line that finish() did not end, so the shell prompt starts on a new line.
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Reports `done` of total steps, the latest loss and the examples seen since construction.
  /// Raises ValueError if done exceeds total or goes backwards, or after finish().
  void update(std::size_t done, double loss, std::size_t examples_done);
  /// Prints the final line (elapsed time instead of ETA) followed by `summary` and a newline.
  /// Raises ValueError if called twice.
  void finish(const std::string& summary = "");

  /// Whether lines are redrawn in place with '\\r'.
  bool interactive() const { return interactive_; }

 private:
  std::string line(bool final, const std::string& summary) const;
  void draw(const std::string& text, bool end_line);

  std::size_t total_;
  std::string prefix_;
  std::ostream& out_;
  bool interactive_;
  Clock clock_;
  double start_;
  double now_ = 0;
  double last_draw_ = 0;
  bool drawn_ = false;
  bool finished_ = false;
  bool has_loss_ = false;
  std::size_t done_ = 0;
  std::size_t examples_ = 0;
  double loss_ = 0;
  std::size_t printed_decile_ = 0;
  std::size_t last_length_ = 0;
};

namespace detail {

/// "0:07", "12:34", "1:02:03" (rounded to whole seconds); "--:--" if negative or not finite.
std::string format_duration(double seconds);

/// Digits grouped by commas: 12345 -> "12,345".
std::string format_thousands(std::size_t n);

}  // namespace detail

}  // namespace xgrad::viz
