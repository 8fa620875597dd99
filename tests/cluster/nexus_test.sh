#!/usr/bin/env bash
# The nexus's fault tolerance on the cluster rig, with fio verifying every
# block it wrote, one case per run (ctest cluster.nexus_CASE):
#   nexus_test.sh ENGINE WEFT LIBWEFT_FIO CASE
# The set-up (nexus_lib.sh): three nodes; a nexus on node 1 over its local
# volume and the volumes of nodes 2 and 3 (over NVMe/TCP); fio in the client
# namespace. Cases:
#   replica_killed       node 2's engine is SIGKILLed during fio, then restarted
#   replica_link_cut     node 2's link goes down during fio, then up
#   replica_slow         node 2's link is throttled to a trickle during fio
#   replica_errors       node 2's volume fails its writes during fio
#   nexus_engine_killed  node 1's engine (the nexus) is SIGKILLed and restarted
#   partition            node 1 is cut off from nodes 2 and 3; a new nexus
#                        takes over on node 2; node 1 finds it is superseded
#   partition_heals      node 1 is cut off from nodes 2 and 3 for a while,
#                        nobody takes over: writes are held, then go on
#   two_way_minority     a nexus of two children loses one: writes are held
#                        until the arbiter allows them
# Each: no fio error (but where the case says a job is expected to be cut),
# the lost child comes back with the rebuild the case expects, and the
# children's data areas are identical at the end.
set -u
WEFT_ENGINE=$(realpath "$1")
WEFT_CLI=$(realpath "$2")
WEFT_FIO=$(realpath "$3") # fio wants the engine's absolute path
nx_case=$4
here=$(cd "$(dirname "$0")" && pwd)
source "$here/rig.sh"

# Network namespaces need root; ctest counts exit code 77 as skipped.
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null || ! command -v tc >/dev/null; then
  echo "SKIP: the rig needs root, nft and tc (scripts/setup.sh installs nftables)"
  exit 77
fi
for tool in fio jq; do
  command -v $tool >/dev/null || { echo "FAIL: no $tool (scripts/setup.sh installs it)"; exit 1; }
done
source "$here/nexus_lib.sh"

# want_reason I WANT...: node I's child was faulted with one of the WANT
# reasons ($reason, from nx_wait_child_out); recorded as wrong otherwise
# (the reason is what an operator reads, the case can go on).
want_reason() {
  local i=$1 w
  shift
  for w in "$@"; do [ "$reason" = "$w" ] && return 0; done
  wrong "node $i's child was faulted with reason '$reason', want: $*"
}

# nx_others_online I: every child but node I's is online, the nexus degraded.
nx_others_online() {
  jqe "the nexus while node $1's child is out" \
    '.state == "degraded" and all(.children[]; .uri == $u or .state == "online")' \
    --arg u "${uri_of[$1]}"
}

# ---- replica_killed ---------------------------------------------------------------------
# Node 2's engine is SIGKILLed while fio writes: fio sees no error; node 2's
# child is faulted ("unreachable") and reconnected; node 2 restarts with its
# pool and share; the nexus rebuilds the child by itself, partially (the
# regions written while it was away: fio's hot area).
case_replica_killed() {
  nx_setup
  nx_hot_start 25
  rig_kill 2 || fail "rig_kill 2"
  step "node 2's engine SIGKILLed"
  nx_wait_child_out 2 10
  want_reason 2 unreachable
  nx_wait 10 "node 2's child being reconnected" \
    "any(.children[]; .uri == \"${uri_of[2]}\" and .reconnecting)"
  nx_others_online 2
  sleep 3
  rig_restart_engine 2 || fail "restart node 2's engine"
  step "node 2's engine restarted (same data dir)"
  nx_hot_finish 2
}

# ---- replica_link_cut -------------------------------------------------------------------
# Node 2's link goes down while fio writes (its engine runs on, unaware):
# node 2's child is retired when its I/O times out, reconnected once the
# link is back, and rebuilt partially.
case_replica_link_cut() {
  nx_setup
  nx_hot_start 25
  rig_link_down 2 || fail "rig_link_down 2"
  step "node 2's link down"
  nx_wait_child_out 2 15
  want_reason 2 timeout unreachable
  nx_others_online 2
  sleep 3
  rig_link_up 2 || fail "rig_link_up 2"
  step "node 2's link up"
  nx_hot_finish 2
}

# ---- replica_slow -----------------------------------------------------------------------
# Node 2's link is throttled to a trickle both ways while fio writes: its
# I/O exceeds --io-timeout-ms and the child is retired; fio sees latency
# only. Unthrottled: reconnected, rebuilt partially.
case_replica_slow() {
  nx_setup
  nx_hot_start 25
  RIG_TBF_BURST=4kb rig_slow 2 16kbit both || fail "rig_slow 2"
  step "node 2's link throttled to 16 kbit/s both ways"
  nx_wait_child_out 2 15
  # Its commands time out ("timeout"); the initiator then drops the
  # connection and fails the others ("unreachable"): either may come first.
  want_reason 2 timeout unreachable
  nx_others_online 2
  sleep 3
  rig_unslow 2 || fail "rig_unslow 2"
  step "node 2's link at full speed again"
  nx_hot_finish 2
  local max
  max=$(grep -E '^ +clat \(' "$rig_dir/fio.hot.log" | sed -E 's/.*max=([0-9.]+k?).*/\1/' | paste -sd/ -)
  step "fio's highest completion latencies (read/write, usec or msec as fio says): $max"
}

# ---- replica_errors ---------------------------------------------------------------------
# Node 2's volume fails every write (weft engine volume inject-fault) while fio
# writes: the child is retired ("io error"); the fault cleared, `weft engine nexus
# rebuild` brings it back with a partial rebuild.
case_replica_errors() {
  nx_setup
  nx_hot_start 25
  ok 2 volume inject-fault p v2 --ops write
  step "node 2's volume fails its writes"
  nx_wait_child_out 2 10
  want_reason 2 "io error"
  nx_others_online 2
  sleep 3
  ok 2 volume inject-fault p v2 --ops none
  step "node 2's volume works again"
  # While its writes failed, the child answered every reconnection: the
  # nexus's reconnect backoff (250 ms, doubling to 5 s) bounds how often it
  # came back and failed its rebuild again.
  local backs
  backs=$(grep -c "child ${uri_of[2]} is back" "$rig_dir/n1.log")
  step "  node 2's child came back $backs times while its writes failed"
  [ "$backs" -le 25 ] ||
    wrong "node 2's child, failing every write, was reconnected and rebuilt $backs times in a few seconds (no backoff between failed rebuilds)"
  ok 1 nexus rebuild "$nx_uuid" "${uri_of[2]}"
  grep -q "^${uri_of[2]} is online (in sync)" <<<"$out" ||
    fail "weft engine nexus rebuild should end with the child in sync: $out"
  nx_hot_finish 2
}

# ---- nexus_engine_killed ----------------------------------------------------------------
# The engine that holds the nexus (node 1) is SIGKILLed: restarted, it
# re-creates the nexus from its children (a resync after the unclean stop),
# and what fio wrote and verified before the crash verifies after it. Then
# node 1 crashes while node 3 is away and written around: the write-intent
# bitmap survives on the children, so node 3 comes back with a partial
# rebuild.
# Phase 1 writes every block of the nexus once (16k blocks, random order).
p1_args=(--name=p1 --rw=randwrite --bs=16k --size="${nx_size_mib}m")
case_nexus_engine_killed() {
  nx_setup
  fio_run p1 1 "$nx_nqn" "${p1_args[@]}"
  rig_kill 1 || fail "rig_kill 1"
  local from
  from=$(($(wc -l <"$rig_dir/n1.log") + 1))
  rig_restart_engine 1 || fail "restart node 1's engine"
  step "node 1's engine SIGKILLed and restarted"
  tail -n +"$from" "$rig_dir/n1.log" | grep -q "nexus ${nx_uuid:0:8}: re-created" ||
    fail "node 1's log does not say the nexus was re-created"
  nx_wait_all_online 20 "the nexus re-created after node 1's crash"
  step "the nexus is back: $(tail -n +"$from" "$rig_dir/n1.log" | grep -o "re-created at.*" | head -1)"
  fio_run p1-verify 1 "$nx_nqn" "${p1_args[@]}" --verify_only=1
  # Phase 3: write and verify again; node 3 leaves meanwhile.
  nx_hot_start 15 nofill
  rig_kill 3 || fail "rig_kill 3"
  step "node 3's engine SIGKILLed"
  nx_wait_child_out 3 10
  want_reason 3 unreachable
  fio_wait hot "$hot_pid"
  # Node 1 crashes while node 3 is away (its child stale, the bitmap
  # holding what it missed).
  rig_kill 1 || fail "rig_kill 1 (second time)"
  from=$(($(wc -l <"$rig_dir/n1.log") + 1))
  rig_restart_engine 1 || fail "restart node 1's engine (second time)"
  step "node 1's engine SIGKILLed and restarted while node 3 is down"
  tail -n +"$from" "$rig_dir/n1.log" | grep -q "nexus ${nx_uuid:0:8}: re-created" ||
    fail "node 1's log does not say the nexus was re-created (second time)"
  nx_wait 20 "the nexus re-created without node 3" \
    ".state == \"degraded\" and ([.children[] | .state] == [\"online\", \"online\", \"faulted\"])"
  nx_wait_child_out 3 1
  fio_run once-verify 1 "$nx_nqn" --name=once --offset=0 --size=$((nx_hot_mib / 2))m \
    --rw=randwrite --verify_only=1
  rig_restart_engine 3 || fail "restart node 3's engine"
  step "node 3's engine restarted"
  nx_wait_all_online 30 "node 3's child coming back"
  nx_check_rebuild "${uri_of[3]}" partial $((2 * nx_hot_mib * nx_mib))
  fio_run p3 1 "$nx_nqn" --name=p3 --rw=randwrite --size=32m
  nx_final_check
}

# ---- partition --------------------------------------------------------------------------
# Node 1 (the nexus) is cut off from nodes 2 and 3 while fio (job A) writes
# through it: with one of three children it has no majority, so it holds
# writes (job A hangs and is killed: it is no part of the claim). A new
# nexus with the same UUID is created on node 2 from the far side's two
# children (a majority of the three in sync), shared there; job B writes
# and verifies through it. The partition heals: node 1's nexus finds it is
# superseded and writes nothing more. Node 1's volume joins node 2's nexus
# (a full rebuild); job B's data verifies; the three children are equal.
case_partition() {
  nx_setup
  fio_run fill 1 "$nx_nqn" "${fio_fill_args[@]}"
  FIO_LIMIT=90 fio_start A 1 "$nx_nqn" --rw=randwrite --size=32m --time_based=1 --runtime=80
  local a_pid=$fio_pid
  sleep 2
  rig_drop 1 2 && rig_drop 1 3 || fail "rig_drop 1 2; rig_drop 1 3"
  step "node 1 cut off from nodes 2 and 3"
  nx_wait 20 "node 1's nexus without a majority" '.state == "waiting"'
  step "node 1's nexus holds writes: $(jq -r .waiting <<<"$out")"
  # Held: job A completes nothing while it waits.
  sleep 2
  nx_get
  jqe "node 1's nexus still holding writes" '.state == "waiting"'

  # The far side: a new nexus with the same UUID on node 2, over its own
  # volume (through its share) and node 3's.
  ok 2 nexus create --uuid "$nx_uuid" --child "${uri_of[2]}" --child "${uri_of[3]}" \
    --io-timeout-ms "$nx_io_timeout_ms" --json
  jqe "the nexus re-created on node 2" \
    '.state == "online" and ([.children[] | {uri, state}] == [
      {"uri": $u2, "state": "online"}, {"uri": $u3, "state": "online"}])' \
    --arg u2 "${uri_of[2]}" --arg u3 "${uri_of[3]}"
  local gen_b
  gen_b=$(jq -r .generation <<<"$out")
  ok 2 nexus share "$nx_uuid" --any-host
  step "node 2 re-created nexus $nx_uuid over v2 and v3 (generation $gen_b), shared"
  ok 2 nexus label "${uri_of[3]}" --json
  jqe "node 3's child's label under node 2's nexus" \
    '.present and .nexus_uuid == $u and .generation >= ($g | tonumber) and (.members | length) == 2 and
     all(.members[]; .state == "in-sync")' --arg u "$nx_uuid" --arg g "$gen_b"
  fio_run B 2 "$nx_nqn" --name=B --rw=randwrite --size=32m
  nx_get 1
  jqe "node 1's nexus while cut off" '.state == "waiting"'

  # Heal: node 1's nexus must learn it was superseded, and write nothing.
  rig_undrop 1 || fail "rig_undrop 1"
  step "partition healed"
  if rig_wait 30 nx_is '.state == "superseded"' 1; then
    step "node 1's nexus: superseded: $(jq -r .waiting <<<"$out")"
  else
    wrong "30 s after the partition healed, node 1's nexus is still not superseded: state $(jq -r .state <<<"$out"), children $(jq -c '[.children[] | {uri, state, reason, reconnecting}]' <<<"$out")"
  fi
  fio_stop "$a_pid"
  step "job A stopped (it was cut off: not part of the claim)"
  ok 2 nexus label "${uri_of[2]}" --json
  jqe "node 2's child's label after node 1's nexus woke up" \
    '.present and .nexus_uuid == $u and .generation >= ($g | tonumber) and (.members | length) == 2' \
    --arg u "$nx_uuid" --arg g "$gen_b"
  fio_run B-verify 2 "$nx_nqn" --name=B --rw=randwrite --size=32m --verify_only=1

  # Node 1's volume joins node 2's nexus.
  ok 1 nexus unshare "$nx_uuid"
  ok 1 nexus destroy "$nx_uuid"
  ok 1 volume share p v1 --any-host --json
  nqn_of[1]=$(jq -r .nqn <<<"$out")
  local uri1=nvmf://$(rig_ip 1):4420/${nqn_of[1]}
  # Node 1's nexus's last word on v1: v1 alone in sync (its generation may
  # be above node 2's: labels are ordered by instance first, docs/nexus-format.md).
  ok 2 nexus label "$uri1" --json
  jqe "node 1's volume's label (node 1's nexus's last word)" \
    '.present and .nexus_uuid == $u and ([.members[].state] == ["in-sync", "stale", "stale"])' \
    --arg u "$nx_uuid"
  step "v1's label: generation $(jq -r .generation <<<"$out"), members $(jq -c '[.members[].state]' <<<"$out")"
  ok 2 nexus add-child "$nx_uuid" "$uri1"
  uri_of[1]=$uri1
  nx_node=2
  nx_wait_all_online 40 "node 1's volume joining node 2's nexus"
  nx_check_rebuild "$uri1" full "$nx_size"
  fio_run B-verify2 2 "$nx_nqn" --name=B --rw=randwrite --size=32m --verify_only=1
  nx_final_check 2
}

# ---- partition_heals --------------------------------------------------------------------
# Node 1 (the nexus) is cut off from nodes 2 and 3 for a few seconds while
# fio writes, and nobody takes over: the nexus holds writes (no majority),
# and when the partition heals the children answer again: the retirement
# reaches a majority, writes go on (fio sees latency only), and nodes 2 and
# 3 are rebuilt partially (nexus.h: "holds writes until the children answer
# again or arbitrate(true)").
case_partition_heals() {
  nx_setup
  nx_hot_start 25
  rig_drop 1 2 && rig_drop 1 3 || fail "rig_drop 1 2; rig_drop 1 3"
  step "node 1 cut off from nodes 2 and 3"
  nx_wait 15 "node 1's nexus without a majority" '.state == "waiting"'
  step "writes are held: $(jq -r .waiting <<<"$out")"
  sleep 3
  rig_undrop 1 || fail "rig_undrop 1"
  step "partition healed"
  nx_wait 20 "node 1's nexus once its children answer again" '.state != "waiting"'
  step "writes go on: nexus $(jq -r .state <<<"$out")"
  nx_wait_all_online 30 "nodes 2 and 3 coming back"
  step "every child online"
  nx_check_rebuild "${uri_of[2]}" partial $((2 * nx_hot_mib * nx_mib))
  nx_check_rebuild "${uri_of[3]}" partial $((2 * nx_hot_mib * nx_mib))
  fio_wait hot "$hot_pid"
  nx_final_check
}

# ---- two_way_minority -------------------------------------------------------------------
# A nexus of two children (node 1's local volume and node 2's) loses node
# 2: one of two is no majority, so the nexus holds writes (state
# "waiting"; fio stalls) until the arbiter says it may go on (weft engine nexus
# arbitrate --allow); then fio completes without an error, and node 2's
# child, back, is rebuilt partially.
case_two_way_minority() {
  nx_children=(1 2)
  nx_setup
  nx_hot_start 25
  rig_kill 2 || fail "rig_kill 2"
  step "node 2's engine SIGKILLed"
  nx_wait 10 "the nexus without a majority" '.state == "waiting"'
  step "writes are held: $(jq -r .waiting <<<"$out")"
  sleep 3
  nx_get
  jqe "the nexus still holding writes" '.state == "waiting"'
  ok 1 nexus arbitrate "$nx_uuid" --allow
  nx_wait 10 "the nexus after the arbiter's yes" '.state == "degraded"'
  nx_wait_child_out 2 1
  want_reason 2 unreachable
  rig_restart_engine 2 || fail "restart node 2's engine"
  step "node 2's engine restarted"
  nx_hot_finish 2
}

case "$nx_case" in
  replica_killed | replica_link_cut | replica_slow | replica_errors | nexus_engine_killed | \
    partition | partition_heals | two_way_minority)
    "case_$nx_case"
    ;;
  *)
    echo "unknown case $nx_case"
    exit 2
    ;;
esac
nx_pass
