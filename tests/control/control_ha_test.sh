#!/usr/bin/env bash
# Two weft-control instances on one real 3-member etcd cluster (loopback),
# three engines that heartbeat to either, and the leader SIGKILLed while 50
# volumes are being created:
#   control_ha_test.sh WEFT ENGINE CONTROL
# Checks: exactly one instance leads; a standby serves reads and forwards
# writes (nodes register through either); after the kill the other instance
# leads within a few seconds (the lease is 2 s); a client that retries the
# same create on the other instance (`weft --control A,B`, creates name their
# volume) ends with every one of the 50 volumes complete (3 replicas, ready),
# every volume acknowledged before the kill still there, and on the engines
# exactly 150 replica volumes: none lost, none made twice, none leaked; no
# node flapped offline while the leadership changed hands.
set -u
weft=$1
engine=$2
control=$3
data=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$data"
}
trap cleanup EXIT
fail() {
  echo "FAIL (ha): $*"
  for f in "$data"/*.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }
  done
  exit 1
}
command -v etcd >/dev/null || fail "no etcd binary: run scripts/setup.sh (Debian's etcd-server)"
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  fail "timed out waiting for $what"
}
# A free port below Linux's ephemeral range (32768 and up): the port-0
# listeners of tests running meanwhile cannot take it before etcd binds it.
free_port() {
  python3 -c 'import random, socket
for _ in range(100):
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: s.close()'
}

# etcd: three members
declare -a cport pport
initial=
for i in 0 1 2; do
  cport[i]=$(free_port) pport[i]=$(free_port)
  initial+="${initial:+,}e$i=http://127.0.0.1:${pport[i]}"
done
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$data/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${cport[i]}" --advertise-client-urls "http://127.0.0.1:${cport[i]}" \
    --listen-peer-urls "http://127.0.0.1:${pport[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pport[i]}" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "weft-ha-$$" \
    --logger zap --log-level error >"$data/etcd$i.log" 2>&1 &
  pids+=($!)
done
endpoints="http://127.0.0.1:${cport[0]},http://127.0.0.1:${cport[1]},http://127.0.0.1:${cport[2]}"
etcd_healthy() { curl -sf "http://127.0.0.1:${cport[$1]}/health" | grep -q '"health":"true"'; }
for i in 0 1 2; do wait_for 30 "etcd member $i" etcd_healthy $i; done

# two weft-control instances
declare -a cpid curl_of
start_control() {  # start_control I
  local i=$1 log=$data/control$1.log port=
  "$control" --listen 127.0.0.1:0 --store "etcd:$endpoints" --etcd-prefix "/weft-ha-$$/" \
    --lease 2 --missed-beats 3 --engine-timeout 5 --reconcile-interval 1 >"$log" 2>&1 &
  cpid[i]=$!
  pids+=("${cpid[i]}")
  disown "${cpid[i]}" 2>/dev/null || true  # no "Killed" line from bash
  for _ in $(seq 100); do
    port=$(grep -o 'listening 127.0.0.1:[0-9]*' "$log" | tail -1 | sed 's/.*://')
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || fail "weft-control $i did not start"
  curl_of[i]=http://127.0.0.1:$port
}
start_control 0
start_control 1
both="${curl_of[0]},${curl_of[1]}"
leads() { curl -sf "${curl_of[$1]}/v1/status" | jq -e .leader >/dev/null; }
one_leader() {
  local n=0
  leads 0 && n=$((n + 1))
  leads 1 && n=$((n + 1))
  [ $n = 1 ]
}
wait_for 20 "one leader of the two" one_leader
if leads 0; then leader=0 standby=1; else leader=1 standby=0; fi
status=$(curl -sf "${curl_of[standby]}/v1/status")
[ "$(jq -r .leader_url <<<"$status")" = "${curl_of[leader]}" ] ||
  fail "the standby names $(jq -r .leader_url <<<"$status") as leader, not ${curl_of[leader]}"
echo "leader: instance $leader (${curl_of[leader]}); standby ${curl_of[standby]} knows it"

# three engines, heartbeating to the standby first: their PUTs are forwarded
for i in 1 2 3; do
  mkdir -p "$data/e$i"
  "$engine" --data-dir "$data/e$i" --cores 0 --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
    --metrics-listen none --control "${curl_of[standby]},${curl_of[leader]}" --node-id "n$i" \
    --heartbeat-ms 300 >"$data/engine$i.log" 2>&1 &
  pids+=($!)
done
nodes_online() {
  [ "$(curl -sf "${curl_of[$1]}/v1/nodes" | jq '[.nodes[] | select(.state == "online")] | length')" = 3 ]
}
wait_for 30 "3 nodes online (registered through the standby)" nodes_online "$leader"
nodes_online "$standby" || fail "the standby does not read the nodes the leader stored"
for i in 1 2 3; do
  "$weft" pool create "p$i" --node "n$i" --disk "$data/pool$i.img" --size 256MiB \
    --control "${curl_of[standby]}" >/dev/null || fail "pool create p$i through the standby"
done

# 50 creates through `weft --control A,B`, one after another in the
# background; the leader is killed once 15 are acknowledged (the 16th is on
# its way), and the hand-over is timed meanwhile.
ids=()
for k in $(seq 1 50); do ids+=("$(printf '7e1d0000-0000-4000-8000-%012d' "$k")"); done
create() {  # create ID: retried (same id) until it succeeds or 30 s pass
  local t=$SECONDS
  while [ $((SECONDS - t)) -lt 30 ]; do
    "$weft" volume create --id "$1" --size 4MiB --replicas 3 --control "$both" --timeout 20 \
      >/dev/null 2>>"$data/cli.log" && return 0
    sleep 0.2
  done
  return 1
}
: >"$data/acked"
: >"$data/cli.log"
(
  for id in "${ids[@]}"; do
    create "$id" || { echo "FAILED $id" >>"$data/acked"; exit 1; }
    echo "$id" >>"$data/acked"
  done
) &
creator=$!
fifteen() { [ "$(wc -l <"$data/acked")" -ge 15 ]; }
wait_for 60 "15 volumes created" fifteen
kill -KILL "${cpid[leader]}"
kill_ms=$(date +%s%3N)
cli_lines_at_kill=$(wc -l <"$data/cli.log")
echo "after $(wc -l <"$data/acked") acknowledged creates: leader (instance $leader) SIGKILLed"
wait_for 20 "the survivor to lead" leads "$standby"
took=$(awk -v a="$kill_ms" -v b="$(date +%s%3N)" 'BEGIN{printf "%.1f", (b-a)/1000}')
echo "the survivor (instance $standby) leads ${took}s after the kill (lease 2 s)"
wait "$creator" || fail "the creates did not all succeed: $(grep FAILED "$data/acked")"
mapfile -t acked <"$data/acked"
[ "${#acked[@]}" = 50 ] || fail "${#acked[@]} creates acknowledged, want 50"

# No node flapped offline during the hand-over: their last beats went to the
# dead leader, and the survivor gives them their grace from when it leads.
# Only what came after the kill counts: on a loaded machine (the suite runs
# in parallel, under ASan) the store can stall for longer than the 0.9 s of
# missed beats this test allows, and that is not the hand-over's doing.
events=$(curl -sf "${curl_of[standby]}/v1/events?limit=1000") || fail "GET /v1/events on the survivor"
after_kill=$(jq -c --argjson t "$kill_ms" '[.events[] | select(.kind == "node-online" and .time_ms >= $t)]' <<<"$events")
before_kill=$(jq --argjson t "$kill_ms" '[.events[] | select(.kind == "node-online" and .time_ms < $t)] | length' <<<"$events")
[ "$before_kill" = 0 ] || echo "note: $before_kill node-online event(s) before the kill (a stall under load, not the hand-over)"
[ "$(jq length <<<"$after_kill")" = 0 ] || fail "$(jq length <<<"$after_kill") node(s) went offline during the hand-over: $after_kill"
refused=$(tail -n +$((cli_lines_at_kill + 1)) "$data/cli.log" | grep -m3 "507\|offline")
[ -z "$refused" ] || fail "creates were refused for want of nodes during the hand-over: $refused"

# every volume complete; every acknowledged one there
list=$(curl -sf "${curl_of[standby]}/v1/volumes") || fail "GET /v1/volumes on the survivor"
[ "$(jq '.volumes | length' <<<"$list")" = 50 ] || fail "$(jq '.volumes | length' <<<"$list") volumes, want 50"
for id in "${acked[@]}"; do
  jq -e --arg id "$id" '.volumes[] | select(.id == $id) | .replicas | length == 3' <<<"$list" >/dev/null ||
    fail "volume $id was acknowledged but is not there with 3 replicas"
done
bad=$(jq -r '[.volumes[] | select(.phase != null and .phase != "ready")] | length' <<<"$list")
[ "$bad" = 0 ] || fail "$bad volume(s) not ready: $(jq -c '[.volumes[] | select(.phase != "ready") | {id, phase}]' <<<"$list")"
# on the engines: exactly 3 x 50 replicas (none made twice, none leaked)
total=0
for i in 1 2 3; do
  api=$(grep -o 'management API on 127.0.0.1:[0-9]*' "$data/engine$i.log" | head -1 | sed 's/.*on //')
  n=$("$weft" engine volume list --json --api "$api" | jq '.volumes | length') ||
    fail "weft engine volume list on n$i"
  total=$((total + n))
done
[ "$total" = 150 ] || fail "the engines hold $total replica volumes, want 150"
# the survivor acts: a delete through it goes through
"$weft" volume delete "${ids[0]}" --control "$both" >/dev/null || fail "delete after the hand-over"
echo "PASS (ha): one leader of two, writes forwarded by the standby; the leader killed after 15 of 50 creates, the survivor led ${took}s later; all 50 complete, 150 replicas on the engines"
