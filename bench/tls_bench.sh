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
#
# Then connect time: `weft nvme read --blocks 1` run whole (process start,
# connect, one read, disconnect) for plain TCP, TLS, DH-HMAC-CHAP with each
# DH group (the engine allows one group per host NQN, so the exchange uses
# that one; SHA-256), bidirectional, and secure channel concatenation.
# Medians of CONNECTS runs each, interleaved; "over plain" is the median
# less plain's: what the handshake costs. The read connects an admin queue
# and one I/O queue, and each authenticates: two DH exchanges per connect
# (concatenation: one, then a TLS reconnect of both queues).
#   bench/tls_bench.sh [SECONDS] [ROUNDS] [CONNECTS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
rounds=${2:-5}
connects=${3:-15}
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
"$weft" key gen-dhchap --hmac sha256 -o "$work/host.dhchap" >/dev/null
"$weft" key gen-dhchap --hmac sha256 -o "$work/ctrl.dhchap" >/dev/null
groups=(null ffdhe2048 ffdhe3072 ffdhe4096 ffdhe6144 ffdhe8192)
dh_host() { echo "nqn.2014-08.io.weft.bench:dh-$1"; }
dh_keys=""
for g in "${groups[@]}"; do
  dh_keys+=", {\"host\": \"$(dh_host "$g")\", \"dhchap_key\": \"$(cat "$work/host.dhchap")\",
    \"digests\": [\"sha256\"], \"dhgroups\": [\"$g\"]}"
done
cat >"$work/engine.json" <<JSON
{"listen": ["127.0.0.1:0"], "tls": "allowed",
 "subsystems": [{"nqn": "nqn.2026-11.io.weft:tls-bench", "allow_any_host": true,
   "namespaces": [{"nsid": 1, "type": "malloc", "size": "512MiB", "block_size": 512}]}],
 "host_keys": [{"host": "$host", "tls_key": "$(cat "$work/tls.key")"}$dh_keys,
   {"host": "$(dh_host bidi)", "dhchap_key": "$(cat "$work/host.dhchap")",
    "dhchap_ctrl_key": "$(cat "$work/ctrl.dhchap")", "digests": ["sha256"], "dhgroups": ["ffdhe2048"]},
   {"host": "$(dh_host concat)", "dhchap_key": "$(cat "$work/host.dhchap")",
    "digests": ["sha256"], "dhgroups": ["ffdhe2048"]}]}
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

# Connect time.
read_one() {  # read_one HOSTNQN [extra...]: the run's wall time in ms
  local h=$1 t0 t1
  shift
  t0=$(date +%s%N)
  taskset -c 1 "$weft" nvme read -a 127.0.0.1 -s "$port" -n nqn.2026-11.io.weft:tls-bench \
    --hostnqn "$h" --blocks 1 -o /dev/null "$@" >/dev/null ||
    { echo "tls_bench: weft nvme read --hostnqn $h $* failed" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f\n", (b - a) / 1e6}'
}
cases=(plain tls "${groups[@]}" bidi concat)
run_case() {  # run_case NAME: one timed read
  case $1 in
    plain) read_one "$host" ;;
    tls) read_one "$host" --tls-key-file "$work/tls.key" ;;
    bidi) read_one "$(dh_host bidi)" --dhchap-secret-file "$work/host.dhchap" \
      --dhchap-ctrl-secret-file "$work/ctrl.dhchap" ;;
    concat) read_one "$(dh_host concat)" --concat --dhchap-secret-file "$work/host.dhchap" ;;
    *) read_one "$(dh_host "$1")" --dhchap-secret-file "$work/host.dhchap" ;;
  esac
}
for c in "${cases[@]}"; do : >"$work/connect-$c"; done
for _ in $(seq "$connects"); do
  for c in "${cases[@]}"; do run_case "$c" >>"$work/connect-$c"; done
done
echo
echo "connect time: weft nvme read --blocks 1, whole run; $connects interleaved runs each; medians"
printf "%-38s %10s %12s\n" case "ms" "over plain"
base=$(median <"$work/connect-plain")
for c in "${cases[@]}"; do
  case $c in
    plain) label="plain TCP" ;;
    tls) label="TLS 1.3 (configured PSK)" ;;
    bidi) label="DH-HMAC-CHAP ffdhe2048, bidirectional" ;;
    concat) label="concatenation (ffdhe2048, then TLS)" ;;
    *) label="DH-HMAC-CHAP $c" ;;
  esac
  m=$(median <"$work/connect-$c")
  printf "%-38s %10.2f %+12.2f\n" "$label" "$m" "$(awk -v m="$m" -v b="$base" 'BEGIN {print m - b}')"
done
grep -q "$(dh_host concat): secure channel concatenation: a TLS PSK made" "$work/engine.log" ||
  { echo "tls_bench: concatenation made no TLS key"; tail -20 "$work/engine.log"; exit 1; }
