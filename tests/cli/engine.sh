# Sourced by the process tests of tests/cli and tests/fio: starts a real
# weft-engine on ephemeral ports and stops it on exit.
#
#   start_engine ENGINE [extra engine flags...]
#   -> $port (NVMe/TCP), $disc_port (its second listener), $nqn, $data,
#      $api_port (gRPC management API) and $metrics_port (Prometheus) when
#      the engine has --api-listen / --metrics-listen
#
# Port 0 and the "listening on" / "management API on" / "metrics on" lines
# avoid racing other tests for ports. $engine_data_dir (default $data) is
# the engine's --data-dir; its log is $data/engine.log.

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
  # The API and metrics listeners on ephemeral ports too (their defaults
  # would collide between tests running in parallel).
  local help extra=() want_api=0 want_metrics=0
  help=$("$engine" --help 2>&1)
  if grep -q -- --api-listen <<<"$help"; then
    extra+=(--api-listen 127.0.0.1:0)
    want_api=1
  fi
  if grep -q -- --metrics-listen <<<"$help"; then
    extra+=(--metrics-listen 127.0.0.1:0)
    want_metrics=1
  fi
  "$engine" --demo --demo-size "${DEMO_SIZE:-64MiB}" --data-dir "${engine_data_dir:-$data}" \
    --cores 0 --listen 127.0.0.1:0 --discovery-listen 127.0.0.1:0 "${extra[@]}" "$@" \
    >"$log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 200); do
    if [ "$(grep -c 'listening on' "$log")" -ge 2 ] &&
      { [ $want_api = 0 ] || grep -q 'management API on' "$log"; } &&
      { [ $want_metrics = 0 ] || grep -q 'metrics on http' "$log"; }; then
      break
    fi
    kill -0 "$engine_pid" 2>/dev/null || break
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
  api_port=
  metrics_port=
  if [ $want_api = 1 ]; then
    api_port=$(grep -o 'management API on 127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
    if [ -z "$api_port" ]; then
      echo "FAIL: the engine did not start its management API"
      cat "$log"
      exit 1
    fi
  fi
  if [ $want_metrics = 1 ]; then
    metrics_port=$(grep -o 'metrics on http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
    if [ -z "$metrics_port" ]; then
      echo "FAIL: the engine did not start its metrics listener"
      cat "$log"
      exit 1
    fi
  fi
}

source "$(dirname "${BASH_SOURCE[0]}")/../engine_args.sh"
