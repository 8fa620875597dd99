#!/usr/bin/env bash
# Where the target's CPU goes: `perf record -e cpu-clock` (a software event:
# no hardware counters needed, as in VMs) on a one-reactor engine (CPU 0)
# while `weft nvme perf` (CPU 1) drives 4 KiB random reads at QD128 against
# a malloc namespace, then the top functions by self time. Run it before
# and after a data-path change and compare the lists. The load is QD128 to
# keep the reactor busy: what idle time it leaves shows as the 50 us
# busy-poll loop (clock_gettime, drain_messages, flush_outgoing). Not
# --poll-us 0: in a VM every wakeup then costs more than the work
# (paravirt spinlocks and IPIs), and the profile shows the hypervisor.
#   bench/profile_bench.sh [SECONDS] [TOP]    (scripts/build.sh release first)
# Needs perf (Debian: linux-perf) and the right to profile one's own
# processes (kernel.perf_event_paranoid <= 2, Debian's default is 3 for
# unprivileged users: root or sysctl).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
top=${2:-20}
source bench/bench_lib.sh
bench_init profile_bench
command -v perf >/dev/null || { echo "profile_bench: perf is not installed (apt-get install linux-perf)"; exit 0; }
nqn=nqn.2026-11.io.weft:profile-bench
bench_malloc_engine "$nqn" 0

bench_perf 1 "$nqn" -w randread -o 4k -q 128 -t "$((secs + 2))" --json >"$work/load.json" &
load=$!
sleep 1
if ! perf record -q -e cpu-clock -F 4999 -p "$engine_pid" -o "$work/perf.data" -- sleep "$secs" \
  >"$work/perf.log" 2>&1; then
  wait "$load" || true
  echo "profile_bench: perf record failed (perf_event_paranoid?):"
  head -3 "$work/perf.log"
  exit 0
fi
wait "$load"
echo "weft target profile: $(bench_machine)"
echo "engine: 1 reactor; load: weft nvme perf randread 4k QD128, $(jq -r '.iops | floor' "$work/load.json") IOPS"
echo "perf record -e cpu-clock -F 4999, $secs s; top $top functions by self time:"
perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
  grep -E '^ +[0-9.]+%' | sed 's/^ *//' | head -n "$top" || true
echo "by object:"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null |
  grep -E '^ +[0-9.]+%' | sed 's/^ */  /' | head -n 6 || true
