#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, build-fuzz/) and runs each for SECONDS seconds,
# seeded with fuzz/corpus/<name>/. New inputs that grow coverage go to a scratch directory, not into the
# repository; a crash leaves its input in build-fuzz/findings/ and fails the script.
#   fuzz/run.sh [SECONDS] [TARGET...]      (default 10 seconds per target, every target)
# CI runs a short smoke (make test); a longer run is e.g. `fuzz/run.sh 3600`. docs/testing.md#fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
build=${FUZZ_BUILD:-build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$build" -DNETPROBE_FUZZ=ON -DNETPROBE_BUILD_TESTS=OFF \
  -DNETPROBE_BUILD_BENCH=OFF -DNETPROBE_CHECK_HEADERS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in fuzz/*_fuzz.cpp; do
    [ -e "$src" ] || continue
    n=$(basename "$src" _fuzz.cpp)
    targets+=("$n")
  done
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no targets" >&2
  exit 0
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/%/_fuzz}"
mkdir -p "$build/findings"
status=0
for n in "${targets[@]}"; do
  scratch=$(mktemp -d)
  seeds=fuzz/corpus/$n
  [ -d "$seeds" ] || seeds=
  log="$build/findings/$n.log"
  # -rss_limit_mb and -timeout make a hang or a memory blow-up a finding, as a crash is.
  if "$build/fuzz/${n}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$build/findings/$n-" -print_final_stats=1 "$scratch" $seeds >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $n: ${runs} executions in ${seconds}s, no finding"
  else
    echo "fuzz: $n: FINDING (see $log and $build/findings/$n-*)" >&2
    tail -40 "$log" >&2
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
