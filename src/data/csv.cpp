#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <xgrad/data/csv.hpp>

#include "io_util.hpp"

namespace xgrad::data {

namespace {

constexpr const char* kOp = "xgrad::read_csv";

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t");
  return s.substr(first, last - first + 1);
}

std::vector<std::string_view> split(std::string_view line, char delimiter) {
  std::vector<std::string_view> cells;
  std::size_t start = 0;
  for (;;) {
    const auto end = line.find(delimiter, start);
    cells.push_back(line.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return cells;
    start = end + 1;
  }
}

/// Strips a trailing '\r' so that CRLF files read like LF ones.
std::string_view chomp(const std::string& line) {
  std::string_view v(line);
  if (!v.empty() && v.back() == '\r') v.remove_suffix(1);
  return v;
}

bool blank(std::string_view line) {
  return trim(line).empty();
}

/// Offset of the first byte that text does not hold: an invalid UTF-8 sequence or a control
/// character other than tab and carriage return; npos when there is none.
std::size_t first_non_text(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      if (c < 0x20 && c != '\t' && c != '\r') return i;
      ++i;
      continue;
    }
    // Lead byte: 110xxxxx, 1110xxxx or 11110xxx (overlong C0/C1 and F5+ are never valid).
    const std::size_t n = c >= 0xC2 && c <= 0xDF   ? 2
                          : (c & 0xF0) == 0xE0     ? 3
                          : c >= 0xF0 && c <= 0xF4 ? 4
                                                   : 0;
    if (n == 0 || i + n > s.size()) return i;
    for (std::size_t k = 1; k < n; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += n;
  }
  return std::string_view::npos;
}

/// A NUL byte is never in a CSV file: say at once that the file is binary.
void refuse_nul(const std::string& path, std::string_view line, std::size_t lineno,
                std::uint64_t line_start) {
  const auto nul = line.find('\0');
  if (nul == std::string_view::npos) return;
  detail::io_fail(kOp, path,
                  "line " + std::to_string(lineno) + ": a NUL byte at byte " +
                      std::to_string(line_start + nul) + ": this is a binary file, not CSV text");
}

/// For a line that did not parse: when it holds bytes that are not text, the likely cause.
std::string binary_hint(std::string_view line, std::uint64_t line_start) {
  const auto bad = first_non_text(line);
  if (bad == std::string_view::npos) return "";
  return "; the file looks binary, not CSV text (byte " + std::to_string(line_start + bad) +
         " is not text: invalid UTF-8 or a control character)";
}

}  // namespace

template <class T>
Csv<T> read_csv(const std::string& path, char delimiter) {
  detail::regular_file_size(kOp, path);  // a clear message for a missing file or a folder
  std::ifstream in(path);
  if (!in) detail::io_fail(kOp, path, std::string("cannot open: ") + std::strerror(errno));

  Csv<T> out;
  std::string line;
  if (!std::getline(in, line) || blank(chomp(line))) {
    detail::io_fail(kOp, path, "line 1: no header line naming the columns");
  }
  refuse_nul(path, line, 1, 0);
  for (auto cell : split(chomp(line), delimiter)) {
    cell = trim(cell);
    if (cell.size() >= 2 && (cell.front() == '"' || cell.front() == '\'') &&
        cell.back() == cell.front()) {
      cell = cell.substr(1, cell.size() - 2);
    }
    out.columns.emplace_back(cell);
  }
  const std::size_t cols = out.columns.size();

  std::vector<T> values;
  std::size_t rows = 0;
  std::size_t lineno = 1;
  std::uint64_t next_line = line.size() + 1;  // byte offset of the next line in the file
  std::size_t first_blank = 0;  // line number of the first blank line, 0 when none so far
  while (std::getline(in, line)) {
    ++lineno;
    const std::uint64_t line_start = next_line;
    next_line += line.size() + 1;
    refuse_nul(path, line, lineno, line_start);
    const std::string_view text = chomp(line);
    if (blank(text)) {
      if (first_blank == 0) first_blank = lineno;
      continue;
    }
    if (first_blank != 0) {
      detail::io_fail(kOp, path,
                      "line " + std::to_string(first_blank) +
                          ": empty line before more data (line " + std::to_string(lineno) + ")");
    }
    const auto cells = split(text, delimiter);
    if (cells.size() != cols) {
      detail::io_fail(kOp, path,
                      "line " + std::to_string(lineno) + " (byte " + std::to_string(line_start) +
                          "): " + std::to_string(cells.size()) +
                          (cells.size() == 1 ? " column" : " columns") + ", the header has " +
                          std::to_string(cols) + binary_hint(text, line_start));
    }
    for (std::size_t c = 0; c < cols; ++c) {
      const std::string_view cell = trim(cells[c]);
      const auto at = [&] {
        return " at byte " + std::to_string(line_start + std::uint64_t(cell.data() - text.data()));
      };
      // from_chars accepts no leading '+', which CSV writers do emit.
      const std::string_view digits =
          cell.size() > 1 && cell.front() == '+' ? cell.substr(1) : cell;
      T v{};
      const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (digits.empty() || ec == std::errc::invalid_argument ||
          ptr != digits.data() + digits.size()) {
        detail::io_fail(kOp, path,
                        "line " + std::to_string(lineno) + ", column " + std::to_string(c + 1) +
                            " ('" + out.columns[c] + "')" + at() + ": '" + std::string(cell) +
                            "' is not a number" + binary_hint(text, line_start));
      }
      if (ec == std::errc::result_out_of_range) {
        detail::io_fail(kOp, path,
                        "line " + std::to_string(lineno) + ", column " + std::to_string(c + 1) +
                            " ('" + out.columns[c] + "')" + at() + ": '" + std::string(cell) +
                            "' is out of range");
      }
      values.push_back(v);
    }
    ++rows;
  }
  if (in.bad()) detail::io_fail(kOp, path, "read error after line " + std::to_string(lineno));

  Array<T> table = Array<T>::from_shape({rows, cols});
  std::copy(values.begin(), values.end(), table.data());
  out.values = Tensor<T>(std::move(table));
  return out;
}

template Csv<float> read_csv<float>(const std::string&, char);
template Csv<double> read_csv<double>(const std::string&, char);

}  // namespace xgrad::data
