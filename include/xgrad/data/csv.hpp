#pragma once
// Numeric CSV tables with one header line.

#include <string>
#include <vector>

#include <xgrad/tensor.hpp>

namespace xgrad::data {

/// A CSV table: the header's column names and the cells as [rows, columns].
template <class T>
struct Csv {
  /// Column names from the header line.
  std::vector<std::string> columns;
  /// The numbers, [rows, columns].
  Tensor<T> values;
};

/// Reads a CSV file whose first line names the columns (surrounding quotes and spaces are
/// stripped) and whose other lines hold numbers only. CRLF line ends and empty lines at the end are
/// accepted. A ragged row, an empty line before the end or a cell that is not a number raises
/// IoError naming the path, the line, the column and the byte offset. A NUL byte is refused as a
/// binary file, and a line that fails to parse in a file holding bytes that are not text (invalid
/// UTF-8, control characters) says that the file looks binary.
template <class T>
Csv<T> read_csv(const std::string& path, char delimiter = ',');

}  // namespace xgrad::data
