#include <xgrad/viz/progress.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <utility>

#include <xgrad/error.hpp>

#include "viz/common.hpp"

namespace xgrad::viz {

namespace detail {

std::string format_duration(double seconds) {
  // Beyond ~30 years an estimate means nothing, and llround would overflow.
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= 1e9) return "--:--";
  const long long total = std::llround(seconds);
  const long long h = total / 3600, m = total / 60 % 60, s = total % 60;
  char buf[48];
  if (h > 0) {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", h, m, s);
  } else {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", m, s);
  }
  return buf;
}

std::string format_thousands(std::size_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace detail

namespace {

constexpr std::size_t kBarWidth = 20;
constexpr double kRedrawInterval = 0.1;  // seconds: ~10 redraws a second is smooth, not noisy

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Four decimals for ordinary losses; scientific once those would hide the digits that change.
std::string format_loss(double loss) {
  const double a = std::abs(loss);
  if (std::isfinite(loss) && loss != 0 && (a < 1e-3 || a >= 1e5)) {
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof(buf), loss, std::chars_format::scientific, 2);
    return std::string(buf, res.ptr);
  }
  return detail::fixed(loss, 4);
}

std::string format_rate(double per_second) {
  if (per_second >= 1e15) return detail::shortest(per_second);
  if (per_second >= 100) {
    return detail::format_thousands(static_cast<std::size_t>(std::llround(per_second)));
  }
  if (per_second >= 1) return detail::fixed(per_second, 1);
  char buf[32];  // slow steps (a big model, or a stalled loader): three significant digits
  const auto res = std::to_chars(buf, buf + sizeof(buf), per_second, std::chars_format::general, 3);
  return std::string(buf, res.ptr);
}

}  // namespace

ProgressBar::ProgressBar(std::size_t total, std::string prefix, std::ostream& out,
                         std::optional<bool> interactive, Clock clock)
    : total_(total),
      prefix_(std::move(prefix)),
      out_(out),
      interactive_(interactive.value_or(&out == &std::cout && ::isatty(::fileno(stdout)) == 1)),
      clock_(clock ? std::move(clock) : Clock(steady_seconds)),
      start_(0) {
  if (total == 0) throw ValueError("xgrad::ProgressBar: total is 0, must be at least 1");
  start_ = clock_();
  now_ = start_;
}

ProgressBar::~ProgressBar() {
  if (!interactive_ || !drawn_ || finished_) return;
  try {
    out_ << '\n' << std::flush;
  } catch (...) {
    // A destructor must not throw; a stream set to throw has already reported its failure.
  }
}

void ProgressBar::update(std::size_t done, double loss, std::size_t examples_done) {
  if (finished_) throw ValueError("xgrad::ProgressBar::update: called after finish()");
  if (done > total_) {
    throw ValueError("xgrad::ProgressBar::update: done " + std::to_string(done) +
                     " exceeds total " + std::to_string(total_));
  }
  if (done < done_) {
    throw ValueError("xgrad::ProgressBar::update: done went back from " + std::to_string(done_) +
                     " to " + std::to_string(done));
  }
  done_ = done;
  loss_ = loss;
  has_loss_ = true;
  examples_ = examples_done;
  now_ = clock_();
  if (interactive_) {
    if (!drawn_ || now_ - last_draw_ >= kRedrawInterval || done == total_) {
      draw(line(false, ""), false);
    }
    return;
  }
  // The end is left to finish(), which prints it with the elapsed time and the summary.
  const std::size_t decile = done * 10 / total_;
  if (decile > printed_decile_ && done < total_) {
    printed_decile_ = decile;
    draw(line(false, ""), true);
  }
}

void ProgressBar::finish(const std::string& summary) {
  if (finished_) throw ValueError("xgrad::ProgressBar::finish: called twice");
  finished_ = true;
  now_ = clock_();
  draw(line(true, summary), true);
}

std::string ProgressBar::line(bool final, const std::string& summary) const {
  std::string s = prefix_;
  auto part = [&s](const std::string& text, const char* gap = " ") {
    if (!s.empty()) s += gap;
    s += text;
  };
  if (interactive_) {
    const std::size_t filled = done_ * kBarWidth / total_;
    std::string bar(kBarWidth, ' ');
    for (std::size_t i = 0; i < filled; ++i) bar[i] = '=';
    if (filled < kBarWidth) bar[filled] = '>';
    part("[" + bar + "]");
  }
  // The count is padded to the width of the total so the rest of the line does not jump.
  const std::string total = std::to_string(total_);
  std::string done = std::to_string(done_);
  done.insert(0, total.size() - done.size(), ' ');
  part(done + "/" + total);
  if (has_loss_) part("loss " + format_loss(loss_));
  const double elapsed = now_ - start_;
  if (elapsed > 0 && examples_ > 0) {
    part(format_rate(static_cast<double>(examples_) / elapsed) + " ex/s", "  ");
  }
  if (final) {
    part("time " + detail::format_duration(std::max(0.0, elapsed)), "  ");
    if (!summary.empty()) part(summary, "  ");
  } else if (elapsed > 0 && done_ > 0) {
    const double remaining = elapsed * static_cast<double>(total_ - done_) / done_;
    part("ETA " + detail::format_duration(remaining), "  ");
  }
  return s;
}

void ProgressBar::draw(const std::string& text, bool end_line) {
  if (interactive_) {
    out_ << '\r' << text;
    // Blanks over the tail of a longer previous line, which '\r' alone leaves behind.
    if (text.size() < last_length_) out_ << std::string(last_length_ - text.size(), ' ');
    last_length_ = end_line ? 0 : text.size();
    last_draw_ = now_;
    drawn_ = true;
  } else {
    out_ << text;
  }
  if (end_line) out_ << '\n';
  out_ << std::flush;
}

}  // namespace xgrad::viz
