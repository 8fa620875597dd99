#!/usr/bin/env bash
# Userspace attach against weft's own host on the same volume, side by side:
# fio (libaio, O_DIRECT) on the loop device that `weft attach` makes, and
# `weft nvme perf` straight to the target, with the same block size, queue
# depth and run time. Prints each pair and its ratio (attach / direct).
#   bench/attach_bench.sh [SECONDS]          (root; scripts/build.sh release first)
# The volume is the engine's --demo file on /dev/shm (RAM), so the disk is
# not what is measured; the engine runs on CPU 0, the clients on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
bin=build/release
[ "$(id -u)" = 0 ] || { echo "attach_bench: needs root (FUSE, loop devices)"; exit 1; }
work=$(mktemp -d /dev/shm/weft-attach-bench.XXXXXX)
engine_pid=
cleanup() {
  [ -n "${dev:-}" ] && "$bin/src/cli/weft" detach "$dev" --run-dir "$work/run" >/dev/null 2>&1
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null
  [ -n "${KEEP:-}" ] && cp "$work/engine.log" /tmp/attach-bench-engine.log
  rm -rf "$work"
}
trap cleanup EXIT
taskset -c 0 "$bin/src/engine/weft-engine" --demo --demo-size 1GiB --data-dir "$work" --cores 0 \
  --listen 127.0.0.1:0 --api-listen none --metrics-listen none >"$work/engine.log" 2>&1 &
engine_pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/engine.log" && break; sleep 0.05; done
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/engine.log" | head -1 | sed 's/.*://')
conn=(-a 127.0.0.1 -s "$port" -n nqn.2026-11.io.weft:demo)
dev=$(taskset -c 1 "$bin/src/cli/weft" attach "${conn[@]}" --run-dir "$work/run")
# Fill it once, so that reads are of written blocks.
dd if=/dev/zero of="$dev" bs=1M count=1024 oflag=direct status=none

printf "%-24s %12s %12s %8s\n" case "attach" "direct" ratio
for c in "randread 4k 32" "randwrite 4k 32" "randread 4k 1" "read 128k 8" "write 128k 8"; do
  set -- $c
  rw=$1 bs=$2 qd=$3
  direct=$(taskset -c 1 "$bin/src/cli/weft" nvme perf "${conn[@]}" -w "$rw" -o "$bs" -q "$qd" \
    -t "$secs" --json | jq '.iops')
  attach=$(taskset -c 1 fio --name=a --filename="$dev" --ioengine=libaio --direct=1 --rw="$rw" \
    --bs="$bs" --iodepth="$qd" --runtime="$secs" --time_based=1 --output-format=json |
    jq "[.jobs[0].read.iops, .jobs[0].write.iops] | add")
  printf "%-24s %12.0f %12.0f %8.2f\n" "$rw $bs QD$qd (IOPS)" "$attach" "$direct" \
    "$(bc -l <<<"$attach / $direct")"
done
