#!/usr/bin/env bash
# The target on a shared node and on two cores, with `weft nvme perf` as the
# client, in interleaved rounds (medians):
#  1. Co-tenant: 4 KiB random read/write against a one-reactor engine on
#     CPU 0, alone and with a CPU-bound process (a shell busy loop, same
#     nice level) on CPU 0 too. Kubernetes nodes are shared; a target that
#     busy-polls keeps half its core's time slices to itself and still
#     loses the other half, while one that sleeps when idle gives way. IOPS
#     and p99 with/without.
#  2. Two reactors vs one: the engine on CPUs 0-1 with two client queues
#     against the engine on CPU 0. With two cores the client shares them,
#     so the figure that says whether the design scales is the target's
#     CPU time per I/O (from /proc/PID/stat), not the IOPS: the same CPU
#     per I/O on two reactors as on one means no cross-core cost, and the
#     reactors share nothing, so more cores add IOPS until the NIC or the
#     client runs out. The engine's CPU time includes its reactors' 50 us
#     busy-poll windows, in both cases; --poll-us 0 would leave only work,
#     but in a VM each wakeup then costs more than the work (paravirt
#     spinlocks and IPIs: 32K IOPS at QD32 here), which measures the
#     hypervisor instead.
#   bench/node_bench.sh [SECONDS] [ROUNDS]    (scripts/build.sh release first)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
rounds=${2:-5}
source bench/bench_lib.sh
bench_init node_bench
hog_pid=
stop_hog() {
  if [ -n "$hog_pid" ]; then
    kill "$hog_pid" 2>/dev/null && wait "$hog_pid" 2>/dev/null || true
  fi
  hog_pid=
}
bench_cleanups+=(stop_hog)
nqn=nqn.2026-11.io.weft:node-bench
start_hog() {
  taskset -c 0 bash -c 'while :; do :; done' &
  hog_pid=$!
}
engine_cpu_ticks() { awk '{print $14 + $15}' "/proc/$engine_pid/stat"; }
perf() {  # perf CPUS QUEUES RW QD -> "iops p99_us ios"
  bench_perf "$1" "$nqn" --cores "$1" --queues "$2" -w "$3" -o 4k -q "$4" -t "$secs" --json |
    jq -r '"\(.iops) \(.latency_us."p99") \(.ios)"'
}
col() { awk -v c="$1" '{print $c}' "$2" | median; }

echo "weft node bench: $(bench_machine)"
echo "$rounds interleaved rounds of $secs s per case; medians"
echo
echo "## A CPU-bound co-tenant on the target's core (engine: 1 reactor on CPU 0; client on CPU 1)"
printf "%-18s %11s %11s %9s %12s %12s\n" case "alone IOPS" "shared IOPS" "ratio" "alone p99us" \
  "shared p99us"
bench_malloc_engine "$nqn" 0
for c in "randread 1" "randread 32" "randwrite 32" "randread 128"; do
  set -- $c
  : >"$work/alone"; : >"$work/shared"
  for _ in $(seq "$rounds"); do
    perf 1 1 "$1" "$2" >>"$work/alone"
    start_hog
    perf 1 1 "$1" "$2" >>"$work/shared"
    stop_hog
  done
  a=$(col 1 "$work/alone")
  s=$(col 1 "$work/shared")
  printf "%-18s %11.0f %11.0f %8.2fx %12.1f %12.1f\n" "$1 4k QD$2" "$a" "$s" \
    "$(awk -v a="$a" -v s="$s" 'BEGIN {print s / a}')" "$(col 2 "$work/alone")" \
    "$(col 2 "$work/shared")"
done
bench_stop_engine

echo
echo "## Two target reactors vs one (client: 2 queues on CPUs 0-1 vs 1 queue on CPU 1)"
echo "target CPU per I/O from /proc (user + system time of the engine over the run, busy-poll included)"
printf "%-18s %11s %11s %13s %13s %10s\n" case "1r IOPS" "2r IOPS" "1r us/IO" "2r us/IO" \
  "2r/1r CPU"
hz=$(getconf CLK_TCK)
run_case() {  # run_case ENGINE_CPUS CLIENT_CPUS QUEUES RW QD -> "iops us_per_io"
  local t0 t1 out
  t0=$(engine_cpu_ticks)
  out=$(perf "$2" "$3" "$4" "$5")
  t1=$(engine_cpu_ticks)
  awk -v o="$out" -v d=$((t1 - t0)) -v hz="$hz" \
    'BEGIN {split(o, f, " "); printf "%s %.3f\n", f[1], d / hz * 1e6 / f[3]}'
}
for c in "randread 32" "randwrite 32" "randread 128"; do
  set -- $c
  : >"$work/one"; : >"$work/two"
  for _ in $(seq "$rounds"); do
    bench_malloc_engine "$nqn" 0
    run_case 0 1 1 "$1" "$2" >>"$work/one"
    bench_stop_engine
    bench_malloc_engine "$nqn" 0,1
    run_case 0,1 0,1 2 "$1" "$2" >>"$work/two"
    bench_stop_engine
  done
  o=$(col 2 "$work/one")
  t=$(col 2 "$work/two")
  printf "%-18s %11.0f %11.0f %13.3f %13.3f %9.2fx\n" "$1 4k QD$2/queue" "$(col 1 "$work/one")" \
    "$(col 1 "$work/two")" "$o" "$t" "$(awk -v o="$o" -v t="$t" 'BEGIN {print t / o}')"
done
