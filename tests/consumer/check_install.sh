#!/usr/bin/env bash
# Installs a built xgrad tree into a temporary prefix and uses it as an outside project would:
# find_package (tests/consumer/CMakeLists.txt, shared and static) and pkg-config. Run by ctest.
#   check_install.sh <build dir> <work dir> <version> <c++ compiler> [compile/link flags]
# The flags are the sanitizer's in a -DXGRAD_SANITIZE=ON build: a sanitized library needs a
# sanitized program around it.
set -euo pipefail
build=$1 work=$2 version=$3 cxx=$4 flags=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
prefix=$work/prefix

fail() {
  echo "check_install: FAIL: $*" >&2
  exit 1
}
step() { echo "check_install: $*"; }

rm -rf "$work"
mkdir -p "$work"

step "installing into $prefix"
cmake --build "$build" --target xgrad_static xgrad_shared >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; fail "building the libraries"; }
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; fail "cmake --install"; }
libdir=$(cd "$prefix" && find . -name libxgrad.a -printf '%h\n' | sed 's|^\./||')
[ -n "$libdir" ] || fail "no libxgrad.a under $prefix"
for f in include/xgrad/xgrad.hpp include/xgrad/version.hpp include/xgrad/config.hpp \
         include/xgrad/nn/layers.hpp "$libdir/libxgrad.a" "$libdir/libxgrad.so" \
         "$libdir/cmake/xgrad/xgradConfig.cmake" "$libdir/cmake/xgrad/xgradConfigVersion.cmake" \
         "$libdir/pkgconfig/xgrad.pc"; do
  [ -e "$prefix/$f" ] || fail "missing $f in the installed tree"
done
# Installed headers are all a user has: their comments must not send them to the repository.
cited=$(grep -rnE '[A-Za-z0-9_]+\.(md|py)\b|\b(src|tests|docs|examples|benchmarks)/|CMakeLists' \
  "$prefix/include/xgrad" || true)
[ -z "$cited" ] || fail "installed headers cite files outside the package: $cited"
grep -q "#define XGRAD_VERSION_STRING \"$version\"" "$prefix/include/xgrad/version.hpp" ||
  fail "installed version.hpp does not say $version"

step "find_package(xgrad) from $here"
cmake -S "$here" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configuring the consumer"; }
cmake --build "$work/consumer" >"$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log"; fail "building the consumer"; }
expected="xgrad $version \([0-9]+\): loss [0-9.]+ -> [0-9.e+-]+, w 2\.0000, b 1\.0000"
for exe in consumer consumer_static; do
  out=$("$work/consumer/$exe") || fail "$exe exited with $?: $out"
  echo "  $exe: $out"
  [[ $out =~ $expected ]] || fail "$exe printed '$out', expected /$expected/"
done
# The default target links the shared library; the static one must not need it at run time.
# (ldd's output is kept whole: `grep -q` in a pipe may end it early, which pipefail reports.)
deps=$(ldd "$work/consumer/consumer")
[[ $deps == *libxgrad.so* ]] || fail "consumer does not load libxgrad.so: $deps"
deps=$(ldd "$work/consumer/consumer_static")
[[ $deps != *libxgrad.so* ]] || fail "consumer_static loads libxgrad.so"

step "pkg-config"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
[ "$(pkg-config --modversion xgrad)" = "$version" ] || fail "pkg-config --modversion xgrad"
pc=$(pkg-config --cflags --libs xgrad) || fail "pkg-config --cflags --libs xgrad"
echo "  pkg-config --cflags --libs xgrad: $pc"
static_libs=$(pkg-config --static --libs xgrad)
for l in -lxgrad -lopenblas -lz -lhdf5; do
  [[ " $static_libs " == *" $l "* ]] || fail "pkg-config --static --libs lacks $l: $static_libs"
done
# The package's own flags must be enough to run the program from a prefix the dynamic loader does
# not search: Libs carries the rpath, and LD_LIBRARY_PATH is cleared for the run.
[[ " $pc " == *" -Wl,-rpath,"* ]] || fail "pkg-config --libs xgrad has no rpath: $pc"
# shellcheck disable=SC2086  # the flags are meant to split
"$cxx" -std=c++20 $flags "$here/pkgconfig_main.cpp" -o "$work/pc_consumer" $pc \
  >"$work/pc.log" 2>&1 || { cat "$work/pc.log"; fail "compiling with pkg-config's flags"; }
deps=$(env -u LD_LIBRARY_PATH ldd "$work/pc_consumer")
[[ $deps == *"$prefix/"*libxgrad.so* ]] || fail "pc_consumer does not find libxgrad.so in $prefix: $deps"
out=$(env -u LD_LIBRARY_PATH "$work/pc_consumer") || fail "pc_consumer exited with $?"
echo "  pc_consumer: $out"
[ "$out" = "xgrad $version via pkg-config: sum 30, grad [2 4 6 8]" ] || fail "pc_consumer printed '$out'"
if [[ " $pc " == *" -march=native "* ]]; then
  # Without the package's ISA flags the Array type would differ from the library's: config.hpp
  # must say so at compile time (not leave it to a link error).
  pc_no_isa=${pc//-march=native/}
  # shellcheck disable=SC2086
  if "$cxx" -std=c++20 -fsyntax-only "$here/pkgconfig_main.cpp" $pc_no_isa >"$work/isa.log" 2>&1; then
    [ "$(grep -c avx2 /proc/cpuinfo || true)" = 0 ] || fail "no ISA flags, yet no error from config.hpp"
  else
    grep -q "built for another instruction set" "$work/isa.log" ||
      { cat "$work/isa.log"; fail "compiling without the ISA flags failed without config.hpp's message"; }
  fi
fi
step "ok"
