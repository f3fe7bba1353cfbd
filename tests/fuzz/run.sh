#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for a given time on a scratch copy of its seed corpus.
#   tests/fuzz/run.sh SECONDS [TARGET...]      TARGET: idx csv npy safetensors checkpoint hdf5 (default: all)
# Environment: XGRAD_FUZZ_BUILD (build dir, default build-fuzz), XGRAD_FUZZ_ARGS (extra libFuzzer
# flags). Targets run one after the other, each on one core. A run stops at its first finding and
# leaves the input under the run's folder (printed); exit status 1 when any target found something.
set -euo pipefail
cd "$(dirname "$0")/../.."

all_targets=(idx csv npy safetensors checkpoint hdf5)
if (($# < 1)) || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [${all_targets[*]}]" >&2
  exit 2
fi
seconds=$1
shift
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "run.sh: unknown target '$t'" >&2; exit 2; }
done

# clang 16 and its runtime (libclang-rt-16-dev holds libFuzzer) come from Debian. clang 14 will
# not do: its libstdc++ lacks std::source_location, which the library uses.
if ! command -v clang++-16 >/dev/null ||
  ! ls /usr/lib/llvm-16/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  echo "run.sh: installing clang-16 and libclang-rt-16-dev"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang-16 \
    libclang-rt-16-dev
fi

build=${XGRAD_FUZZ_BUILD:-build-fuzz}
if [ -f "$build/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++-16$' "$build/CMakeCache.txt"; then
  echo "run.sh: $build was configured with another compiler; remove it or set XGRAD_FUZZ_BUILD" >&2
  exit 2
fi
CC=clang-16 CXX=clang++-16 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DXGRAD_FUZZ=ON -DXGRAD_BUILD_TESTS=OFF -DXGRAD_BUILD_EXAMPLES=OFF \
  -DXGRAD_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/%/_fuzz}" >/dev/null

stamp=$(date +%Y%m%d-%H%M%S)
status=0
summary=()
for t in "${targets[@]}"; do
  work="$build/fuzz-runs/$t-$stamp"
  mkdir -p "$work/corpus" "$work/findings"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
  log="$work/log.txt"
  echo "run.sh: $t for ${seconds}s (log: $log)"
  start=$SECONDS
  # Limits: 2 GiB resident, no single allocation over 1 GiB, no input over 10 s.
  # shellcheck disable=SC2086
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/findings/" ${XGRAD_FUZZ_ARGS:-} "$work/corpus" >"$log" 2>&1 || true
  elapsed=$((SECONDS - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  corpus=$(find "$work/corpus" -type f | wc -l)
  # slow-unit-* files are inputs over libFuzzer's slow-unit threshold, kept for looking at, not
  # failures; everything else (crash-, leak-, oom-, timeout-) is a finding.
  findings=$(find "$work/findings" -type f ! -name 'slow-unit-*' | wc -l)
  line="$t: ${elapsed}s, ${execs:-?} executions, ${cov:-cov: ?}, corpus $corpus files, findings $findings"
  if ((findings)); then
    status=1
    line+=" ($(find "$work/findings" -type f ! -name 'slow-unit-*' | tr '\n' ' '))"
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error|terminate called' \
      "$log" || true
  fi
  summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit $status
