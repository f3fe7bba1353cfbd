// Decision-boundary images: the pixels are ours, the PNG encoding is stb_image_write's. Its
// implementation is compiled here, and only here, with static linkage so another copy elsewhere
// in a program cannot collide with it.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/error.hpp>
#include <xgrad/viz/plot.hpp>

#include "viz/common.hpp"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace xgrad::viz {

namespace {

constexpr const char* kOp = "decision_boundary_png";
constexpr int kMaxSide = 4096;  // the grid of pixel centres alone is 16 bytes a pixel

std::string op_error(const std::string& what) {
  return std::string("xgrad::") + kOp + ": " + what;
}

std::string point_str(double x, double y) {
  return "(" + detail::shortest(x) + ", " + detail::shortest(y) + ")";
}

void check_options(const BoundaryOptions& o) {
  if (o.width < 1 || o.width > kMaxSide || o.height < 1 || o.height > kMaxSide) {
    throw ValueError(op_error("size " + std::to_string(o.width) + "x" + std::to_string(o.height) +
                              " is outside 1x1 to " + std::to_string(kMaxSide) + "x" +
                              std::to_string(kMaxSide)));
  }
  if (!std::isfinite(o.margin) || o.margin < 0) {
    throw ValueError(
        op_error("margin is " + detail::shortest(o.margin) + ", must be finite and >= 0"));
  }
  if (std::isnan(o.threshold)) throw ValueError(op_error("threshold is nan"));
  if (!std::isfinite(o.point_radius) || o.point_radius < 0) {
    throw ValueError(op_error("point_radius is " + detail::shortest(o.point_radius) +
                              ", must be finite and >= 0"));
  }
  if (o.bounds) {
    const Bounds& b = *o.bounds;
    const bool finite = std::isfinite(b.x_min) && std::isfinite(b.x_max) &&
                        std::isfinite(b.y_min) && std::isfinite(b.y_max) &&
                        std::isfinite(b.x_max - b.x_min) && std::isfinite(b.y_max - b.y_min);
    if (!finite || !(b.x_min < b.x_max) || !(b.y_min < b.y_max)) {
      throw ValueError(op_error("bounds x [" + detail::shortest(b.x_min) + ", " +
                                detail::shortest(b.x_max) + "], y [" + detail::shortest(b.y_min) +
                                ", " + detail::shortest(b.y_max) +
                                "] must be finite with min < max"));
    }
  }
}

/// One coordinate's [min, max] grown by the margin; a zero span gets a pad of its own so a single
/// point (or a vertical line of points) still has an area around it.
std::pair<double, double> padded(double lo, double hi, double margin) {
  const double span = hi - lo;
  const double pad = span > 0 ? margin * span : (lo == 0 ? 1.0 : 0.1 * std::abs(lo));
  return {lo - pad, hi + pad};
}

Bounds resolve_bounds(const std::vector<std::array<double, 2>>& points, const BoundaryOptions& o) {
  if (o.bounds) return *o.bounds;
  if (points.empty()) throw ValueError(op_error("no points and no options.bounds to set the area"));
  double x_lo = points[0][0], x_hi = x_lo, y_lo = points[0][1], y_hi = y_lo;
  for (const auto& p : points) {
    x_lo = std::min(x_lo, p[0]);
    x_hi = std::max(x_hi, p[0]);
    y_lo = std::min(y_lo, p[1]);
    y_hi = std::max(y_hi, p[1]);
  }
  const auto [bx0, bx1] = padded(x_lo, x_hi, o.margin);
  const auto [by0, by1] = padded(y_lo, y_hi, o.margin);
  if (!std::isfinite(bx1 - bx0) || !std::isfinite(by1 - by0)) {
    throw ValueError(op_error("points span too wide an area: x [" + detail::shortest(x_lo) + ", " +
                              detail::shortest(x_hi) + "], y [" + detail::shortest(y_lo) + ", " +
                              detail::shortest(y_hi) + "]"));
  }
  return {bx0, bx1, by0, by1};
}

void blend(std::uint8_t* px, Rgb c, double alpha) {
  auto mix = [alpha](std::uint8_t under, std::uint8_t over) {
    return static_cast<std::uint8_t>(std::lround(under * (1 - alpha) + over * alpha));
  };
  px[0] = mix(px[0], c.r);
  px[1] = mix(px[1], c.g);
  px[2] = mix(px[2], c.b);
}

/// A filled disc with an outline; the edges are anti-aliased by the distance to each circle.
void draw_disc(std::vector<std::uint8_t>& rgb, int width, int height, double cx, double cy,
               double radius, Rgb fill, Rgb outline) {
  if (!(cx + radius + 1 >= 0 && cx - radius - 1 <= width && cy + radius + 1 >= 0 &&
        cy - radius - 1 <= height)) {
    return;  // off the image (or infinitely far, for a tiny area); also keeps the casts defined
  }
  const double inner = radius - std::min(1.5, radius / 2);
  const int i0 = std::max(0, static_cast<int>(std::floor(cx - radius - 1)));
  const int i1 = std::min(width - 1, static_cast<int>(std::ceil(cx + radius + 1)));
  const int j0 = std::max(0, static_cast<int>(std::floor(cy - radius - 1)));
  const int j1 = std::min(height - 1, static_cast<int>(std::ceil(cy + radius + 1)));
  for (int j = j0; j <= j1; ++j) {
    for (int i = i0; i <= i1; ++i) {
      const double d = std::hypot(i + 0.5 - cx, j + 0.5 - cy);
      std::uint8_t* px = &rgb[(static_cast<std::size_t>(j) * width + i) * 3];
      const double a_out = std::clamp(radius + 0.5 - d, 0.0, 1.0);
      if (a_out > 0) blend(px, outline, a_out);
      const double a_in = std::clamp(inner + 0.5 - d, 0.0, 1.0);
      if (a_in > 0) blend(px, fill, a_in);
    }
  }
}

void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<std::size_t>(size));
}

}  // namespace

void decision_boundary_png(const std::string& path, const BatchScore& score,
                           const std::vector<std::array<double, 2>>& points,
                           const std::vector<int>& labels, const BoundaryOptions& options) {
  check_options(options);
  if (!score) throw ValueError(op_error("the score function is empty"));
  if (points.size() != labels.size()) {
    throw ValueError(op_error(std::to_string(points.size()) + " points but " +
                              std::to_string(labels.size()) + " labels"));
  }
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (!std::isfinite(points[i][0]) || !std::isfinite(points[i][1])) {
      throw ValueError(op_error("point " + std::to_string(i) + " is " +
                                point_str(points[i][0], points[i][1]) + ", not finite"));
    }
    if (labels[i] != 0 && labels[i] != 1) {
      throw ValueError(op_error("label " + std::to_string(i) + " is " + std::to_string(labels[i]) +
                                ", must be 0 or 1"));
    }
  }
  const Bounds b = resolve_bounds(points, options);
  const int w = options.width, h = options.height;
  const double dx = (b.x_max - b.x_min) / w, dy = (b.y_max - b.y_min) / h;

  const std::size_t n = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
  std::vector<std::array<double, 2>> grid(n);
  for (int j = 0; j < h; ++j) {
    for (int i = 0; i < w; ++i) {
      grid[static_cast<std::size_t>(j) * w + i] = {b.x_min + (i + 0.5) * dx,
                                                   b.y_max - (j + 0.5) * dy};
    }
  }
  const std::vector<double> scores = score(grid);
  if (scores.size() != n) {
    throw ValueError(op_error("the score function returned " + std::to_string(scores.size()) +
                              " scores for " + std::to_string(n) + " grid points (" +
                              std::to_string(w) + "x" + std::to_string(h) + ")"));
  }

  std::vector<std::uint8_t> rgb(n * 3);
  for (std::size_t k = 0; k < n; ++k) {
    if (std::isnan(scores[k])) {
      throw ValueError(op_error("the score is nan at " + point_str(grid[k][0], grid[k][1]) +
                                " (grid point " + std::to_string(k) + ")"));
    }
    const Rgb c = options.background[scores[k] >= options.threshold ? 1 : 0];
    rgb[3 * k] = c.r;
    rgb[3 * k + 1] = c.g;
    rgb[3 * k + 2] = c.b;
  }
  if (options.point_radius > 0) {
    for (std::size_t i = 0; i < points.size(); ++i) {
      const double cx = (points[i][0] - b.x_min) / dx;
      const double cy = (b.y_max - points[i][1]) / dy;
      draw_disc(rgb, w, h, cx, cy, options.point_radius,
                options.point_colour[static_cast<std::size_t>(labels[i])], options.outline);
    }
  }

  std::string png;
  if (stbi_write_png_to_func(append_bytes, &png, w, h, 3, rgb.data(), w * 3) == 0) {
    throw IoError(op_error("cannot write '" + path + "': PNG encoding failed"));
  }
  detail::write_file_atomic(path, png, kOp);
}

void decision_boundary_png(const std::string& path,
                           const std::function<double(double, double)>& score,
                           const std::vector<std::array<double, 2>>& points,
                           const std::vector<int>& labels, const BoundaryOptions& options) {
  if (!score) throw ValueError(op_error("the score function is empty"));
  const BatchScore batch = [&score](const std::vector<std::array<double, 2>>& grid) {
    std::vector<double> out;
    out.reserve(grid.size());
    for (const auto& p : grid) out.push_back(score(p[0], p[1]));
    return out;
  };
  decision_boundary_png(path, batch, points, labels, options);
}

}  // namespace xgrad::viz
