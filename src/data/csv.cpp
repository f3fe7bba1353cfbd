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
                          std::to_string(cols));
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
                            "' is not a number");
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
