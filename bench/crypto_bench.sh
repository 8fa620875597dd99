#!/usr/bin/env bash
# Encryption at rest against a plain volume on the same engine, side by
# side: two thin volumes of one pool, one with a data key (weft engine
# volume-key set: AES-256-XTS in the engine), `weft nvme perf` on each with
# the same block size, queue depth and run time, in interleaved rounds.
# Prints the median IOPS of each and the median of the per-round ratios
# (encrypted / plain). Then a data-key rotation of the encrypted volume:
# how fast it re-encrypts unpaced against the plain volume's 128 KiB
# sequential write in the same run, and what a rotation paced to outlast a
# run costs a host's 4 KiB random reads (during / before).
#   bench/crypto_bench.sh [SECONDS] [ROUNDS]    (scripts/build.sh release first)
# The pool is a file in /dev/shm (RAM), so the disk is not what is
# measured; the engine (one reactor) runs on CPU 0, the client on CPU 1. A
# ratio is what the encryption costs the engine's one core.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
rounds=${2:-5}
source bench/bench_lib.sh  # $bin, $weft, median, bench_machine
work=$(mktemp -d)
shm=$(mktemp -d -p /dev/shm weft-crypto-bench.XXXXXX)
engine_pid=
cleanup() {
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null
  rm -rf "$work" "$shm"
}
trap cleanup EXIT
"$weft" key gen-kek -o "$work/kek" >/dev/null
taskset -c 0 "$bin/src/engine/weft-engine" --data-dir "$work/data" --kek-file "$work/kek" \
  --cores 0 --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --metrics-listen none \
  >"$work/engine.log" 2>&1 &
engine_pid=$!
for _ in $(seq 100); do grep -q 'management API on' "$work/engine.log" && break; sleep 0.05; done
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/engine.log" | head -1 | sed 's/.*://')
api=$(grep -o 'management API on 127.0.0.1:[0-9]*' "$work/engine.log" | head -1 | sed 's/.*on //')
[ -n "$port" ] && [ -n "$api" ] || { echo "crypto_bench: the engine did not start"; cat "$work/engine.log"; exit 1; }
e() { "$weft" engine "$@" --api "$api" >/dev/null; }
e pool create p "$shm/pool.img" --size 1200MiB
e volume create p plain 512MiB
e volume create p enc 512MiB
e volume-key set p enc
e volume share p plain --any-host
e volume share p enc --any-host
# Written once in full, so that reads read data (not unallocated zeroes).
for v in plain enc; do
  taskset -c 1 "$weft" nvme perf -a 127.0.0.1 -s "$port" -n "nqn.2026-11.io.weft:p:$v" -w write \
    -o 128k -q 16 -t 3 >/dev/null
done

perf() {  # perf VOLUME RW BS QD: IOPS
  taskset -c 1 "$weft" nvme perf -a 127.0.0.1 -s "$port" -n "nqn.2026-11.io.weft:p:$1" -w "$2" \
    -o "$3" -q "$4" -t "$secs" --json | jq '.iops'
}

echo "weft encryption-at-rest bench: $(bench_machine)"
echo "AES-NI: $(grep -qw aes /proc/cpuinfo && echo yes || echo no); $rounds interleaved rounds of $secs s per case; medians"
printf "%-18s %12s %12s %10s %12s\n" case "plain IOPS" "enc IOPS" "enc/plain" "min..max"
for c in "randread 4k 32" "randwrite 4k 32" "randread 4k 1" "read 128k 16" "write 128k 16"; do
  set -- $c
  rw=$1 bs=$2 qd=$3
  : >"$work/plain" ; : >"$work/enc" ; : >"$work/ratio"
  for _ in $(seq "$rounds"); do
    p=$(perf plain "$rw" "$bs" "$qd")
    x=$(perf enc "$rw" "$bs" "$qd")
    echo "$p" >>"$work/plain"
    echo "$x" >>"$work/enc"
    awk -v p="$p" -v x="$x" 'BEGIN {printf "%.3f\n", x / p}' >>"$work/ratio"
  done
  printf "%-18s %12.0f %12.0f %9.2fx %12s\n" "$rw $bs QD$qd" "$(median <"$work/plain")" \
    "$(median <"$work/enc")" "$(median <"$work/ratio")" \
    "$(sort -g "$work/ratio" | head -1)..$(sort -g "$work/ratio" | tail -1)"
done

# ---- data-key rotation ----
key_rotating() {  # whether p/enc has a rotation under way
  "$weft" engine volume-key list --json --api "$api" |
    jq -e '.keys[] | select(.target == "p/enc") | .rotation.next_wrapped_key != ""' >/dev/null
}
wait_rotation() {
  while key_rotating; do sleep 0.05; done
}
mib=512
wr=$(perf plain write 128k 16)
t0=$(date +%s.%N)
e volume-key rotate p enc --unlimited
wait_rotation
t1=$(date +%s.%N)
rot=$(awk -v a="$t0" -v b="$t1" -v m="$mib" 'BEGIN {printf "%.1f", m / (b - a)}')
wmibs=$(awk -v i="$wr" 'BEGIN {printf "%.1f", i * 128 / 1024}')
echo
printf "%-34s %10s %10s %10s\n" "data-key rotation ($mib MiB volume)" "MiB/s" "baseline" ratio
printf "%-34s %10s %10s %9.2fx\n" "unpaced vs plain write 128k QD16" "$rot" "$wmibs" \
  "$(awk -v r="$rot" -v w="$wmibs" 'BEGIN {print r / w}')"
: >"$work/ratio"
for _ in $(seq "$rounds"); do
  before=$(perf enc randread 4k 32)
  e volume-key rotate p enc --rate "$((mib / (secs + 2)))MiB"
  during=$(perf enc randread 4k 32)
  key_rotating || { echo "crypto_bench: the rotation ended before the run did"; exit 1; }
  wait_rotation
  awk -v b="$before" -v d="$during" 'BEGIN {printf "%.3f\n", d / b}' >>"$work/ratio"
done
printf "%-34s %10s %10s %9.2fx %s\n" "4k randread QD32 during a rotation" "-" "-" \
  "$(median <"$work/ratio")" "(IOPS during / before, $((mib / (secs + 2))) MiB/s pace)"
