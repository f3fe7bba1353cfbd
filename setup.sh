#!/usr/bin/env bash
# Installs the Debian packages xgrad needs (only those missing), then optionally:
#   ./setup.sh demo   build in release mode and run the main demo (Fashion-MNIST MLP)
#   ./setup.sh test   check formatting, build the API reference, build and run every test in
#                     release mode and again under AddressSanitizer + UndefinedBehaviorSanitizer
#   ./setup.sh bench  install libtorch-dev, build the benchmarks and their libtorch peers, and
#                     print the side-by-side tables (benchmarks/compare.py; extra arguments go to it)
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake make g++ git clang-format pkg-config libxtensor-dev libxtensor-blas-dev libxsimd-dev
          libopenblas-dev libgtest-dev libbenchmark-dev zlib1g-dev libhdf5-dev nlohmann-json3-dev
          libeigen3-dev liblbfgspp-dev libcli11-dev libstb-dev dataset-fashion-mnist python3-numpy
          doxygen libblis-pthread-dev)

install_missing() {  # install_missing <package>...
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}
install_missing "${packages[@]}"

jobs=$(nproc)

build() {  # build <dir> [cmake options...]
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

check_format() {
  local files
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files '*.cpp' '*.hpp')
  else
    files=$(find src include tests benchmarks examples -name '*.cpp' -o -name '*.hpp')
  fi
  # shellcheck disable=SC2086
  clang-format --dry-run --Werror $files
  echo "setup: formatting ok"
}

case "${1:-}" in
  "") ;;
  demo)
    build build/release
    ./build/release/examples/fashion_mnist --out out
    ;;
  test)
    check_format
    build build/release
    cmake --build build/release --target docs  # the API reference; any Doxygen warning fails
    ctest --test-dir build/release --output-on-failure -j "$jobs"
    build build/sanitize -DXGRAD_SANITIZE=ON -DXGRAD_BUILD_EXAMPLES=OFF -DXGRAD_BUILD_BENCHMARKS=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build/sanitize --output-on-failure -j "$jobs"
    ;;
  bench)
    # libtorch is only the yardstick of the benchmarks: installed here, never built by default.
    install_missing libtorch-dev
    build build/bench -DXGRAD_BUILD_PEERS=ON -DXGRAD_BUILD_TESTS=OFF -DXGRAD_BUILD_EXAMPLES=OFF
    /usr/bin/python3 benchmarks/compare.py build/bench "${@:2}"
    ;;
  *)
    echo "usage: $0 [demo|test|bench]" >&2
    exit 2
    ;;
esac
