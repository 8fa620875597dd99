#!/usr/bin/env bash
# NVMe/TCP over TLS 1.3 against plain NVMe/TCP on the same engine, side by
# side: `weft nvme perf` with and without --tls-key-file, the same block
# size, queue depth and run time, in interleaved rounds. Prints the median
# IOPS of each and the median of the per-round ratios (TLS / plain).
#   bench/tls_bench.sh [SECONDS] [ROUNDS]    (scripts/build.sh release first)
# The namespace is a malloc bdev (RAM), so the disk is not what is measured;
# the engine (one reactor, --tls allowed) runs on CPU 0, the client on CPU 1.
# Both ends run the record layer in user space (OpenSSL, AES-GCM), so a
# ratio is what TLS costs one core on each side.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
rounds=${2:-5}
source bench/bench_lib.sh  # $bin, $weft, median, bench_machine
work=$(mktemp -d)
engine_pid=
cleanup() {
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
host=nqn.2014-08.io.weft.bench:tls
"$weft" key gen-tls -o "$work/tls.key" >/dev/null
cat >"$work/engine.json" <<JSON
{"listen": ["127.0.0.1:0"], "tls": "allowed",
 "subsystems": [{"nqn": "nqn.2026-11.io.weft:tls-bench", "allow_any_host": true,
   "namespaces": [{"nsid": 1, "type": "malloc", "size": "512MiB", "block_size": 512}]}],
 "host_keys": [{"host": "$host", "tls_key": "$(cat "$work/tls.key")"}]}
JSON
chmod 600 "$work/engine.json"
taskset -c 0 "$bin/src/engine/weft-engine" --config "$work/engine.json" --data-dir "$work/data" \
  --cores 0 --api-listen none --metrics-listen none >"$work/engine.log" 2>&1 &
engine_pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/engine.log" && break; sleep 0.05; done
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/engine.log" | head -1 | sed 's/.*://')
[ -n "$port" ] || { echo "tls_bench: the engine did not start"; cat "$work/engine.log"; exit 1; }
conn=(-a 127.0.0.1 -s "$port" -n nqn.2026-11.io.weft:tls-bench --hostnqn "$host")

perf() {  # perf RW BS QD [extra...]: IOPS
  local rw=$1 bs=$2 qd=$3
  shift 3
  taskset -c 1 "$weft" nvme perf "${conn[@]}" -w "$rw" -o "$bs" -q "$qd" -t "$secs" --json "$@" |
    jq '.iops'
}

echo "weft TLS bench: $(bench_machine)"
echo "$rounds interleaved rounds of $secs s per case; medians"
printf "%-18s %12s %12s %10s %12s\n" case "plain IOPS" "TLS IOPS" "TLS/plain" "min..max"
for c in "randread 4k 32" "randwrite 4k 32" "randread 4k 1" "read 128k 16" "write 128k 16"; do
  set -- $c
  rw=$1 bs=$2 qd=$3
  : >"$work/plain" ; : >"$work/tls" ; : >"$work/ratio"
  for _ in $(seq "$rounds"); do
    p=$(perf "$rw" "$bs" "$qd")
    t=$(perf "$rw" "$bs" "$qd" --tls-key-file "$work/tls.key")
    echo "$p" >>"$work/plain"
    echo "$t" >>"$work/tls"
    awk -v p="$p" -v t="$t" 'BEGIN {printf "%.3f\n", t / p}' >>"$work/ratio"
  done
  printf "%-18s %12.0f %12.0f %9.2fx %12s\n" "$rw $bs QD$qd" "$(median <"$work/plain")" \
    "$(median <"$work/tls")" "$(median <"$work/ratio")" \
    "$(sort -g "$work/ratio" | head -1)..$(sort -g "$work/ratio" | tail -1)"
done
grep -q "connected to .*TLS" "$work/engine.log" || { echo "tls_bench: no TLS connection was made"; exit 1; }
