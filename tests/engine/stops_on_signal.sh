#!/usr/bin/env bash
# weft-engine starts its reactors and exits 0, promptly, on SIGTERM and SIGINT.
set -u
engine=$1
for sig in TERM INT; do
  log=$(mktemp)
  "$engine" --cores 0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "reactor(s)" "$log" && break; sleep 0.05; done
  grep -q "reactor(s)" "$log" || { echo "engine did not start"; cat "$log"; exit 1; }
  kill -"$sig" "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then echo "engine still running 5 s after SIG$sig"; kill -9 "$pid"; exit 1; fi
  wait "$pid"; rc=$?
  [ "$rc" -eq 0 ] || { echo "exit code $rc after SIG$sig"; cat "$log"; exit 1; }
  grep -q stopping "$log" || { echo "no stop message"; cat "$log"; exit 1; }
  rm -f "$log"
done
# A bad core list is refused with a message and exit code 2.
out=$("$engine" --cores 0-x 2>&1); rc=$?
[ "$rc" -eq 2 ] && [[ "$out" == *"not a CPU range"* ]] || { echo "bad --cores: rc=$rc: $out"; exit 1; }
echo "ok"
