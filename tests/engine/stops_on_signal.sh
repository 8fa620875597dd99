#!/usr/bin/env bash
# weft-engine starts, serves, and exits 0, promptly, on SIGTERM and SIGINT;
# bad flags are refused with a sentence and exit code 2.
set -u
engine=$1
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
for sig in TERM INT; do
  log=$(mktemp)
  "$engine" --demo --demo-size 16MiB --data-dir "$data" --listen 127.0.0.1:0 --cores 0 \
    --api-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "nvme connect" "$log" && break; sleep 0.05; done
  grep -q "nvme connect" "$log" || { echo "engine did not start"; cat "$log"; exit 1; }
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
# Nothing to serve is an error that says what to do.
out=$("$engine" --cores 0 --api-listen none 2>&1); rc=$?
[ "$rc" -eq 2 ] && [[ "$out" == *"nothing to listen on"* ]] || { echo "no listener: rc=$rc: $out"; exit 1; }
# A bad configuration file is refused before anything starts.
echo '{"subsystems": [{"nqn": 5}]}' > "$data/bad.json"
out=$("$engine" --cores 0 --config "$data/bad.json" --listen 127.0.0.1:0 2>&1); rc=$?
[ "$rc" -eq 2 ] && [[ "$out" == *"wrong type"* ]] || { echo "bad config: rc=$rc: $out"; exit 1; }
echo "ok"
