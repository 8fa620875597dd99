#!/usr/bin/env bash
# Builds the libFuzzer targets (build/fuzz, clang 14, ASan + UBSan) and runs
# each for the given seconds (default 30), as many at once as there are
# cores, over its seed corpus in fuzz/corpus/<name>/. New inputs go to a
# temporary directory, not the repo.
# Fails if a target crashes; the reproducer is kept in build/fuzz/crashes/.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (Debian: apt-get install clang-14)" >&2; exit 1; }

cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$CXX" \
  -DWEFT_FUZZ=ON -DWEFT_TESTS=OFF -DWEFT_BENCH=OFF >/dev/null || exit 1
nice ninja -C build/fuzz fuzzers || exit 1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p build/fuzz/crashes
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# run_one NAME: one target for $seconds; prints its stats or, on a crash, the
# end of its log. The targets run $(nproc) at a time (each is one process).
run_one() {
  local name=$1
  mkdir -p "$work/$name"
  # New inputs land in $work/$name; the checked-in seeds are only read.
  if ! "build/fuzz/fuzz/${name}_fuzz" "$work/$name" "fuzz/corpus/$name" \
      -max_total_time="$seconds" -max_len=16384 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="build/fuzz/crashes/${name}-" >"$work/$name.log" 2>&1; then
    tail -n 40 "$work/$name.log"
    echo "fuzz: $name FAILED (reproducer in build/fuzz/crashes/)"
    return 1
  fi
  echo "=== fuzz: $name for ${seconds}s: $(grep -E "^stat::(number_of_executed_units|new_units_added)" "$work/$name.log" | tr '\n' ' ')"
}

status=0
running=0
while read -r name; do
  [ -n "$name" ] || continue
  if [ "$running" -ge "$(nproc)" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
  run_one "$name" &
  running=$((running + 1))
done < build/fuzz/fuzz/fuzzers.txt
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
