# Sourced by the process tests of tests/cli and tests/fio: starts a real
# weft-engine on ephemeral ports and stops it on exit.
#
#   start_engine ENGINE [extra engine flags...]
#   -> $port (NVMe/TCP), $disc_port (its second listener), $nqn, $data
#
# Port 0 and the "listening on" lines avoid racing other tests for ports.

nqn=nqn.2026-11.io.weft:demo
data=$(mktemp -d)
engine_pid=
stop_engine() {
  if [ -n "$engine_pid" ] && kill -0 "$engine_pid" 2>/dev/null; then
    kill -TERM "$engine_pid"
    wait "$engine_pid" 2>/dev/null
  fi
  engine_pid=
}
trap 'stop_engine; rm -rf "$data"' EXIT

start_engine() {
  local engine=$1
  shift
  stop_engine
  local log=$data/engine.log
  "$engine" --demo --demo-size "${DEMO_SIZE:-64MiB}" --data-dir "$data" --cores 0 \
    --listen 127.0.0.1:0 --discovery-listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 200); do
    [ "$(grep -c 'listening on' "$log")" -ge 2 ] && break
    sleep 0.05
  done
  local ports
  ports=($(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | sed 's/.*://'))
  if [ "${#ports[@]}" -lt 2 ]; then
    echo "FAIL: the engine did not start"
    cat "$log"
    exit 1
  fi
  port=${ports[0]}
  disc_port=${ports[1]}
}
