#!/usr/bin/env bash
# fio through libweft_fio.so against `weft nvme perf`, on the same engine,
# side by side: the same block size, queue depth and run time, in
# interleaved rounds. Both are weft's initiator on one client core; what
# differs is who drives it (fio's job loop through the ioengine API, or
# perf's own loop), so fio/perf is what the ioengine costs (goal: >= 0.9).
# Also fio with weft_poll_us=0 (sleep at once, no busy-poll window), and
# fio with its null ioengine: fio's own cost per I/O on the client core.
#   bench/fio_bench.sh [SECONDS] [ROUNDS]
# (scripts/build.sh release and scripts/fio-source.sh first; fio installed.)
# The namespace is a malloc bdev (RAM); the engine (one reactor) runs on
# CPU 0, the client on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
rounds=${2:-5}
source bench/bench_lib.sh
bench_init fio_bench
lib=$bin/src/fio/libweft_fio.so
[ -f "$lib" ] || { echo "fio_bench: $lib is missing (scripts/fio-source.sh, then build)"; exit 1; }
command -v fio >/dev/null || { echo "fio_bench: fio is not installed"; exit 1; }
nqn=nqn.2026-11.io.weft:fio-bench
bench_malloc_engine "$nqn" 0

perf() {  # perf RW BS QD: IOPS
  bench_perf 1 "$nqn" -w "$1" -o "$2" -q "$3" -t "$secs" --json | jq '.iops'
}
fio_iops() {  # fio RW BS QD POLL_US: IOPS (reads + writes)
  taskset -c 1 fio --name=bench --ioengine="external:$lib" --addr=127.0.0.1 --port="$port" \
    --nqn="$nqn" --nsid=1 --filename=weft0 --thread=1 --rw="$1" --bs="$2" --iodepth="$3" \
    --weft_poll_us="$4" --time_based=1 --runtime="$secs" --ramp_time=300ms --norandommap=1 \
    --randrepeat=0 --output-format=json >"$work/fio.json" 2>"$work/fio.err" ||
    { echo "fio_bench: fio failed:" >&2; cat "$work/fio.err" >&2; exit 1; }
  jq '[.jobs[0].read.iops, .jobs[0].write.iops] | add' "$work/fio.json"
}

echo "weft fio bench: $(bench_machine)"
echo "$rounds interleaved rounds of $secs s per case; medians"
printf "%-18s %11s %11s %9s %13s %13s\n" case "perf IOPS" "fio IOPS" "fio/perf" "min..max" \
  "fio poll 0"
for c in "randread 4k 1" "randread 4k 32" "randread 4k 128" "randwrite 4k 32" "randwrite 4k 128"; do
  set -- $c
  rw=$1 bs=$2 qd=$3
  : >"$work/perf"; : >"$work/fio"; : >"$work/nopoll"; : >"$work/ratio"
  for _ in $(seq "$rounds"); do
    p=$(perf "$rw" "$bs" "$qd")
    f=$(fio_iops "$rw" "$bs" "$qd" 50)
    n=$(fio_iops "$rw" "$bs" "$qd" 0)
    echo "$p" >>"$work/perf"
    echo "$f" >>"$work/fio"
    echo "$n" >>"$work/nopoll"
    awk -v p="$p" -v f="$f" 'BEGIN {printf "%.3f\n", f / p}' >>"$work/ratio"
  done
  printf "%-18s %11.0f %11.0f %8.2fx %13s %13.0f\n" "$rw $bs QD$qd" "$(median <"$work/perf")" \
    "$(median <"$work/fio")" "$(median <"$work/ratio")" \
    "$(sort -g "$work/ratio" | head -1)..$(sort -g "$work/ratio" | tail -1)" \
    "$(median <"$work/nopoll")"
done
# fio's own cost per I/O on the client core, with no I/O at all (its null
# engine): at depth the client core is saturated, so this is what caps
# fio/perf there (fio's cost on top of the same initiator work).
null=$(for _ in $(seq "$rounds"); do
  taskset -c 1 fio --name=null --ioengine=null --size=512m --rw=randread --bs=4k --iodepth=128 \
    --thread=1 --time_based=1 --runtime="$secs" --norandommap=1 --randrepeat=0 \
    --output-format=json 2>/dev/null | jq '.jobs[0].read.iops'
done | median)
awk -v n="$null" 'BEGIN {printf "fio alone (null ioengine, QD128): %.0f IOPS, %.2f us of fio per I/O\n", n, 1e6 / n}'
