# Turns every ```cpp block of the given Markdown pages into code of one C++ file, so that the
# documentation's examples are compiled (and, where they are whole, run) by the test suite.
#
#   cmake -DROOT=<source dir> -DPAGES=<page,page,...> -DOUTPUT=<file.cpp> -P extract_snippets.cmake
#
# Each block must be preceded by a mark on the line above its fence, saying what it is:
#   <!-- snippet: main -->      a whole program; compiled, and its main() run (0 = pass)
#   <!-- snippet: run -->       statements; wrapped in a function that is compiled and run
#   <!-- snippet: fragment -->  statements; wrapped in a function that is compiled, not run
#                               (for code that needs data or time the suite does not have)
#   <!-- snippet: global -->    declarations at namespace scope (a new op, its instantiation)
#   <!-- snippet: row -->       add_case(...) rows of tests/ops_gradcheck_test.cpp: each row is
#                               gradchecked and gradgradchecked as that table does
#   <!-- snippet: benchmark --> a whole Google Benchmark program (at most one): written as it is
#                               to BENCHMARK_OUTPUT, which the suite builds and runs briefly
# A block without a mark is an error. #include lines move to the top of the file; #line
# directives make compiler errors point at the page and line of the snippet.

cmake_minimum_required(VERSION 3.25)

foreach(var ROOT PAGES OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "extract_snippets: -D${var}=... is required")
  endif()
endforeach()
string(REPLACE "," ";" pages "${PAGES}")

set(includes "")
set(globals "")
set(bodies "")
set(calls "")
set(count 0)
set(bench "")

foreach(page IN LISTS pages)
  file(READ "${page}" text)
  file(RELATIVE_PATH name "${ROOT}" "${page}")
  set(rest "${text}")
  set(offset 0)  # characters of `text` before `rest`
  while(TRUE)
    string(FIND "${rest}" "```cpp\n" open)
    if(open EQUAL -1)
      break()
    endif()
    string(SUBSTRING "${rest}" 0 ${open} before)
    math(EXPR code_start "${open} + 7")
    string(SUBSTRING "${rest}" ${code_start} -1 after)
    string(FIND "${after}" "\n```" close)
    if(close EQUAL -1)
      message(FATAL_ERROR "${name}: a ```cpp block is never closed")
    endif()
    math(EXPR close_with_newline "${close} + 1")
    string(SUBSTRING "${after}" 0 ${close_with_newline} code)
    math(EXPR consumed "${code_start} + ${close} + 4")
    string(SUBSTRING "${rest}" ${consumed} -1 rest)

    # Line of the block's first code line, for #line and messages.
    string(SUBSTRING "${text}" 0 ${offset} done)
    string(REGEX MATCHALL "\n" nl "${done}${before}")
    list(LENGTH nl line)
    math(EXPR line "${line} + 2")
    math(EXPR offset "${offset} + ${consumed}")

    if(NOT before MATCHES "<!-- snippet: ([a-z]+) -->[ \t]*\n[ \t]*$")
      math(EXPR fence "${line} - 1")
      message(FATAL_ERROR "${name}:${fence}: ```cpp block without a <!-- snippet: KIND --> mark "
                          "on the line above (KIND: main, run, fragment, global, row, benchmark)")
    endif()
    set(kind "${CMAKE_MATCH_1}")
    if(kind STREQUAL "benchmark")
      if(NOT bench STREQUAL "")
        message(FATAL_ERROR "${name}:${line}: a second benchmark snippet (one is allowed)")
      endif()
      set(bench "#line ${line} \"${name}\"\n${code}")
      continue()
    endif()

    string(REGEX MATCHALL "(^|\n)#include [^\n]*" incs "${code}")
    foreach(inc IN LISTS incs)
      string(STRIP "${inc}" inc)
      list(APPEND includes "${inc}")
    endforeach()
    # Blank them in place, so that the #line numbers still hold.
    string(REGEX REPLACE "(^|\n)#include [^\n]*" "\\1" code "${code}")

    math(EXPR count "${count} + 1")
    set(ns "snippet_${count}")
    set(where "${name}:${line}")
    set(at "#line ${line} \"${name}\"\n")
    if(kind STREQUAL "global")
      string(APPEND globals "// ${where}\n${at}${code}\n")
    elseif(kind STREQUAL "main")
      string(APPEND bodies "namespace ${ns} {  // ${where}\n${at}${code}}  // namespace ${ns}\n\n")
      string(APPEND calls "  failed += check(\"${where}\", [] { return ${ns}::main(); });\n")
    elseif(kind STREQUAL "run" OR kind STREQUAL "fragment")
      string(APPEND bodies "namespace ${ns} {  // ${where}\nvoid body() {\n${at}${code}}\n}  // namespace ${ns}\n\n")
      if(kind STREQUAL "run")
        string(APPEND calls "  failed += check(\"${where}\", [] { ${ns}::body(); return 0; });\n")
      endif()
    elseif(kind STREQUAL "row")
      string(APPEND bodies "namespace ${ns} {  // ${where}\nvoid body() {\n  using namespace xgrad;\n  using D = Tensor<double>;\n  GradcheckTable table;\n  auto add_case = [&](std::string name, std::vector<D> in, std::function<D(std::vector<D>&)> fn) {\n    table.add(name, std::move(in), std::move(fn));\n  };\n  using xgrad::test::off_zero;\n  using xgrad::test::uniform;\n${at}${code}  table.check();\n}\n}  // namespace ${ns}\n\n")
      string(APPEND calls "  failed += check(\"${where}\", [] { ${ns}::body(); return 0; });\n")
    else()
      message(FATAL_ERROR "${name}:${line}: unknown snippet kind '${kind}'")
    endif()
  endwhile()
endforeach()

list(REMOVE_DUPLICATES includes)
list(JOIN includes "\n" includes)
string(CONFIGURE [=[
// Generated by cmake/extract_snippets.cmake from the ```cpp blocks of the documentation.
// Edit the pages, not this file.

@includes@
#include <cstdio>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

// The input makers of tests/test_util.hpp, for `row` snippets (that header brings GoogleTest,
// whose ::testing would clash with xgrad::testing in snippets that use namespace xgrad).
namespace xgrad::test {
inline Tensor<double> uniform(const Shape& shape, std::uint64_t seed, double lo = -1,
                              double hi = 1) {
  auto t = Tensor<double>::rand(shape, seed);
  return Tensor<double>(Array<double>(t.value() * (hi - lo) + lo));
}
inline Tensor<double> off_zero(const Shape& shape, std::uint64_t seed, double gap = 0.2) {
  auto u = uniform(shape, seed).value();
  return Tensor<double>(Array<double>(xt::where(u >= 0, u + gap, u - gap)));
}
}  // namespace xgrad::test

namespace {

// The harness of `row` snippets: what tests/ops_gradcheck_test.cpp does with each row.
struct GradcheckTable {
  using D = xgrad::Tensor<double>;
  int rows = 0;
  void add(const std::string& name, const std::vector<D>& inputs,
           const std::function<D(std::vector<D>&)>& fn) {
    ++rows;
    const auto report = xgrad::testing::gradcheck(fn, inputs);
    if (!report) throw std::runtime_error("gradcheck of row " + name + ":\n" + report.summary());
    const auto second = xgrad::testing::gradgradcheck(fn, inputs);
    if (!second) {
      throw std::runtime_error("gradgradcheck of row " + name + ":\n" + second.summary());
    }
  }
  void check() const {
    if (rows == 0) throw std::runtime_error("the snippet adds no row");
  }
};

}  // namespace

@globals@
@bodies@
#line 10000 "doc_snippets.cpp"
namespace {
int check(const char* where, int (*fn)()) {
  try {
    const int rc = fn();
    if (rc == 0) return 0;
    std::fprintf(stderr, "%s: the snippet returned %d\n", where, rc);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: the snippet threw: %s\n", where, e.what());
  }
  return 1;
}
}  // namespace

int main() {
  int failed = 0;
@calls@
  std::printf("@count@ snippets compiled, %d of those run failed\n", failed);
  return failed == 0 ? 0 : 1;
}
]=] generated @ONLY)
if(DEFINED BENCHMARK_OUTPUT)
  if(bench STREQUAL "")
    set(bench "#include <benchmark/benchmark.h>\nBENCHMARK_MAIN();\n")
  endif()
  set(bench_generated "// Generated by cmake/extract_snippets.cmake from the benchmark snippet of the
// documentation. Edit the page, not this file.
${bench}")
  if(EXISTS "${BENCHMARK_OUTPUT}")
    file(READ "${BENCHMARK_OUTPUT}" previous)
    if(previous STREQUAL bench_generated)
      set(bench_same TRUE)
    endif()
  endif()
  if(NOT bench_same)
    file(WRITE "${BENCHMARK_OUTPUT}" "${bench_generated}")
  endif()
endif()
# Rewrite only on change, so that an unchanged page does not recompile the test.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" previous)
  if(previous STREQUAL generated)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${generated}")

