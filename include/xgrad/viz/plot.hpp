#pragma once
// Pictures of training: loss curves as SVG (our own small writer, so there is no plotting
// dependency) and 2-D decision boundaries as PNG (pixels encoded by stb_image_write). Both write
// to `path + ".tmp"` and rename, so a failed run never leaves a half-written file at `path`.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xgrad::viz {

/// One line of a line plot; an empty `x` means 0, 1, ..., y.size() - 1.
struct Series {
  /// Legend text.
  std::string label;
  /// x coordinates (empty: 0, 1, 2, ...).
  std::vector<double> x;
  /// y coordinates.
  std::vector<double> y;
};

/// Text and size of a line plot.
struct PlotOptions {
  /// Text above the plot.
  std::string title;
  /// Text under the x axis.
  std::string x_label;
  /// Text beside the y axis.
  std::string y_label;
  bool log_y = false;  ///< log10 y axis; points with y <= 0 are skipped
  int width = 800;     ///< pixels, at least 200
  int height = 500;    ///< pixels, at least 150
};

/// Writes the series as an SVG line plot. Points with a non-finite x or y are skipped (the line
/// breaks there). Raises ValueError when no series has a point to draw, a series' x and y
/// lengths differ, the size is below the minimum or max - min overflows a double, and IoError
/// naming the path when the file cannot be written.
void line_plot_svg(const std::string& path, const std::vector<Series>& series,
                   const PlotOptions& options = {});

/// An 8-bit RGB colour.
struct Rgb {
  /// Red.
  std::uint8_t r = 0;
  /// Green.
  std::uint8_t g = 0;
  /// Blue.
  std::uint8_t b = 0;
  /// Same three components.
  bool operator==(const Rgb&) const = default;
};

/// The data-space rectangle a boundary image shows.
struct Bounds {
  /// Left edge.
  double x_min = 0;
  /// Right edge.
  double x_max = 0;
  /// Bottom edge.
  double y_min = 0;
  /// Top edge.
  double y_max = 0;
};

/// Size, area and colours of a decision-boundary image.
struct BoundaryOptions {
  int width = 500;   ///< pixels, 1 to 4096
  int height = 500;  ///< pixels, 1 to 4096
  /// Area shown; when unset, the points' bounding box grown by `margin` of its size on each side.
  std::optional<Bounds> bounds;
  /// Fraction of the points' extent added on each side when `bounds` is unset.
  double margin = 0.1;
  double threshold = 0.5;     ///< a score >= threshold predicts class 1
  double point_radius = 4.0;  ///< pixels, outline included; 0 draws no points
  std::array<Rgb, 2> background{Rgb{174, 199, 232}, Rgb{255, 187, 120}};  ///< by predicted class
  std::array<Rgb, 2> point_colour{Rgb{31, 119, 180}, Rgb{230, 100, 0}};   ///< by true label
  /// Colour of the points' outline.
  Rgb outline{40, 40, 40};
};

/// Scores every grid point in one call; returns one score per point, in order.
using BatchScore = std::function<std::vector<double>(const std::vector<std::array<double, 2>>&)>;

/// Writes a PNG whose background shows the predicted class at each pixel and whose points are
/// discs coloured by their label (0 or 1). `score` receives all pixel centres at once, row by row
/// from the top (largest y), left to right, so a model can score them in one forward pass.
/// Raises ValueError for mismatched points/labels, a label other than 0/1, a non-finite point or
/// score, a wrong number of scores or bad options, and IoError naming the path on write failure.
void decision_boundary_png(const std::string& path, const BatchScore& score,
                           const std::vector<std::array<double, 2>>& points,
                           const std::vector<int>& labels, const BoundaryOptions& options = {});

/// The same with a function scoring one point (x, y) at a time.
void decision_boundary_png(const std::string& path,
                           const std::function<double(double, double)>& score,
                           const std::vector<std::array<double, 2>>& points,
                           const std::vector<int>& labels, const BoundaryOptions& options = {});

namespace detail {

/// The smallest step of the form {1, 2, 5} x 10^k that cuts [lo, hi] into <= max_intervals parts.
/// These helpers raise ValueError for an empty or non-finite range or max_intervals < 1.
double nice_step(double lo, double hi, int max_intervals = 5);

/// The multiples of nice_step(lo, hi, max_intervals) inside [lo, hi], computed so that they equal
/// the decimal literals (0.6, not 0.6000000000000001).
std::vector<double> nice_ticks(double lo, double hi, int max_intervals = 5);

/// Ticks of a log axis over [lo, hi] (both > 0): decades, or 1-2-5 / 1..9 multiples of them
/// when the range is too short to show at least three decades. Raises ValueError unless
/// 0 < lo < hi < inf.
std::vector<double> log_ticks(double lo, double hi);

/// A tick's text with just the decimals that `step` needs ("0.2", "1500", "1e+08").
std::string tick_label(double value, double step);

/// `s` with & < > " ' escaped and characters XML 1.0 forbids replaced by '?'.
std::string xml_escape(std::string_view s);

}  // namespace detail

}  // namespace xgrad::viz
