// Plots and progress: the SVG's structure and escaping, tick choice, the PNG's size and pixel
// colours (decoded back with stb_image), and the progress bar's lines under a fake clock.

#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <xgrad/viz/plot.hpp>
#include <xgrad/viz/progress.hpp>

#include "test_util.hpp"

// Static linkage keeps this decoder private to the test, whatever else links stb_image.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

namespace xgrad::viz {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// A fresh directory per test, removed afterwards.
class VizFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("xgrad_viz_" + std::to_string(::getpid()) + "_" +
                                        info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

/// The `d` attributes of the <path> elements, in order.
std::vector<std::string> path_data(const std::string& svg) {
  std::vector<std::string> out;
  for (auto pos = svg.find("<path d=\""); pos != std::string::npos;
       pos = svg.find("<path d=\"", pos + 1)) {
    const auto start = pos + 9;
    out.push_back(svg.substr(start, svg.find('"', start) - start));
  }
  return out;
}

/// Tags nest and close, and every '&' starts an entity: enough XML checking for our writer.
::testing::AssertionResult well_formed(const std::string& xml) {
  std::vector<std::string> open;
  for (std::size_t i = 0; i < xml.size(); ++i) {
    if (xml[i] == '&') {
      const auto semi = xml.find(';', i);
      const std::string entity = xml.substr(i, semi == std::string::npos ? 8 : semi - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" &&
          entity != "&apos;") {
        return ::testing::AssertionFailure() << "bad entity at " << i << ": " << entity;
      }
    }
    if (xml[i] != '<') continue;
    const auto end = xml.find('>', i);
    if (end == std::string::npos) return ::testing::AssertionFailure() << "unclosed tag at " << i;
    const std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag.find('<') != std::string::npos) {
      return ::testing::AssertionFailure() << "'<' inside tag at " << i;
    }
    if (tag.front() == '/') {
      if (open.empty() || open.back() != tag.substr(1)) {
        return ::testing::AssertionFailure() << "mismatched </" << tag.substr(1) << "> at " << i;
      }
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find(' ')));
    }
    i = end;
  }
  if (!open.empty()) return ::testing::AssertionFailure() << "<" << open.back() << "> not closed";
  return ::testing::AssertionSuccess();
}

TEST(VizTicks, NiceTicksAreOneTwoFiveMultiples) {
  EXPECT_EQ(detail::nice_step(0, 0.93), 0.2);
  EXPECT_EQ(detail::nice_ticks(0, 0.93), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8}));
  EXPECT_EQ(detail::nice_ticks(0, 1000), (std::vector<double>{0, 200, 400, 600, 800, 1000}));
  EXPECT_EQ(detail::nice_ticks(-3.7, 12.2), (std::vector<double>{0, 5, 10}));
  EXPECT_EQ(detail::nice_ticks(0.0012, 0.0093), (std::vector<double>{0.002, 0.004, 0.006, 0.008}));
  EXPECT_EQ(detail::nice_ticks(-0.3, 0.3, 6),
            (std::vector<double>{-0.3, -0.2, -0.1, 0, 0.1, 0.2, 0.3}));
  EXPECT_FALSE(std::signbit(detail::nice_ticks(-1, 1)[2]));  // 0, not -0

  // Over many ranges: a 1-2-5 step, at most max_intervals parts, and the next smaller 1-2-5 step
  // would need more.
  for (int i = 0; i < 300; ++i) {
    const double lo = std::sin(i * 1.7) * std::pow(10.0, i % 9 - 4);
    const double hi = lo + std::abs(std::cos(i * 0.9)) * std::pow(10.0, i % 7 - 3) + 1e-6;
    const int max_intervals = 3 + i % 7;  // from 3 on, a range always holds a tick
    const double step = detail::nice_step(lo, hi, max_intervals);
    const double exponent = std::floor(std::log10(step) + 1e-9);
    const double mantissa = step / std::pow(10.0, exponent);
    const bool one_two_five = std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 ||
                              std::abs(mantissa - 5) < 1e-9;
    EXPECT_TRUE(one_two_five) << "step " << step << " for [" << lo << ", " << hi << "]";
    EXPECT_LE((hi - lo) / step, max_intervals * (1 + 1e-9));
    const double smaller = std::abs(mantissa - 1) < 1e-9   ? step / 2
                           : std::abs(mantissa - 2) < 1e-9 ? step / 2
                                                           : step * 0.4;
    EXPECT_GT((hi - lo) / smaller, max_intervals) << "[" << lo << ", " << hi << "]";
    const auto ticks = detail::nice_ticks(lo, hi, max_intervals);
    ASSERT_FALSE(ticks.empty());
    const double slack = 1e-9 * step + 1e-12 * std::abs(lo);
    EXPECT_GE(ticks.front(), lo - slack);
    EXPECT_LE(ticks.back(), hi + slack);
    EXPECT_LE(ticks.size(), static_cast<std::size_t>(max_intervals + 1));
  }

  expect_error<ValueError>([] { detail::nice_ticks(1, 1); }, {"xgrad::nice_ticks", "[1, 1]"});
  expect_error<ValueError>([] { detail::nice_step(0, kNaN); }, {"xgrad::nice_step", "nan"});
  expect_error<ValueError>([] { detail::nice_ticks(0, 1, 0); }, {"max_intervals is 0"});
}

TEST(VizTicks, LogTicksLabelsAndEscaping) {
  EXPECT_EQ(detail::log_ticks(1e-4, 10), (std::vector<double>{1e-4, 1e-3, 1e-2, 0.1, 1, 10}));
  EXPECT_EQ(detail::log_ticks(0.3, 2), (std::vector<double>{0.5, 1, 2}));
  EXPECT_EQ(detail::log_ticks(2.5, 4.5), (std::vector<double>{3, 4}));
  EXPECT_LE(detail::log_ticks(1e-30, 1e30).size(), 10u);
  expect_error<ValueError>([] { detail::log_ticks(0, 1); }, {"xgrad::log_ticks", "not positive"});

  EXPECT_EQ(detail::tick_label(0.6000000000000001, 0.2), "0.6");
  EXPECT_EQ(detail::tick_label(0, 0.2), "0.0");
  EXPECT_EQ(detail::tick_label(-0.0, 0.5), "0.0");
  EXPECT_EQ(detail::tick_label(1500, 500), "1500");
  EXPECT_EQ(detail::tick_label(0.0025, 0.0005), "0.0025");
  EXPECT_EQ(detail::tick_label(-10, 10), "-10");
  EXPECT_EQ(detail::tick_label(2e8, 1e8), "2e+08");

  EXPECT_EQ(detail::xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
  EXPECT_EQ(detail::xml_escape(std::string("bell\a\ttab\xc3\xa9")), "bell?\ttab\xc3\xa9");
}

TEST_F(VizFiles, SvgHasOnePathPerSeriesLegendAndEscapedText) {
  std::vector<double> loss, acc;
  for (int i = 0; i < 50; ++i) {
    loss.push_back(0.93 * std::exp(-i / 10.0));
    acc.push_back(0.9 - 0.5 * std::exp(-i / 8.0));
  }
  const std::string path = file("loss.svg");
  line_plot_svg(path, {{"train <loss>", {}, loss}, {"val", {}, acc}},
                {"Loss & accuracy <run 1>", "epoch", "value \"raw\""});
  ASSERT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const std::string svg = slurp(path);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_TRUE(well_formed(svg));
  EXPECT_EQ(count(svg, "<path"), 2u);
  EXPECT_EQ(count(svg, "<polyline"), 0u);
  EXPECT_NE(svg.find(">train &lt;loss&gt;</text>"), std::string::npos);
  EXPECT_NE(svg.find(">val</text>"), std::string::npos);
  EXPECT_NE(svg.find(">Loss &amp; accuracy &lt;run 1&gt;</text>"), std::string::npos);
  EXPECT_NE(svg.find(">value &quot;raw&quot;</text>"), std::string::npos);
  EXPECT_EQ(svg.find("<run 1>"), std::string::npos);
  // y data in [0.0028, 0.93] gets a 0..1 axis labelled every 0.2.
  for (const char* label : {">0.0</text>", ">0.2</text>", ">0.8</text>", ">1.0</text>"}) {
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  }
  EXPECT_EQ(svg.find(">0.6000000000000001</text>"), std::string::npos);
  // Series colours differ.
  EXPECT_NE(svg.find("stroke=\"#1f77b4\" stroke-width=\"1.8\""), std::string::npos);
  EXPECT_NE(svg.find("stroke=\"#ff7f0e\" stroke-width=\"1.8\""), std::string::npos);
}

PlotOptions log_options(const std::string& title) {
  PlotOptions o;
  o.title = title;
  o.log_y = true;
  return o;
}

TEST_F(VizFiles, SvgSkipsNonFinitePointsAndDefaultsXToIndices) {
  const std::string a = file("a.svg"), b = file("b.svg");
  line_plot_svg(a, {{"y", {}, {1, 2, kNaN, 4, 5, kInf, 7}}});
  const auto d = path_data(slurp(a));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(count(d[0], "M"), 3u) << d[0];  // runs {1,2}, {4,5}, {7}
  EXPECT_EQ(count(d[0], "L"), 2u) << d[0];
  EXPECT_EQ(count(d[0], "l0 0"), 1u) << d[0];  // the lone last point is still drawn
  EXPECT_EQ(d[0].find("nan"), std::string::npos);

  line_plot_svg(b, {{"y", {0, 1, 2, 3, 4, 5, 6}, {1, 2, kNaN, 4, 5, kInf, 7}}});
  EXPECT_EQ(slurp(a), slurp(b));

  // A log axis skips values <= 0 the same way.
  line_plot_svg(a, {{"y", {}, {1, 0, -1, 10, 100}}}, log_options("log"));
  const auto dl = path_data(slurp(a));
  EXPECT_EQ(count(dl[0], "M"), 2u) << dl[0];
  EXPECT_EQ(count(dl[0], "L"), 1u) << dl[0];
  EXPECT_TRUE(well_formed(slurp(a)));
}

TEST_F(VizFiles, SvgExtremeRangesStayFiniteAndTerminate) {
  const std::string path = file("x.svg");
  const std::vector<Series> cases[] = {
      {{"ns timestamps", {1e19, 1e19 + 2048, 1e19 + 4096}, {1, 2, 3}}},  // ticks beyond 2^53
      {{"subnormal", {}, {1e-320, 2e-320}}},
      {{"constant", {}, {5, 5, 5}}},
      {{"one point", {3}, {7}}},
      {{"huge", {}, {-1e307, 1e307}}},
  };
  for (const auto& series : cases) {
    line_plot_svg(path, series);
    const std::string svg = slurp(path);
    EXPECT_TRUE(well_formed(svg)) << series[0].label;
    EXPECT_EQ(svg.find("nan"), std::string::npos) << series[0].label;
    EXPECT_EQ(svg.find("inf"), std::string::npos) << series[0].label;
    EXPECT_LE(count(svg, "<text"), 40u) << series[0].label;
  }
}

TEST_F(VizFiles, SvgErrors) {
  const std::string path = file("bad.svg");
  PlotOptions tiny;
  tiny.width = 10;
  expect_error<ValueError>([&] { line_plot_svg(path, {}); }, {"xgrad::line_plot_svg", "no series"});
  expect_error<ValueError>(
      [&] {
        line_plot_svg(path, {{"a", {}, {}}, {"b", {}, {}}});
      },
      {"xgrad::line_plot_svg", "no finite point", "2 series"});
  expect_error<ValueError>(
      [&] {
        line_plot_svg(path, {{"a", {}, {kNaN, kInf}}});
      },
      {"no finite point"});
  expect_error<ValueError>(
      [&] {
        line_plot_svg(path, {{"a", {}, {0, -1}}}, log_options(""));
      },
      {"no finite point", "log_y"});
  expect_error<ValueError>(
      [&] {
        line_plot_svg(path, {{"ok", {}, {1}}, {"val", {1, 2, 3}, {1, 2}}});
      },
      {"series 1 ('val')", "3 x values but 2 y values"});
  expect_error<ValueError>(
      [&] {
        line_plot_svg(path, {{"a", {}, {1}}}, tiny);
      },
      {"size 10x500 is too small"});
  EXPECT_FALSE(fs::exists(path));

  const std::string missing = file("no/such/dir/plot.svg");
  expect_error<IoError>(
      [&] {
        line_plot_svg(missing, {{"a", {}, {1, 2}}});
      },
      {"xgrad::line_plot_svg", "cannot write '" + missing + "'"});
  // A directory in the way of the rename: the temporary file is cleaned up.
  fs::create_directories(file("taken"));
  fs::create_directories(file("taken") + "/x");
  expect_error<IoError>(
      [&] {
        line_plot_svg(file("taken"), {{"a", {}, {1, 2}}});
      },
      {"cannot write '" + file("taken") + "'", "rename"});
  EXPECT_FALSE(fs::exists(file("taken") + ".tmp"));
}

/// Width and height from the IHDR chunk, which PNG requires to come first.
std::array<std::uint32_t, 2> png_size(const std::string& bytes) {
  auto be32 = [&](std::size_t at) {
    return (std::uint32_t(std::uint8_t(bytes[at])) << 24) |
           (std::uint32_t(std::uint8_t(bytes[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(bytes[at + 2])) << 8) |
           std::uint32_t(std::uint8_t(bytes[at + 3]));
  };
  return {be32(16), be32(20)};
}

/// Decoded RGB pixels of a PNG file.
struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;
  Rgb at(int x, int y) const {
    const std::size_t k = (static_cast<std::size_t>(y) * width + x) * 3;
    return {rgb[k], rgb[k + 1], rgb[k + 2]};
  }
};

Image decode(const std::string& path) {
  Image img;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &img.width, &img.height, &channels, 3);
  if (data == nullptr) {
    ADD_FAILURE() << "cannot decode " << path << ": " << stbi_failure_reason();
    return img;
  }
  img.rgb.assign(data, data + static_cast<std::size_t>(img.width) * img.height * 3);
  stbi_image_free(data);
  return img;
}

TEST_F(VizFiles, PngHeaderHasRequestedSize) {
  const std::string path = file("b.png");
  BoundaryOptions o;
  o.width = 64;
  o.height = 48;
  decision_boundary_png(
      path, [](double x, double) { return x > 0 ? 1.0 : 0.0; }, {{-1.0, 0.0}, {1.0, 1.0}}, {0, 1},
      o);
  const std::string bytes = slurp(path);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  EXPECT_EQ(png_size(bytes), (std::array<std::uint32_t, 2>{64, 48}));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(VizFiles, PngBackgroundFollowsScoreAndDiscsFollowLabels) {
  const std::string path = file("b.png");
  BoundaryOptions o;
  o.width = 100;
  o.height = 100;
  o.bounds = Bounds{-1, 1, -1, 1};
  // Each point sits on the side predicted as the other class, so its disc stands out.
  decision_boundary_png(
      path, [](double x, double) { return x > 0 ? 0.9 : 0.1; }, {{-0.5, 0.5}, {0.5, -0.5}}, {1, 0},
      o);
  const Image img = decode(path);
  ASSERT_EQ(img.width, 100);
  ASSERT_EQ(img.height, 100);
  EXPECT_EQ(img.at(10, 90), o.background[0]);  // x < 0
  EXPECT_EQ(img.at(10, 10), o.background[0]);
  EXPECT_EQ(img.at(90, 10), o.background[1]);  // x > 0
  EXPECT_EQ(img.at(90, 90), o.background[1]);
  EXPECT_EQ(img.at(49, 50), o.background[0]);  // pixel centres at x = -0.01 and +0.01
  EXPECT_EQ(img.at(50, 50), o.background[1]);
  // (-0.5, 0.5) is pixel (25, 25) counted from the top left; (0.5, -0.5) is (75, 75).
  EXPECT_EQ(img.at(25, 25), o.point_colour[1]);
  EXPECT_EQ(img.at(75, 75), o.point_colour[0]);
  const Rgb edge = img.at(28, 25);  // 3.5 px from the centre: on the outline
  EXPECT_LT(edge.r, 60);
  EXPECT_LT(edge.g, 60);
  EXPECT_LT(edge.b, 60);
  EXPECT_EQ(img.at(31, 25), o.background[0]);  // past the radius of 4

  // The threshold moves the class boundary: 0.1 >= 0.05 puts every pixel in class 1.
  o.threshold = 0.05;
  decision_boundary_png(
      path, [](double x, double) { return x > 0 ? 0.9 : 0.1; }, {}, {}, o);
  EXPECT_EQ(decode(path).at(10, 90), o.background[1]);
}

TEST_F(VizFiles, PngBatchedScoreSeesWholeGridOnce) {
  BoundaryOptions o;
  o.width = 40;
  o.height = 20;
  const std::vector<std::array<double, 2>> points{{0, 0}, {10, 5}, {4, 1}};
  const std::vector<int> labels{0, 1, 1};
  int calls = 0;
  std::vector<std::array<double, 2>> seen;
  decision_boundary_png(
      file("batched.png"),
      [&](const std::vector<std::array<double, 2>>& grid) {
        ++calls;
        seen = grid;
        std::vector<double> s;
        for (const auto& p : grid) s.push_back(p[0] + p[1] > 6 ? 1.0 : 0.0);
        return s;
      },
      points, labels, o);
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(seen.size(), 800u);
  // Bounds are the points' box grown by 10%: x in [-1, 11], y in [-0.5, 5.5]; the grid runs
  // over pixel centres from the top-left, row by row.
  EXPECT_DOUBLE_EQ(seen[0][0], -1 + 0.5 * 12.0 / 40);
  EXPECT_DOUBLE_EQ(seen[0][1], 5.5 - 0.5 * 6.0 / 20);
  EXPECT_DOUBLE_EQ(seen[1][0], -1 + 1.5 * 12.0 / 40);
  EXPECT_DOUBLE_EQ(seen[40][1], 5.5 - 1.5 * 6.0 / 20);
  EXPECT_DOUBLE_EQ(seen[799][0], 11 - 0.5 * 12.0 / 40);
  EXPECT_DOUBLE_EQ(seen[799][1], -0.5 + 0.5 * 6.0 / 20);

  // The one-point-at-a-time overload draws the same picture.
  decision_boundary_png(
      file("single.png"), [](double x, double y) { return x + y > 6 ? 1.0 : 0.0; }, points, labels,
      o);
  EXPECT_EQ(slurp(file("batched.png")), slurp(file("single.png")));
}

TEST_F(VizFiles, PngErrors) {
  const std::string path = file("bad.png");
  auto zero = [](double, double) { return 0.0; };
  BoundaryOptions o;
  o.width = 10;
  o.height = 10;
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(path, zero, {{0, 0}, {1, 1}}, {0}, o);
      },
      {"xgrad::decision_boundary_png", "2 points but 1 labels"});
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(path, zero, {{0, 0}, {1, 1}}, {0, 2}, o);
      },
      {"label 1 is 2, must be 0 or 1"});
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(path, zero, {{0, kNaN}}, {0}, o);
      },
      {"point 0 is (0, nan), not finite"});
  expect_error<ValueError>([&] { decision_boundary_png(path, zero, {}, {}, o); },
                           {"no points and no options.bounds"});
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(
            path, [](const std::vector<std::array<double, 2>>&) { return std::vector<double>(3); },
            {{0, 0}, {1, 1}}, {0, 1}, o);
      },
      {"returned 3 scores for 100 grid points (10x10)"});
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(
            path, [](double x, double) { return x > 0.5 ? kNaN : 0.0; }, {{0, 0}, {1, 1}}, {0, 1},
            o);
      },
      {"the score is nan at ("});
  expect_error<ValueError>(
      [&] { decision_boundary_png(path, std::function<double(double, double)>{}, {}, {}, o); },
      {"score function is empty"});
  BoundaryOptions bad = o;
  bad.width = 0;
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(path, zero, {{0, 0}}, {0}, bad);
      },
      {"size 0x10"});
  bad = o;
  bad.bounds = Bounds{1, 1, 0, 1};
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(path, zero, {{0, 0}}, {0}, bad);
      },
      {"bounds x [1, 1]", "min < max"});
  bad = o;
  bad.margin = -1;
  expect_error<ValueError>(
      [&] {
        decision_boundary_png(path, zero, {{0, 0}}, {0}, bad);
      },
      {"margin is -1"});
  EXPECT_FALSE(fs::exists(path));

  const std::string missing = file("missing/dir/b.png");
  expect_error<IoError>(
      [&] {
        decision_boundary_png(missing, zero, {{0, 0}}, {0}, o);
      },
      {"xgrad::decision_boundary_png", "cannot write '" + missing + "'"});
}

TEST(VizProgress, Formatting) {
  EXPECT_EQ(detail::format_duration(7), "0:07");
  EXPECT_EQ(detail::format_duration(59.6), "1:00");
  EXPECT_EQ(detail::format_duration(754), "12:34");
  EXPECT_EQ(detail::format_duration(3723), "1:02:03");
  EXPECT_EQ(detail::format_duration(kNaN), "--:--");
  EXPECT_EQ(detail::format_duration(-1), "--:--");
  EXPECT_EQ(detail::format_duration(kInf), "--:--");
  EXPECT_EQ(detail::format_thousands(0), "0");
  EXPECT_EQ(detail::format_thousands(999), "999");
  EXPECT_EQ(detail::format_thousands(1000), "1,000");
  EXPECT_EQ(detail::format_thousands(12345678), "12,345,678");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(VizProgress, PlainLinesEveryTenthThenSummary) {
  double t = 100;  // the origin of the clock is arbitrary
  std::ostringstream out;
  ProgressBar bar(20, "epoch 1", out, false, [&t] { return t; });
  EXPECT_FALSE(bar.interactive());
  for (std::size_t done = 1; done <= 20; ++done) {
    t = 100 + 0.5 * static_cast<double>(done);
    bar.update(done, 1.0 / static_cast<double>(done), done * 12345);
  }
  t = 111;
  bar.finish("val acc 0.9120");
  const std::string text = out.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 10u) << text;  // at 10%, 20%, ..., 90%, then the final line
  EXPECT_EQ(lines[0], "epoch 1  2/20 loss 0.5000  24,690 ex/s  ETA 0:09");
  EXPECT_EQ(lines[4], "epoch 1 10/20 loss 0.1000  24,690 ex/s  ETA 0:05");
  EXPECT_EQ(lines[8], "epoch 1 18/20 loss 0.0556  24,690 ex/s  ETA 0:01");
  EXPECT_EQ(lines[9], "epoch 1 20/20 loss 0.0500  22,445 ex/s  time 0:11  val acc 0.9120");
}

TEST(VizProgress, PlainLinesSkipDecilesJumpedOverAndFormatOddValues) {
  double t = 0;
  std::ostringstream out;
  ProgressBar bar(1000, "", out, std::nullopt, [&t] { return t; });
  EXPECT_FALSE(bar.interactive());  // not std::cout, so not a terminal
  bar.update(0, 2.0, 0);            // nothing yet, and no time has passed
  bar.update(50, 2.0, 0);           // below 10%
  t = 2;
  bar.update(550, 1.234e-5, 55);  // jumps to 55%: one line
  t = 4000;
  bar.update(600, kNaN, 60);
  bar.finish();
  const auto lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_EQ(lines[0], " 550/1000 loss 1.23e-05  27.5 ex/s  ETA 0:02");
  EXPECT_EQ(lines[1], " 600/1000 loss nan  0.015 ex/s  ETA 44:27");
  EXPECT_EQ(lines[2], " 600/1000 loss nan  0.015 ex/s  time 1:06:40");
}

TEST(VizProgress, InteractiveRedrawsInPlaceAtMostTenTimesASecond) {
  double t = 0;
  std::ostringstream out;
  ProgressBar bar(10, "epoch 2", out, true, [&t] { return t; });
  EXPECT_TRUE(bar.interactive());
  const double times[] = {0.01, 0.05, 0.08, 0.15, 0.2, 0.21, 0.22, 0.23, 0.24, 0.25};
  std::vector<std::size_t> redraws;
  for (std::size_t done = 1; done <= 10; ++done) {
    t = times[done - 1];
    const auto before = count(out.str(), "\r");
    bar.update(done, 1.0 / static_cast<double>(done), done * 32);
    if (count(out.str(), "\r") > before) redraws.push_back(done);
  }
  // The first update, the first 0.1 s after each redraw, and the end always draw.
  EXPECT_EQ(redraws, (std::vector<std::size_t>{1, 4, 10}));
  EXPECT_EQ(out.str().find('\n'), std::string::npos);
  const std::string after_four = out.str();
  const auto fourth = after_four.find("\repoch 2 [========>");
  ASSERT_NE(fourth, std::string::npos) << after_four;
  EXPECT_EQ(after_four.substr(fourth, after_four.find('\r', fourth + 1) - fourth),
            "\repoch 2 [========>           ]  4/10 loss 0.2500  853 ex/s  ETA 0:00" +
                std::string(2, ' '));  // blanks over the longer "3,200 ex/s" of the first line
  t = 0.5;
  bar.finish("done");
  const std::string text = out.str();
  EXPECT_EQ(count(text, "\r"), 4u);
  EXPECT_EQ(count(text, "\n"), 1u);
  EXPECT_EQ(text.substr(text.rfind('\r')),
            "\repoch 2 [====================] 10/10 loss 0.1000  640 ex/s  time 0:01  done\n");
}

TEST(VizProgress, InteractiveBlanksLeftoversAndEndsLineOnDestruction) {
  double t = 1;
  std::ostringstream out;
  {
    ProgressBar bar(3, "", out, true, [&t] { return t; });
    t = 2;
    bar.update(1, 123.456789, 10);
    t = 3;
    bar.update(2, kNaN, 0);  // shorter than the first line
  }
  const std::string first = "\r[======>             ] 1/3 loss 123.4568  10.0 ex/s  ETA 0:02";
  const std::string second = "\r[=============>      ] 2/3 loss nan  ETA 0:01";
  EXPECT_EQ(out.str(), first + second + std::string(first.size() - second.size(), ' ') + "\n");
}

TEST(VizProgress, Errors) {
  std::ostringstream out;
  auto clock = [] { return 0.0; };
  expect_error<ValueError>([&] { ProgressBar(0, "", out, false, clock); },
                           {"xgrad::ProgressBar", "total is 0"});
  ProgressBar bar(5, "", out, false, clock);
  expect_error<ValueError>([&] { bar.update(6, 0, 0); },
                           {"xgrad::ProgressBar::update", "done 6 exceeds total 5"});
  bar.update(3, 0, 0);
  expect_error<ValueError>([&] { bar.update(2, 0, 0); }, {"done went back from 3 to 2"});
  bar.finish();
  expect_error<ValueError>([&] { bar.update(4, 0, 0); }, {"called after finish()"});
  expect_error<ValueError>([&] { bar.finish(); }, {"finish: called twice"});
}

}  // namespace
}  // namespace xgrad::viz
