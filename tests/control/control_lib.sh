# The harness of the tests that run weft-control with real engines on
# loopback (control_test.sh, tests/csi): a scratch directory, processes that
# are stopped at exit, weft-control and engines started on ephemeral ports,
# and REST requests checked against what they should answer.
# The sourcing script sets: weft, engine, control (the binaries) and
# case_name (named in failures).
data=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$data"
}
trap cleanup EXIT
fail() {
  echo "FAIL ($case_name): $*"
  for f in "$data"/*.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }
  done
  exit 1
}

# start_control: weft-control on an ephemeral port (the same one again on a
# restart: the engines beat to it); $url.
control_pid=
control_port=0
# The control plane's scheme and curl's extra options (a CA, a client
# certificate, a token) when it serves HTTPS or wants tokens.
control_scheme=http
curl_opts=()
start_control() {
  "$control" --listen "127.0.0.1:$control_port" --data-dir "$data/control" --missed-beats 3 \
    --engine-timeout 5 ${CONTROL_FLAGS:-} >>"$data/control.log" 2>&1 &
  control_pid=$!
  pids+=("$control_pid")
  local port=
  for _ in $(seq 100); do
    port=$(grep -o 'listening 127.0.0.1:[0-9]*' "$data/control.log" | tail -1 | sed 's/.*://')
    [ -n "$port" ] && curl -sf "${curl_opts[@]}" "$control_scheme://127.0.0.1:$port/v1/status" >/dev/null && break
    kill -0 "$control_pid" 2>/dev/null || fail "weft-control did not start"
    sleep 0.1
  done
  [ -n "$port" ] || fail "weft-control did not start"
  control_port=$port
  url=$control_scheme://127.0.0.1:$port
}
stop_control() {
  kill -TERM "$control_pid"
  wait "$control_pid" 2>/dev/null
  : >"$data/control.log"
}

# start_node I: engine nI with its own data dir, registering with $url.
# A restarted engine listens on the ports it had (the first start lets the
# kernel pick them): remote children are reached at the address they had.
declare -A engine_pid nvmf_port api_port
start_node() {
  local i=$1 log=$data/engine$1.log
  mkdir -p "$data/e$i"
  "$engine" --data-dir "$data/e$i" --cores 0 --listen "127.0.0.1:${nvmf_port[$i]:-0}" \
    --api-listen "127.0.0.1:${api_port[$i]:-0}" \
    --metrics-listen none --control "$url" --node-id "n$i" --node-label "zone=z$i" \
    --heartbeat-ms 300 ${ENGINE_FLAGS:-} >"$log" 2>&1 &
  engine_pid[$i]=$!
  pids+=("${engine_pid[$i]}")
  for _ in $(seq 100); do
    grep -q 'management API on' "$log" && grep -q 'listening on' "$log" && break
    sleep 0.1
  done
  nvmf_port[$i]=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
  api_port[$i]=$(grep -o 'management API on 127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
  [ -n "${nvmf_port[$i]}" ] && [ -n "${api_port[$i]}" ] || fail "engine n$i did not start"
}
kill_node() {
  kill -KILL "${engine_pid[$1]}" 2>/dev/null
  wait "${engine_pid[$1]}" 2>/dev/null
}
api_of() { grep -o 'management API on 127.0.0.1:[0-9]*' "$data/engine$1.log" | tail -1 | sed 's/.*on //'; }

# req METHOD PATH [BODY]: $code, $body, $ctype.
req() {
  local m=$1 p=$2 b=${3:-}
  local args=(-s -o "$data/body" -w '%{http_code} %{content_type}' -X "$m" "$url$p")
  [ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data "$b")
  local r
  r=$(curl "${curl_opts[@]}" "${args[@]}") || fail "curl $m $p failed"
  code=${r%% *}
  ctype=${r#* }
  body=$(<"$data/body")
}
# expect CODE METHOD PATH [BODY]
expect() {
  local want=$1
  shift
  req "$@"
  [ "$code" = "$want" ] || fail "$1 $2 -> $code, want $want: $body"
  if [ "$code" -ge 400 ]; then
    [[ $ctype == application/problem+json* ]] || fail "$1 $2: $code as $ctype, not a problem"
    jq -e '.detail | length > 0' <<<"$body" >/dev/null || fail "$1 $2: no sentence: $body"
  fi
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  fail "timed out waiting for $what"
}
nodes_online() {
  req GET /v1/nodes
  [ "$(jq '[.nodes[] | select(.state == "online")] | length' <<<"$body")" = "$1" ]
}
volume_state() {
  req GET "/v1/volumes/$1"
  [ "$(jq -r .state <<<"$body")" = "$2" ]
}
