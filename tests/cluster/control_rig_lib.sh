# weft-control on the cluster rig: what the cases of control_rig_test.sh
# share (sourced after rig.sh and nexus_lib.sh, whose step/fail/wrong, cli/ok,
# fio_* and hash_share it uses).
#
# cr_init N makes a rig of N engine nodes plus one more node, N+1, that runs
# weft-control ($cr_url, 10.77.0.<N+1>:7080, SQLite in $rig_dir/control, log
# $rig_dir/control.log) and no engine: the control plane is a machine of its
# own on the network, so that a fault can cut a node off from it (rig_drop I
# N+1) while the client still reaches that node, or the other way round.
# Node i's engine registers as n<i> (--control, --heartbeat-ms 300,
# --poll-us 0). REST calls are curl from the client namespace.

cr_port=7080
cr_node=
cr_url=
cr_pid=
cr_host=nqn.2014-08.io.weft:rig:client # fio_start's --hostnqn: volumes are published to it
# --insecure: plain HTTP on the rig's private bridge (refused by default on
# any address but loopback).
cr_control_flags=(--missed-beats 3 --engine-timeout 5 --reconcile-interval 0.5 --insecure)

# Engine and control logs in every failure dump (nexus_lib's fail and
# nx_pass call rig_dump): rig_dump as rig.sh has it, then the control's log
# and its last events.
eval "_cr_rig_dump_engines() $(declare -f rig_dump | tail -n +2)"
rig_dump() {
  _cr_rig_dump_engines "$@"
  [ -n "${rig_dir:-}" ] || return 0
  local f
  for f in "$rig_dir"/control*.log "$rig_dir"/etcd*.log; do
    [ -f "$f" ] || continue
    echo "--- $f (last ${1:-30} lines)"
    tail -n "${1:-30}" "$f"
  done
  if [ -n "$cr_pid" ] && _rig_alive "$cr_pid"; then
    echo "--- the control plane's last events"
    rig_client curl -s --max-time 5 "$cr_url/v1/events?limit=1000" |
      jq -r '.events[-25:][] | "\(.seq) \(.kind) \(.message)"' 2>/dev/null
  fi
}

# cr_init N: rig_init N+1; node N+1 is the control plane's ($cr_node, $cr_url).
cr_init() {
  rig_init $(($1 + 1)) || fail "rig_init $(($1 + 1))"
  cr_node=$(($1 + 1))
  cr_url=http://$(rig_ip "$cr_node"):$cr_port
  cr_start_control
}

# cr_start_control: weft-control in node $cr_node's namespace (again: the
# same data dir and flags); returns once it answers /v1/status.
cr_start_control() {
  mkdir -p "$rig_dir/control"
  echo "=== starting weft-control ($(date +%T.%N | cut -c1-12))" >>"$rig_dir/control.log"
  # ip netns exec execs weft-control: $! is its pid.
  ip netns exec "$(rig_ns "$cr_node")" "$WEFT_CONTROL" --listen "$(rig_ip "$cr_node"):$cr_port" \
    --data-dir "$rig_dir/control" "${cr_control_flags[@]}" >>"$rig_dir/control.log" 2>&1 </dev/null &
  cr_pid=$!
  rig_wait 20 cr_answers || fail "weft-control does not answer at $cr_url after 20 s"
}

# cr_answers: weft-control runs and answers /v1/status.
cr_answers() {
  _rig_alive "$cr_pid" || fail "weft-control exited"
  rig_client curl -sf --max-time 2 "$cr_url/v1/status" >/dev/null
}

# cr_start_engine I: node I's engine, registering with the control plane as
# n<I> (at $cr_engine_control when set: several instances, comma-separated).
cr_start_engine() {
  rig_start_engine "$1" --control "${cr_engine_control:-$cr_url}" --node-id "n$1" --heartbeat-ms 300 --poll-us 0 ||
    fail "start node $1's engine"
}

# req METHOD PATH [BODY]: a REST call from the client namespace; $code, $body.
req() {
  local m=$1 p=$2 b=${3:-} r
  local args=(-s --max-time 30 -o "$rig_dir/body" -w '%{http_code}' -X "$m" "$cr_url$p")
  [ -z "$b" ] || args+=(-H 'Content-Type: application/json' --data "$b")
  r=$(rig_client curl "${args[@]}") || r=000
  code=$r
  body=$(cat "$rig_dir/body" 2>/dev/null)
}

# expect CODE METHOD PATH [BODY]: the call must answer CODE.
expect() {
  local want=$1
  shift
  req "$@"
  [ "$code" = "$want" ] || fail "$1 $2 -> $code, want $want: $body"
}

# vol_is ID FILTER: GET /v1/volumes/ID satisfies FILTER ($body: the volume).
vol_is() {
  req GET "/v1/volumes/$1"
  [ "$code" = 200 ] && jq -e "$2" <<<"$body" >/dev/null
}

# vol_wait SECS ID WHAT FILTER: waits until volume ID satisfies FILTER.
vol_wait() {
  rig_wait "$1" vol_is "$2" "$4" ||
    fail "$3: after $1 s volume $2 is still not $4; last: $body"
}

# nodes_online N: exactly N nodes are online.
nodes_online() {
  req GET /v1/nodes
  [ "$code" = 200 ] && [ "$(jq '[.nodes[] | select(.state == "online")] | length' <<<"$body")" = "$1" ]
}

# nodes_beat_since MS N: N nodes are online with a heartbeat at or after MS (Unix ms).
nodes_beat_since() {
  req GET /v1/nodes
  [ "$code" = 200 ] && [ "$(jq --argjson t "$1" \
    '[.nodes[] | select(.state == "online" and .last_seen_ms >= $t)] | length' <<<"$body")" = "$2" ]
}

# node_state ID STATE: node ID is in STATE (online, offline).
node_state() {
  req GET /v1/nodes
  [ "$code" = 200 ] && jq -e --arg n "$1" --arg s "$2" \
    'any(.nodes[]; .id == $n and .state == $s)' <<<"$body" >/dev/null
}

# cr_nodes_up N: nodes 1..N's engines and pools p<i> (a file in the node's
# data dir, POOL_MIB MiB, declared through the REST API) online.
cr_nodes_up() {
  local n=$1 mib=$2 i
  for i in $(seq "$n"); do cr_start_engine "$i"; done
  rig_wait 20 nodes_online "$n" || fail "$n nodes online within 20 s: $body"
  for i in $(seq "$n"); do
    expect 201 PUT "/v1/pools/p$i" \
      "{\"node\":\"n$i\",\"disk\":\"$rig_dir/n$i/pool.img\",\"size\":$((mib << 20))}"
    jqe_body "pool p$i" '.state == "online"'
  done
  step "$n nodes registered with weft-control, a pool of $mib MiB each (rig $rig_id, $rig_dir)"
}

# jqe_body WHAT FILTER [jq args...]: $body (JSON) must satisfy FILTER.
jqe_body() {
  local what=$1 filter=$2
  shift 2
  jq -e "$@" "$filter" <<<"$body" >/dev/null || fail "$what: want $filter; got: $body"
}

# event_since SEQ KIND: an event KIND with a seq above SEQ exists ($body: the events).
event_since() {
  req GET "/v1/events?since=$1&limit=1000"
  [ "$code" = 200 ] && jq -e --arg k "$2" 'any(.events[]; .kind == $k)' <<<"$body" >/dev/null
}

# event_wait SECS SEQ KIND WHAT: waits for an event KIND after SEQ; prints its message.
event_wait() {
  rig_wait "$1" event_since "$2" "$3" ||
    fail "$4: no $3 event within $1 s; events: $(jq -c '[.events[] | .kind]' <<<"$body")"
  step "  event $3: $(jq -r --arg k "$3" '[.events[] | select(.kind == $k)][0].message' <<<"$body")"
}

# last_seq: $seq, the last event's sequence number.
last_seq() {
  req GET "/v1/events?limit=1000"
  seq=$(jq '[.events[].seq] | max // 0' <<<"$body")
}

# pub_io CMD PUB [ARGS...]: weft nvme CMD from the client on the path of
# publication PUB (JSON: address, port, nqn), as the published host,
# bounded; $out, $rc.
pub_io() {
  local cmd=$1 pub=$2
  shift 2
  out=$(rig_client timeout -k 2 60 "$WEFT_CLI" nvme "$cmd" -a "$(jq -r .address <<<"$pub")" \
    -s "$(jq -r .port <<<"$pub")" -n "$(jq -r .nqn <<<"$pub")" --hostnqn "$cr_host" \
    --timeout 10 "$@" 2>&1)
  rc=$?
}

# pub_node PUB: the rig node number of publication PUB's nexus (n2 -> 2).
pub_node() { jq -r '.node | ltrimstr("n")' <<<"$1"; }

# engine_volumes I: $out, the names of node I's pool volumes, sorted, one a line.
engine_volumes() {
  ok "$1" volume list --json
  out=$(jq -r '.volumes[].name' <<<"$out" | sort)
}

# engine_nexuses I: $out, the uuids of node I's nexuses, sorted, one a line.
engine_nexuses() {
  ok "$1" nexus list --json
  out=$(jq -r '.nexuses[].uuid' <<<"$out" | sort)
}

# replica_hash I POOL REPLICA SIZE: $hash, the sha256 of the data area (SIZE
# bytes from byte 1 MiB: the nexus's LBA 0) of replica REPLICA in pool POOL
# on node I, shared for the read (to any host) and unshared again.
replica_hash() {
  local i=$1 pool=$2 id=$3 size=$4 nqn
  ok "$i" volume share "$pool" "$id" --any-host --json
  nqn=$(jq -r .nqn <<<"$out")
  nx_size=$size hash_share "$i" "$nqn"
  ok "$i" volume unshare "$pool" "$id"
}
