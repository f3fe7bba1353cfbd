#!/usr/bin/env bash
# Installs the Debian packages xgrad needs (only those missing), then optionally:
#   ./setup.sh demo   build in release mode and run the main demo (Fashion-MNIST MLP)
#   ./setup.sh test   what CI runs (.ci/run): check formatting, build the API reference, build and
#                     run every test in release mode with GCC (XGRAD_GEMM=portable included); with
#                     clang 16, under AddressSanitizer + UndefinedBehaviorSanitizer, build the
#                     library, the tests and the fuzz targets and run every test again; run the
#                     threads test under ThreadSanitizer. Warnings are errors.
#   ./setup.sh bench  install libtorch-dev, build the benchmarks and their libtorch peers, and
#                     print the side-by-side tables (benchmarks/compare.py; extra arguments go to it)
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake make g++ git clang-format pkg-config libxtensor-dev libxtensor-blas-dev libxsimd-dev
          libopenblas-dev libgtest-dev libbenchmark-dev zlib1g-dev libhdf5-dev nlohmann-json3-dev
          libeigen3-dev liblbfgspp-dev libcli11-dev libstb-dev dataset-fashion-mnist python3-numpy
          doxygen clang-16 libclang-rt-16-dev libopenmpi-dev openmpi-bin wamerican)

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

configure() {  # configure <dir> [cmake options...]
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
}
build() {  # build <dir> [cmake options...]
  configure "$@"
  cmake --build "$1" -j "$jobs"
}
stage_start=$SECONDS
stage() {  # stage <name>: prints how long the previous stage took
  echo "setup: $(date +%T) +$((SECONDS - stage_start))s: $1"
  stage_start=$SECONDS
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
    stage "release build (GCC, warnings are errors)"
    build build/release -DXGRAD_WERROR=ON
    cmake --build build/release --target docs  # the API reference; any Doxygen warning fails
    stage "release tests"
    ctest --test-dir build/release --output-on-failure -j "$jobs"
    # clang 16 with warnings as errors, AddressSanitizer, UndefinedBehaviorSanitizer and the
    # coverage instrumentation of the fuzz targets: one build gives the second compiler, the
    # sanitized run of every test (the installed package and the doc snippets included) and the
    # fuzz targets.
    stage "clang 16 + ASan + UBSan build: library, tests, fuzz targets"
    build build/clang -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
      -DXGRAD_SANITIZE=ON -DXGRAD_FUZZ=ON -DXGRAD_WERROR=ON -DXGRAD_BUILD_EXAMPLES=OFF \
      -DXGRAD_BUILD_BENCHMARKS=OFF
    stage "clang 16 + ASan + UBSan tests"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build/clang --output-on-failure -j "$jobs"
    # ThreadSanitizer: the core and the threads test only. Its instrumentation makes GCC report
    # warnings the other builds do not have (xtensor's printer), so they stay warnings here.
    # OpenBLAS stays on one thread: ThreadSanitizer cannot see inside it.
    stage "ThreadSanitizer build and threads test"
    configure build/tsan -DXGRAD_TSAN=ON -DXGRAD_WITH_DATA=OFF -DXGRAD_WITH_IO=OFF \
      -DXGRAD_WITH_VIZ=OFF -DXGRAD_WITH_LBFGS=OFF -DXGRAD_BUILD_EXAMPLES=OFF \
      -DXGRAD_BUILD_BENCHMARKS=OFF
    cmake --build build/tsan -j "$jobs" --target xgrad_threads_tests
    OPENBLAS_NUM_THREADS=1 ./build/tsan/tests/xgrad_threads_tests --gtest_filter='Threads.*:Pool.*'
    stage "done"
    ;;
  bench)
    # libtorch is only the yardstick of the benchmarks: installed here, never built by default.
    install_missing libtorch-dev
    build build/bench -DXGRAD_BUILD_PEERS=ON -DXGRAD_BUILD_TESTS=OFF -DXGRAD_BUILD_EXAMPLES=OFF
    /usr/bin/python3 benchmarks/compare.py build/bench "${@:2}"
    # Data-parallel training: one process, two under mpirun, and PyTorch DDP on the same order.
    if [ -x build/bench/benchmarks/distributed_bench ]; then
      install_missing python3-torch
      export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
      build/bench/benchmarks/distributed_bench --benchmark_filter=fashion_epoch/
      mpirun -np 2 --oversubscribe build/bench/benchmarks/distributed_bench
      build/bench/benchmarks/distributed_bench --dump-order build/bench/fashion_order.npy
      /usr/bin/python3 benchmarks/peers/torch_ddp.py --order build/bench/fashion_order.npy
    fi
    ;;
  *)
    echo "usage: $0 [demo|test|bench]" >&2
    exit 2
    ;;
esac
