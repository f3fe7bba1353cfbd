// Line plots as hand-written SVG: the format is text, so a few hundred lines buy a plot without a
// plotting dependency. Coordinates are written with std::to_chars so the C locale cannot turn
// decimal points into commas.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include <xgrad/error.hpp>
#include <xgrad/viz/plot.hpp>

#include "viz/common.hpp"

namespace xgrad::viz {

namespace detail {

namespace {

double pow10(int e) {
  static constexpr double kExact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  return e >= 0 && e <= 22 ? kExact[e] : std::pow(10.0, e);
}

/// k x 10^e. Dividing for negative e keeps ticks exact: 3 x 10^-1 gives the double nearest 0.3,
/// where 3 * 0.1 would give 0.30000000000000004.
double scaled(double k, int e) {
  return (e >= 0 ? k * pow10(e) : k / pow10(-e)) + 0.0;
}

struct Step {
  int mantissa;
  int exponent;
  double value() const { return scaled(mantissa, exponent); }
  double at(double k) const { return scaled(k * mantissa, exponent); }
};

void check_range(const char* op, double lo, double hi, int max_intervals) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(hi > lo) || !std::isfinite(hi - lo)) {
    throw ValueError(std::string("xgrad::") + op + ": range [" + shortest(lo) + ", " +
                     shortest(hi) + "] is empty or not finite");
  }
  if (max_intervals < 1) {
    throw ValueError(std::string("xgrad::") + op + ": max_intervals is " +
                     std::to_string(max_intervals) + ", must be at least 1");
  }
}

Step choose_step(double range, int max_intervals) {
  // The clamp keeps subnormal ranges from producing an infinite 10^-e; 5 x 10^307 and
  // 1 x 10^308 are still finite.
  const int e =
      std::clamp(static_cast<int>(std::floor(std::log10(range / max_intervals))), -300, 307);
  for (int m : {1, 2, 5}) {
    if (range / scaled(m, e) <= max_intervals * (1 + 1e-9)) return {m, e};
  }
  return {1, e + 1};
}

/// s.at(k) for k = k0, k0 + 1, ..., k1. Counting with an integer matters: beyond 2^53 (a range
/// of a few seconds on a nanosecond timestamp axis) ++k on a double can leave k unchanged.
std::vector<double> multiples(const Step& s, double k0, double k1) {
  std::vector<double> out;
  const double n = std::min(k1 - k0, 10000.0);
  for (long i = 0; i <= static_cast<long>(n); ++i) out.push_back(s.at(k0 + static_cast<double>(i)));
  return out;
}

}  // namespace

double nice_step(double lo, double hi, int max_intervals) {
  check_range("nice_step", lo, hi, max_intervals);
  return choose_step(hi - lo, max_intervals).value();
}

std::vector<double> nice_ticks(double lo, double hi, int max_intervals) {
  check_range("nice_ticks", lo, hi, max_intervals);
  const Step s = choose_step(hi - lo, max_intervals);
  const double v = s.value();
  // The tolerance keeps an end that is a multiple up to rounding (0.3 / 0.1 = 2.9999999999999996).
  return multiples(s, std::ceil(lo / v - 1e-9), std::floor(hi / v + 1e-9));
}

std::vector<double> log_ticks(double lo, double hi) {
  if (!(lo > 0) || !std::isfinite(hi) || !(hi > lo)) {
    throw ValueError("xgrad::log_ticks: range [" + shortest(lo) + ", " + shortest(hi) +
                     "] is empty, not finite or not positive");
  }
  const int d0 = static_cast<int>(std::floor(std::log10(lo)));
  const int d1 = static_cast<int>(std::ceil(std::log10(hi)));
  const std::vector<std::vector<int>> multiples{{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
  std::vector<double> ticks;
  for (const auto& ms : multiples) {
    ticks.clear();
    // Over many decades, label every k-th one so at most ~8 labels remain.
    const int every = ms.size() == 1 ? std::max(1, (d1 - d0 + 7) / 8) : 1;
    for (int d = d0; d <= d1; ++d) {
      if (d % every != 0) continue;
      for (int m : ms) {
        const double t = scaled(m, d);
        if (t >= lo * (1 - 1e-12) && t <= hi * (1 + 1e-12)) ticks.push_back(t);
      }
    }
    if (ticks.size() >= 3) break;
  }
  return ticks;
}

std::string tick_label(double value, double step) {
  if (std::abs(value) < std::abs(step) * 1e-9) value = 0.0;
  if (!(step > 0) || !std::isfinite(step) || std::abs(value) >= 1e7 || step < 1e-6) {
    return shortest(value + 0.0);
  }
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-6)));
  return fixed(value + 0.0, decimals);
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default: {
        const auto u = static_cast<unsigned char>(c);
        // XML 1.0 has no way to write these, not even as character references.
        out += (u < 0x20 && c != '\t' && c != '\n' && c != '\r') ? '?' : c;
      }
    }
  }
  return out;
}

namespace {

/// A plotted axis: [lo, hi] in plot space (log10 of the value on a log axis) and its ticks as
/// values, so labels show 0.01 rather than -2.
struct Axis {
  double lo = 0;
  double hi = 1;
  double step = 0;  ///< tick spacing on a linear axis, 0 on a log axis
  bool log = false;
  std::vector<double> ticks;
  double pos(double value) const { return log ? std::log10(value) : value; }
  std::string label(double value) const { return log ? shortest(value) : tick_label(value, step); }
};

/// Loose labelling: the axis ends on ticks, so the frame starts and stops at labelled values.
Axis linear_axis(double lo, double hi, int max_intervals) {
  if (hi <= lo) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const Step s = choose_step(hi - lo, max_intervals);
  const double v = s.value();
  const double k0 = std::floor(lo / v + 1e-9);
  // A range far below the smallest step (subnormal data) still needs an axis of positive length.
  const double k1 = std::max(std::ceil(hi / v - 1e-9), k0 + 1);
  Axis a;
  a.ticks = multiples(s, k0, k1);
  a.lo = a.ticks.front();
  a.hi = a.ticks.back();
  a.step = v;
  if (!(a.hi > a.lo)) a = Axis{lo, hi, hi - lo, false, {lo, hi}};  // never divide by a zero span
  return a;
}

/// A log axis fits the data with a small pad: rounding out to whole decades could waste most of
/// the plot on a curve spanning less than one.
Axis log_axis(double lo, double hi) {
  double llo = std::log10(lo);
  double lhi = std::log10(hi);
  if (lhi - llo < 1e-9) {
    llo -= 0.5;
    lhi += 0.5;
  }
  const double pad = 0.03 * (lhi - llo);
  Axis a;
  a.lo = llo - pad;
  a.hi = lhi + pad;
  a.log = true;
  a.ticks = log_ticks(std::pow(10.0, a.lo), std::pow(10.0, a.hi));
  return a;
}

}  // namespace

}  // namespace detail

namespace {

using detail::fixed;
using detail::xml_escape;

constexpr const char* kOp = "line_plot_svg";

std::string op_error(const std::string& what) {
  return std::string("xgrad::") + kOp + ": " + what;
}

std::string hex(Rgb c) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

/// Matplotlib's tab10, then hues a golden angle apart, which never repeat.
std::string series_colour(std::size_t i) {
  static const char* const kTab10[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (i < 10) return kTab10[i];
  const double h = std::fmod(static_cast<double>(i) * 137.50776405, 360.0) / 60.0;
  const double s = 0.65, l = 0.45;
  const double c = (1 - std::abs(2 * l - 1)) * s;
  const double x = c * (1 - std::abs(std::fmod(h, 2.0) - 1));
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(h)) {
    case 0:
      r = c, g = x;
      break;
    case 1:
      r = x, g = c;
      break;
    case 2:
      g = c, b = x;
      break;
    case 3:
      g = x, b = c;
      break;
    case 4:
      r = x, b = c;
      break;
    default:
      r = c, b = x;
      break;
  }
  const double m = l - c / 2;
  auto byte = [m](double v) { return static_cast<std::uint8_t>(std::lround((v + m) * 255)); };
  return hex(Rgb{byte(r), byte(g), byte(b)});
}

bool plottable(double x, double y, bool log_y) {
  return std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0);
}

double x_of(const Series& s, std::size_t i) {
  return s.x.empty() ? static_cast<double>(i) : s.x[i];
}

/// Text is measured by a fixed average glyph width: good enough to size margins and the legend
/// without a font engine.
double text_width(const std::string& s, double font_size) {
  return static_cast<double>(s.size()) * font_size * 0.6;
}

std::string num(double v) {
  return fixed(v, 2);
}

}  // namespace

void line_plot_svg(const std::string& path, const std::vector<Series>& series,
                   const PlotOptions& options) {
  if (options.width < 200 || options.height < 150) {
    throw ValueError(op_error("size " + std::to_string(options.width) + "x" +
                              std::to_string(options.height) + " is too small (minimum 200x150)"));
  }
  if (series.empty()) throw ValueError(op_error("no series to plot"));
  const bool log_y = options.log_y;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  for (std::size_t si = 0; si < series.size(); ++si) {
    const Series& s = series[si];
    if (!s.x.empty() && s.x.size() != s.y.size()) {
      throw ValueError(op_error("series " + std::to_string(si) + " ('" + s.label + "') has " +
                                std::to_string(s.x.size()) + " x values but " +
                                std::to_string(s.y.size()) + " y values"));
    }
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      const double x = x_of(s, i), y = s.y[i];
      if (!plottable(x, y, log_y)) continue;
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  if (x_lo > x_hi) {
    throw ValueError(op_error("no finite point to plot in " + std::to_string(series.size()) +
                              " series" + (log_y ? " (log_y skips values <= 0)" : "")));
  }
  if (!std::isfinite(x_hi - x_lo) || !std::isfinite(y_hi - y_lo)) {
    throw ValueError(op_error("values span too wide a range to plot: x in [" +
                              detail::shortest(x_lo) + ", " + detail::shortest(x_hi) + "], y in [" +
                              detail::shortest(y_lo) + ", " + detail::shortest(y_hi) + "]"));
  }

  const double width = options.width, height = options.height;
  const double top = options.title.empty() ? 16 : 44;
  const double bottom = options.x_label.empty() ? 36 : 58;
  const double right = 20;
  const double plot_h = height - top - bottom;
  // About one tick every 70 px vertically and 100 px horizontally.
  const detail::Axis ay = log_y ? detail::log_axis(y_lo, y_hi)
                                : detail::linear_axis(y_lo, y_hi, std::max(2, int(plot_h / 70)));
  double label_w = 0;
  for (double t : ay.ticks) label_w = std::max(label_w, text_width(ay.label(t), 12));
  const double left = 16 + label_w + (options.y_label.empty() ? 0 : 22);
  const double plot_w = width - left - right;
  const detail::Axis ax = detail::linear_axis(x_lo, x_hi, std::max(2, int(plot_w / 100)));
  auto px = [&](double x) { return left + (x - ax.lo) / (ax.hi - ax.lo) * plot_w; };
  auto py = [&](double y) { return top + plot_h - (ay.pos(y) - ay.lo) / (ay.hi - ay.lo) * plot_h; };

  std::string svg;
  svg.reserve(4096);
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(options.width) +
         "\" height=\"" + std::to_string(options.height) + "\" viewBox=\"0 0 " +
         std::to_string(options.width) + " " + std::to_string(options.height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";

  // Grid, tick marks and tick labels.
  svg += "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
  for (double t : ay.ticks) {
    const std::string y = num(py(t));
    svg += "<line x1=\"" + num(left) + "\" y1=\"" + y + "\" x2=\"" + num(left + plot_w) +
           "\" y2=\"" + y + "\"/>\n";
  }
  for (double t : ax.ticks) {
    const std::string x = num(px(t));
    svg += "<line x1=\"" + x + "\" y1=\"" + num(top) + "\" x2=\"" + x + "\" y2=\"" +
           num(top + plot_h) + "\"/>\n";
  }
  svg += "</g>\n<g stroke=\"#333333\" stroke-width=\"1\">\n";
  for (double t : ay.ticks) {
    const std::string y = num(py(t));
    svg += "<line x1=\"" + num(left - 5) + "\" y1=\"" + y + "\" x2=\"" + num(left) + "\" y2=\"" +
           y + "\"/>\n";
  }
  for (double t : ax.ticks) {
    const std::string x = num(px(t));
    svg += "<line x1=\"" + x + "\" y1=\"" + num(top + plot_h) + "\" x2=\"" + x + "\" y2=\"" +
           num(top + plot_h + 5) + "\"/>\n";
  }
  svg += "</g>\n<g fill=\"#333333\">\n";
  for (double t : ay.ticks) {
    svg += "<text x=\"" + num(left - 8) + "\" y=\"" + num(py(t) + 4) + "\" text-anchor=\"end\">" +
           xml_escape(ay.label(t)) + "</text>\n";
  }
  for (double t : ax.ticks) {
    svg += "<text x=\"" + num(px(t)) + "\" y=\"" + num(top + plot_h + 19) +
           "\" text-anchor=\"middle\">" + xml_escape(ax.label(t)) + "</text>\n";
  }
  svg += "</g>\n";
  svg += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(plot_w) +
         "\" height=\"" + num(plot_h) +
         "\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n";

  if (!options.title.empty()) {
    svg += "<text x=\"" + num(width / 2) +
           "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">" +
           xml_escape(options.title) + "</text>\n";
  }
  if (!options.x_label.empty()) {
    svg += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(height - 14) +
           "\" text-anchor=\"middle\" font-size=\"13\">" + xml_escape(options.x_label) +
           "</text>\n";
  }
  if (!options.y_label.empty()) {
    svg += "<text transform=\"translate(20 " + num(top + plot_h / 2) +
           ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">" +
           xml_escape(options.y_label) + "</text>\n";
  }

  // One <path> per series; a skipped point starts a new subpath, which breaks the line.
  for (std::size_t si = 0; si < series.size(); ++si) {
    const Series& s = series[si];
    std::string d;
    std::string last;
    std::size_t run = 0;
    auto end_run = [&] {
      if (run == 1) d += " l0 0";  // a lone point still shows, as a dot from the round cap
      run = 0;
      last.clear();
    };
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      const double x = x_of(s, i), y = s.y[i];
      if (!plottable(x, y, log_y)) {
        end_run();
        continue;
      }
      const std::string xy = num(px(x)) + " " + num(py(y));
      if (xy == last) continue;  // dense series: points on the same spot add only bytes
      d += (run == 0 ? (d.empty() ? "M" : " M") : " L") + xy;
      last = xy;
      ++run;
    }
    end_run();
    svg += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + series_colour(si) +
           "\" stroke-width=\"1.8\" stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n";
  }

  // Legend in the top-right corner of the plot, for the series that have a label.
  std::vector<std::size_t> labelled;
  double legend_text_w = 0;
  for (std::size_t si = 0; si < series.size(); ++si) {
    if (series[si].label.empty()) continue;
    labelled.push_back(si);
    legend_text_w = std::max(legend_text_w, text_width(series[si].label, 12));
  }
  if (!labelled.empty()) {
    const double row = 18;
    const double box_w = 10 + 24 + 6 + legend_text_w + 10;
    const double box_h = 8 + row * static_cast<double>(labelled.size());
    const double bx = left + plot_w - box_w - 8, by = top + 8;
    svg += "<rect x=\"" + num(bx) + "\" y=\"" + num(by) + "\" width=\"" + num(box_w) +
           "\" height=\"" + num(box_h) +
           "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>\n";
    for (std::size_t k = 0; k < labelled.size(); ++k) {
      const double cy = by + 4 + row * (static_cast<double>(k) + 0.5);
      svg += "<line x1=\"" + num(bx + 10) + "\" y1=\"" + num(cy) + "\" x2=\"" + num(bx + 34) +
             "\" y2=\"" + num(cy) + "\" stroke=\"" + series_colour(labelled[k]) +
             "\" stroke-width=\"2.5\"/>\n";
      svg += "<text x=\"" + num(bx + 40) + "\" y=\"" + num(cy + 4) + "\">" +
             xml_escape(series[labelled[k]].label) + "</text>\n";
    }
  }
  svg += "</svg>\n";
  detail::write_file_atomic(path, svg, kOp);
}

}  // namespace xgrad::viz
