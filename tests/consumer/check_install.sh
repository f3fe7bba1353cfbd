#!/usr/bin/env bash
# Installs a built xgrad tree into a temporary prefix and uses it as an outside project would:
# find_package (tests/consumer/CMakeLists.txt: every component, then the core alone, each shared and
# static) and pkg-config. Run by ctest.
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
cmake --build "$build" --target xgrad_libraries >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; fail "building the libraries"; }
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; fail "cmake --install"; }
libdir=$(cd "$prefix" && find . -name libxgrad_core.a -printf '%h\n' | sed 's|^\./||')
[ -n "$libdir" ] || fail "no libxgrad_core.a under $prefix"
components=$(sed -n 's/^set(_xgrad_installed \(.*\))$/\1/p' "$prefix/$libdir/cmake/xgrad/xgradConfig.cmake")
[[ " $components " == *" core "* ]] || fail "xgradConfig.cmake lists no core component: '$components'"
for f in include/xgrad/xgrad.hpp include/xgrad/core.hpp include/xgrad/version.hpp \
         include/xgrad/config.hpp include/xgrad/nn/layers.hpp \
         "$libdir/cmake/xgrad/xgradConfig.cmake" "$libdir/cmake/xgrad/xgradConfigVersion.cmake" \
         "$libdir/pkgconfig/xgrad.pc"; do
  [ -e "$prefix/$f" ] || fail "missing $f in the installed tree"
done
for c in $components; do
  for f in "$libdir/libxgrad_$c.a" "$libdir/libxgrad_$c.so"; do
    [ -e "$prefix/$f" ] || fail "missing $f in the installed tree"
  done
done
# Only ABI requirements reach users: no instruction-set or warning flags of xgrad's own build.
if grep -rlE -- '-m(no-)?avx|-march|-W(error|no-)' "$prefix/$libdir/cmake/xgrad" "$prefix/$libdir/pkgconfig"; then
  fail "the package passes xgrad's own compile flags on to its users"
fi
# Installed headers are all a user has: their comments must not send them to the repository.
cited=$(grep -rnE '[A-Za-z0-9_]+\.(md|py)\b|\b(src|tests|docs|examples|benchmarks)/|CMakeLists' \
  "$prefix/include/xgrad" || true)
[ -z "$cited" ] || fail "installed headers cite files outside the package: $cited"
grep -q "#define XGRAD_VERSION_STRING \"$version\"" "$prefix/include/xgrad/version.hpp" ||
  fail "installed version.hpp does not say $version"

step "find_package(xgrad) from $here: every component ($components)"
cmake -S "$here" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configuring the consumer"; }
cmake --build "$work/consumer" >"$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log"; fail "building the consumer"; }
expected="xgrad $version \([0-9]+\): loss [0-9.]+ -> [0-9.e+-]+, w 2\.0000, b 1\.0000"
for exe in consumer consumer_static; do
  out=$(cd "$work" && "$work/consumer/$exe") || fail "$exe exited with $?: $out"  # writes a file
  echo "  $exe: $out"
  [[ $out =~ $expected ]] || fail "$exe printed '$out', expected /$expected/"
done
# The default target links the shared library; the static one must not need it at run time.
# (ldd's output is kept whole: `grep -q` in a pipe may end it early, which pipefail reports.)
deps=$(ldd "$work/consumer/consumer")
[[ $deps == *libxgrad_core.so* ]] || fail "consumer does not load libxgrad_core.so: $deps"
deps=$(ldd "$work/consumer/consumer_static")
[[ $deps != *libxgrad_* ]] || fail "consumer_static loads a shared xgrad library: $deps"

step "find_package(xgrad COMPONENTS core): nothing but xtensor, xsimd and the BLAS"
# The optional components' dependencies are made unfindable: loading or linking any of them fails.
cmake -S "$here" -B "$work/core" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCONSUMER_CORE_ONLY=ON -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_DISABLE_FIND_PACKAGE_HDF5=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_ZLIB=ON -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON \
  >"$work/core-configure.log" 2>&1 || { cat "$work/core-configure.log"; fail "configuring the core consumer"; }
cmake --build "$work/core" >"$work/core.log" 2>&1 || { cat "$work/core.log"; fail "building the core consumer"; }
out=$("$work/core/consumer_static") || fail "core consumer_static exited with $?: $out"
echo "  core consumer_static: $out"
[[ $out =~ $expected ]] || fail "core consumer_static printed '$out', expected /$expected/"
out=$("$work/core/consumer") || fail "core consumer exited with $?: $out"
[[ $out =~ $expected ]] || fail "core consumer printed '$out', expected /$expected/"
# What the core consumer read and linked: no header or library of an optional dependency.
pattern='hdf5|Eigen|LBFGS|CLI11|CLI/|nlohmann|zlib|libz\.|openmpi|libmpi|xgrad_(data|io|viz|lbfgs|distributed)'
used=$(cat "$work"/core/CMakeFiles/consumer_main.dir/main.cpp.o.d \
  "$work"/core/CMakeFiles/consumer*.dir/link.txt)
if grep -E "$pattern" <<<"$used"; then fail "the core consumer uses an optional dependency"; fi
deps=$(ldd "$work/core/consumer")
if grep -E "$pattern" <<<"$deps"; then fail "the core consumer loads an optional library"; fi

step "pkg-config"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
[ "$(pkg-config --modversion xgrad)" = "$version" ] || fail "pkg-config --modversion xgrad"
pc=$(pkg-config --cflags --libs xgrad) || fail "pkg-config --cflags --libs xgrad"
echo "  pkg-config --cflags --libs xgrad: $pc"
static_libs=$(pkg-config --static --libs xgrad)
for l in -lxgrad_core -lopenblas; do
  [[ " $static_libs " == *" $l "* ]] || fail "pkg-config --static --libs lacks $l: $static_libs"
done
# The package's own flags must be enough to run the program from a prefix the dynamic loader does
# not search: Libs carries the rpath, and LD_LIBRARY_PATH is cleared for the run.
[[ " $pc " == *" -Wl,-rpath,"* ]] || fail "pkg-config --libs xgrad has no rpath: $pc"
# shellcheck disable=SC2086  # the flags are meant to split
"$cxx" -std=c++20 $flags "$here/pkgconfig_main.cpp" -o "$work/pc_consumer" $pc \
  >"$work/pc.log" 2>&1 || { cat "$work/pc.log"; fail "compiling with pkg-config's flags"; }
deps=$(env -u LD_LIBRARY_PATH ldd "$work/pc_consumer")
[[ $deps == *"$prefix/"*libxgrad_core.so* ]] || fail "pc_consumer does not find libxgrad_core.so in $prefix: $deps"
out=$(env -u LD_LIBRARY_PATH "$work/pc_consumer") || fail "pc_consumer exited with $?"
echo "  pc_consumer: $out"
[ "$out" = "xgrad $version via pkg-config: sum 30, grad [2 4 6 8]" ] || fail "pc_consumer printed '$out'"
# The Array type does not depend on the instruction set: a program compiled for plain x86-64
# (SSE2) uses a library built with -march=native.
if [ "$(uname -m)" = x86_64 ]; then
  # shellcheck disable=SC2086
  "$cxx" -std=c++20 -march=x86-64 $flags "$here/pkgconfig_main.cpp" -o "$work/pc_sse2" $pc \
    -Wl,-rpath,"$prefix/$libdir" >"$work/pc_sse2.log" 2>&1 ||
    { cat "$work/pc_sse2.log"; fail "compiling with -march=x86-64"; }
  out=$("$work/pc_sse2") || fail "pc_sse2 exited with $?"
  [ "$out" = "xgrad $version via pkg-config: sum 30, grad [2 4 6 8]" ] || fail "pc_sse2 printed '$out'"
fi
step "ok"
