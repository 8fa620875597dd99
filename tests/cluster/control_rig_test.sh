#!/usr/bin/env bash
# weft-control and real engines on the cluster rig (every node its own
# network namespace, faults injected by rig.sh), one case per run (ctest
# cluster.control_CASE):
#   control_rig_test.sh WEFT_ENGINE WEFT_CLI WEFT_CONTROL LIBWEFT_FIO CASE
# weft-control runs on a node of its own (the rig's last node, 10.77.0.<N+1>,
# port 7080, SQLite in the rig's directory, no engine there): the control
# plane is a machine on the network like the others, so that a node can be
# cut off from the control plane and its peer while the client still
# reaches it (partition B), which a control plane in the client's namespace
# could not show. Node i's engine registers as n<i> (heartbeat 300 ms;
# offline after 3 missed beats). Cases:
#   full_restart  three nodes, two 3-replica volumes (one published, both
#                 written); every engine and weft-control SIGKILLed at once,
#                 then restarted: the same volumes, replicas and publication,
#                 the same data (fio --verify_only, known bytes compared),
#                 nothing extra on the engines
#   partition     a 2-way volume (nexus on node 1, standby path on node 2):
#                 A) nodes 1 and 2 cannot reach each other, both reach the
#                 control plane: the nexus holds writes, the arbiter lets it
#                 go on, fio sees no error; healed, node 2 is rebuilt.
#                 B) node 1 is cut off from node 2 and the control plane
#                 (the client still reaches it): its nexus holds the writes
#                 fio sends it; the control plane switches the nexus over
#                 to node 2, I/O through the new path verifies; healed,
#                 node 1's old nexus is gone, node 1 is the standby path
#                 again and its replica is rebuilt; the replicas' data areas
#                 are identical
#   nexus_killed  three nodes, a 3-replica volume (nexus on n1): node 1's
#                 engine SIGKILLed while fio writes through it: the nexus
#                 switches over to the standby node, what was written
#                 before verifies there, new writes verify; node 1
#                 restarted: the standby path again, its replica rebuilt;
#                 the 3 data areas are identical
#   repair        four nodes, a 3-replica volume on n1-n3 (nexus on n1); the
#                 replica node that holds neither the nexus nor the standby
#                 path SIGKILLed while fio writes and verifies: the volume
#                 degraded; --replace-after (CR_REPLACE_AFTER, 3 s) later a
#                 new replica on n4 (replica-replacing), rebuilt while fio
#                 writes, the old one out of the volume (replica-replaced):
#                 online, 3 replicas, published as before, fio with no
#                 error; the killed node restarted: its orphaned replica
#                 destroyed, its engine holds nothing; what fio wrote
#                 verifies again, the 3 data areas are identical
#   ha            the replicated control plane: a 3-member etcd cluster on
#                 nodes 4-6, weft-control on nodes 4 and 5; the leader's node
#                 dies (weft-control and etcd member SIGKILLed) after 15 of 50
#                 volume creates: the other instance leads within seconds,
#                 all 50 volumes complete, 150 replicas on the engines (none
#                 twice, none leaked), no node offline; the dead node back:
#                 it stands by and reads the same volumes
# fio (libweft_fio.so, in the client namespace) verifies every block it
# wrote (crc32c); each case prints one line per step with the seconds since
# its start, and a failure prints the nexus, fio's, the engines' and the
# control plane's logs. NX_KEEP=DIR keeps the logs (nexus_lib.sh).
set -u
WEFT_ENGINE=$(realpath "$1")
WEFT_CLI=$(realpath "$2")
WEFT_CONTROL=$(realpath "$3")
WEFT_FIO=$(realpath "$4") # fio wants the engine's absolute path
nx_case=$5
here=$(cd "$(dirname "$0")" && pwd)
source "$here/rig.sh"

# Network namespaces need root; ctest counts exit code 77 as skipped.
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null || ! command -v tc >/dev/null; then
  echo "SKIP: the rig needs root, nft and tc (scripts/setup.sh installs nftables)"
  exit 77
fi
for tool in fio jq curl; do
  command -v $tool >/dev/null || { echo "FAIL: no $tool (scripts/setup.sh installs it)"; exit 1; }
done
NX_SIZE_MIB=${NX_SIZE_MIB:-64} # the volumes' size (nexus_lib's fio and hash helpers)
source "$here/nexus_lib.sh"
source "$here/control_rig_lib.sh"

MiB=$((1 << 20))
vol_bytes=$((nx_size_mib * MiB))

# ---- full_restart ----------------------------------------------------------------------
# Three nodes, two 3-replica volumes: v1 published to the client and written
# (fio, then 8 MiB of known random bytes), v2 published, written (known
# bytes), unpublished. Every engine and weft-control are SIGKILLed with one
# kill(1), then started again on their data dirs. Every node comes back
# online; v1 is online, published as before (same node and NQN), its 3
# replicas the same ones; v2 is unpublished with its 3 replicas; the engines
# hold exactly the 6 replicas and v1's nexus; what fio wrote verifies and
# the known bytes read back, v2's once published again.
v1=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9e01
v2=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9e02
w1_args=(--name=w1 --rw=randwrite --bs=16k --size=48m)
pat_lba=$((48 * MiB / nx_bs)) # v1's known bytes: 8 MiB after fio's 48

# read_cmp PUB LBA FILE WHAT: the blocks from LBA on PUB's path hold FILE's bytes.
read_cmp() {
  local pub=$1 lba=$2 file=$3 what=$4
  pub_io read "$pub" --lba "$lba" --blocks $(($(stat -c %s "$file") / nx_bs)) -o "$rig_dir/back.bin"
  [ "$rc" -eq 0 ] || fail "$what: reading through $(jq -r .node <<<"$pub"): $out"
  cmp -s "$file" "$rig_dir/back.bin" ||
    fail "$what: the bytes read back differ from those written (sha256 $(sha256sum <"$rig_dir/back.bin" | cut -c1-16), want $(sha256sum <"$file" | cut -c1-16))"
}

# write_known PUB LBA FILE MIB WHAT: MIB MiB of random bytes into FILE, written at LBA on PUB's path.
write_known() {
  local pub=$1 lba=$2 file=$3 mib=$4 what=$5
  head -c $((mib * MiB)) /dev/urandom >"$file"
  pub_io write "$pub" --lba "$lba" --blocks $((mib * MiB / nx_bs)) --input "$file"
  [ "$rc" -eq 0 ] || fail "$what: writing through $(jq -r .node <<<"$pub"): $out"
  read_cmp "$pub" "$lba" "$file" "$what"
  step "  $what: $mib MiB of known bytes (sha256 $(sha256sum <"$file" | cut -c1-16)) at LBA $lba"
}

# cluster_view: $view, what must survive the restart: the volumes (ids,
# replicas by id, node and pool, the publication's node and NQN) and every
# engine's pool volumes and nexuses.
cluster_view() {
  expect 200 GET /v1/volumes
  view=$(jq -c '[.volumes[] | {id, replicas: ([.replicas[] | {id, node, pool}] | sort_by(.id)),
    published: (.published | if . then {node, nqn, host_nqn} else null end)}] | sort_by(.id)' <<<"$body")
  local i
  for i in 1 2 3; do
    engine_volumes "$i"
    view+=$'\n'"n$i volumes: $(paste -sd, - <<<"$out")"
    engine_nexuses "$i"
    view+=$'\n'"n$i nexuses: $(paste -sd, - <<<"$out")"
  done
}

case_full_restart() {
  cr_init 3
  cr_nodes_up 3 256
  local v
  for v in "$v1" "$v2"; do
    expect 201 PUT "/v1/volumes/$v" "{\"size_bytes\":$vol_bytes,\"replicas\":3}"
    jqe_body "volume $v" '[.replicas[].node] | sort == ["n1","n2","n3"]'
  done
  step "volumes v1 $v1 and v2 $v2: 3 replicas each, on n1, n2, n3"

  # v2: published, written, unpublished.
  expect 200 PUT "/v1/volumes/$v2/publish" "{\"host_nqn\":\"$cr_host\",\"node\":\"n2\"}"
  local pub2=$body
  vol_wait 20 "$v2" "v2 published" '.state == "online"'
  write_known "$pub2" 0 "$rig_dir/v2a.bin" 8 "v2"
  write_known "$pub2" $(((nx_size_mib - 4) * MiB / nx_bs)) "$rig_dir/v2b.bin" 4 "v2's end"
  expect 204 DELETE "/v1/volumes/$v2/publish"
  step "v2 written through n2 and unpublished"

  # v1: published (nexus on n1), written by fio and with known bytes.
  expect 200 PUT "/v1/volumes/$v1/publish" "{\"host_nqn\":\"$cr_host\",\"node\":\"n1\"}"
  local pub1=$body
  jqe_body "v1's publication" '.node == "n1" and .standby.ready'
  vol_wait 20 "$v1" "v1 published" '.state == "online"'
  step "v1 published through n1 ($(jq -r .nqn <<<"$pub1")), standby path on $(jq -r .standby.node <<<"$pub1")"
  fio_run w1 "$(pub_node "$pub1")" "$(jq -r .nqn <<<"$pub1")" "${w1_args[@]}"
  write_known "$pub1" "$pat_lba" "$rig_dir/v1.bin" 8 "v1"
  cluster_view
  local before=$view
  [ "$(grep -c '^n[123] volumes: [^,]*,[^,]*$' <<<"$before")" = 3 ] &&
    grep -q '^n1 nexuses: '"$v1"'$' <<<"$before" &&
    [ "$(grep -c '^n[23] nexuses: $' <<<"$before")" = 2 ] ||
    fail "before the crash, each engine should hold 2 replicas and n1 v1's nexus only: $before"

  # Everything at once, then everything again: weft-control, then the
  # engines in the order CR_RESTART_ORDER (default 1 2 3: v1's nexus node
  # first, before the nodes of its other replicas), each once it listens.
  local pid pids=("${rig_pids[1]}" "${rig_pids[2]}" "${rig_pids[3]}" "$cr_pid")
  {
    kill -KILL "${pids[@]}"
    for pid in "${pids[@]}"; do _rig_reap "$pid" 10 || fail "pid $pid survives SIGKILL"; done
  } 2>/dev/null
  step "the 3 engines and weft-control SIGKILLed at once"
  local t0=$SECONDS t0_ms i order=${CR_RESTART_ORDER:-1 2 3}
  t0_ms=$(date +%s%3N)
  cr_start_control
  for i in $order; do rig_restart_engine "$i" || fail "restart node $i's engine"; done
  step "weft-control and the 3 engines restarted on their data dirs (nodes $order)"
  rig_wait 30 nodes_beat_since "$t0_ms" 3 || fail "3 nodes beating again after the restart: $body"
  step "  3 nodes online, beating again ($((SECONDS - t0)) s after the restart)"
  if ! rig_wait 30 vol_is "$v1" '.state == "online" and .nexus.state == "online" and
      (.replicas | length) == 3 and all(.replicas[]; .state == "online")'; then
    cli 1 nexus list --json
    fail "v1 after the restart: not online with 3 replicas online 30 s after the restart: $(
      jq -c '{state, nexus, replicas}' <<<"$body"); n1's nexuses: $(jq -c . <<<"$out")"
  fi
  step "  v1 online, nexus generation $(jq -r .nexus.generation <<<"$body") ($((SECONDS - t0)) s after the restart)"
  vol_wait 30 "$v2" "v2 after the restart" \
    '.state == "online" and .published == null and (.replicas | length) == 3'
  expect 200 GET /v1/pools
  jqe_body "the pools after the restart" '[.pools[] | select(.state == "online")] | length == 3'

  # The same volumes, replicas, publication; nothing extra on the engines.
  cluster_view
  [ "$view" = "$before" ] || fail "the cluster is not what it was before the crash:
--- before
$before
--- after
$view"
  step "  the same 2 volumes, replica ids, publication; the engines hold the same replicas and nexus"
  vol_is "$v1" true
  pub1=$(jq -c .published <<<"$body")
  # The standby path as the publication says: the NQN, no namespace.
  pub_io identify "$(jq -c '{address: .standby.address, port: .standby.port, nqn}' <<<"$pub1")"
  if [ "$rc" -ne 0 ] || ! jq -e '.standby.ready' <<<"$pub1" >/dev/null ||
    grep -qw "$((vol_bytes / nx_bs))" <<<"$out"; then
    wrong "v1's standby path on $(jq -r .standby.node <<<"$pub1") after the restart (ready, the NQN, no namespace): $pub1; identify: $out"
  fi

  # The data.
  fio_run w1-verify "$(pub_node "$pub1")" "$(jq -r .nqn <<<"$pub1")" "${w1_args[@]}" --verify_only=1
  read_cmp "$pub1" "$pat_lba" "$rig_dir/v1.bin" "v1's known bytes after the restart"
  step "  v1's known bytes read back"
  expect 200 PUT "/v1/volumes/$v2/publish" "{\"host_nqn\":\"$cr_host\",\"node\":\"n3\"}"
  pub2=$body
  vol_wait 20 "$v2" "v2 published again" '.state == "online"'
  read_cmp "$pub2" 0 "$rig_dir/v2a.bin" "v2's known bytes after the restart"
  read_cmp "$pub2" $(((nx_size_mib - 4) * MiB / nx_bs)) "$rig_dir/v2b.bin" "v2's end after the restart"
  step "  v2 published again (through n3): its known bytes read back"
  expect 204 DELETE "/v1/volumes/$v2/publish"
  expect 200 GET /v1/volumes
  jqe_body "the volumes at the end" '(.volumes | length) == 2'
}

# ---- partition -------------------------------------------------------------------------
# Two nodes; a 2-replica volume (one replica on each), published with its
# nexus on node 1 and the standby path on node 2.
# A: nodes 1 and 2 drop each other's packets (both still reach the control
#    plane) while fio writes: the nexus cannot retire node 2's child on a
#    majority of two and holds writes; the control plane, as arbiter, lets
#    it go on (event arbiter-allowed, arbiter_generation); fio sees no
#    error. Healed: node 2's child is rebuilt (partially), the volume online.
# B: node 1 is cut off from node 2 and from the control plane while fio
#    (job "old") writes through it (the client still reaches node 1): its
#    nexus cannot retire node 2's child on a majority and holds the writes
#    (waiting), and nobody answers it (its node does not reach the control
#    plane, and it is not the published nexus any more): the control plane
#    sees node 1 offline and switches the nexus over to node 2
#    (nexus-switched-over). Through node 2: what was acknowledged before
#    verifies, job B writes over job old's area and verifies. Healed: node
#    1's old nexus is gone (standby-restored) and its path serves no
#    namespace, node 1's replica is added back and rebuilt (replica-readded),
#    the volume online; job B still verifies (the old nexus's held writes
#    landed nowhere). At the end the nexus is unpublished and both replicas'
#    data areas hash equal, their labels clean, in sync, at one generation.
pv=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9e03
pre_args=(--name=pre --rw=randwrite --offset=32m --size=16m)
b_args=(--name=B --rw=randwrite --offset=16m --size=16m)
once_args=(--name=once --rw=randwrite --offset=0 --size=$((nx_hot_mib / 2))m)

# child_uri URI_PREFIX: $child, the URI of the nexus's child that starts
# with URI_PREFIX ($out: the nexus, JSON).
child_uri() {
  child=$(jq -r --arg p "$1" '[.children[].uri | select(startswith($p))][0] // empty' <<<"$out")
  [ -n "$child" ] || fail "no child $1... in the nexus: $out"
}

case_partition() {
  cr_init 2
  cr_nodes_up 2 256
  expect 201 PUT "/v1/volumes/$pv" "{\"size_bytes\":$vol_bytes,\"replicas\":2}"
  jqe_body "the volume's replicas" '[.replicas[].node] | sort == ["n1","n2"]'
  local -A rid rpool
  local i
  for i in 1 2; do
    rid[$i]=$(jq -r --arg n "n$i" '.replicas[] | select(.node == $n) | .id' <<<"$body")
    rpool[$i]=$(jq -r --arg n "n$i" '.replicas[] | select(.node == $n) | .pool' <<<"$body")
  done
  expect 200 PUT "/v1/volumes/$pv/publish" "{\"host_nqn\":\"$cr_host\",\"node\":\"n1\"}"
  local pub=$body nqn
  nqn=$(jq -r .nqn <<<"$pub")
  jqe_body "the publication" '.node == "n1" and .standby.node == "n2" and .standby.ready'
  vol_wait 20 "$pv" "the volume published" '.state == "online"'
  nx_uuid=$pv
  nx_node=1
  nx_nqn=$nqn
  nx_get
  child_uri "nvmf://$(rig_ip 2):"
  local uri2=$child
  step "volume $pv: replicas ${rid[1]} on n1, ${rid[2]} on n2; nexus on n1, standby path on n2"
  fio_run fill 1 "$nqn" "${fio_fill_args[@]}"

  # ---- A: nodes 1 and 2 cut off from each other, not from the control plane.
  local seq_a
  last_seq
  seq_a=$seq
  nx_hot_start 20 nofill
  rig_drop 1 2 && rig_drop 2 1 || fail "rig_drop 1 2; rig_drop 2 1"
  step "A: nodes 1 and 2 cut off from each other (both reach weft-control)"
  event_wait 25 "$seq_a" arbiter-allowed "the arbiter letting node 1's nexus go on"
  vol_is "$pv" true
  jqe_body "the volume after the arbiter's yes" \
    '.published.node == "n1" and .published.arbiter_generation > 0 and .nexus.state == "degraded"'
  step "  arbiter_generation $(jq -r .published.arbiter_generation <<<"$body"), nexus degraded; replicas $(jq -c '[.replicas[] | {node, state}]' <<<"$body")"
  grep -q "nexus ${pv:0:8}: the arbiter allows going on without a majority" "$rig_dir/n1.log" ||
    fail "node 1's log does not say the arbiter let its nexus go on"
  node_state n1 online && node_state n2 online ||
    fail "both nodes reach the control plane: both should be online: $body"
  sleep 3
  event_since "$seq_a" nexus-switched-over &&
    fail "the volume was switched over while node 1 answered the control plane: $body"
  nx_get
  jqe "node 1's nexus while cut off from node 2" \
    '.state == "degraded" and any(.children[]; .uri == $u and .state == "faulted")' --arg u "$uri2"
  rig_undrop 1 && rig_undrop 2 || fail "rig_undrop"
  step "A: healed"
  nx_wait_all_online 40 "node 2's child coming back"
  nx_check_rebuild "$uri2" partial $((2 * nx_hot_mib * MiB))
  vol_wait 10 "$pv" "the volume after A" '.state == "online"'
  fio_wait hot "$hot_pid"

  # ---- B: node 1 cut off from node 2 and the control plane, not from the client.
  local seq_b
  last_seq
  seq_b=$seq
  fio_run pre 1 "$nqn" "${pre_args[@]}"
  FIO_LIMIT=90 fio_start old 1 "$nqn" --name=old --rw=randwrite --offset=16m --size=16m \
    --time_based=1 --runtime=80
  local old_pid=$fio_pid
  sleep 2
  rig_drop 1 2 && rig_drop 1 "$cr_node" || fail "rig_drop 1 2; rig_drop 1 $cr_node"
  step "B: node 1 cut off from node 2 and from weft-control (the client still reaches it)"
  nx_wait 15 "node 1's nexus, cut off from its other child, with fio writing" '.state == "waiting"'
  step "  node 1's nexus holds writes: $(jq -r .waiting <<<"$out")"
  rig_wait 10 node_state n1 offline || fail "the control plane should see node 1 offline: $body"
  event_wait 20 "$seq_b" nexus-switched-over "the switchover to node 2"
  vol_wait 10 "$pv" "the volume after the switchover" \
    '.published.node == "n2" and .published.standby.node == "n1" and (.published.standby.ready | not)
     and .nexus.node == "n2"'
  pub=$(jq -c .published <<<"$body")
  [ "$(jq -r .nqn <<<"$pub")" = "$nqn" ] || fail "the NQN changed in the switchover: $pub"
  step "  the nexus on n2 ($(jq -r .address <<<"$pub"):$(jq -r .port <<<"$pub")), volume $(jq -r .state <<<"$body")"
  fio_run pre-verify 2 "$nqn" "${pre_args[@]}" --verify_only=1
  fio_run once-verify 2 "$nqn" "${once_args[@]}" --verify_only=1
  fio_run B 2 "$nqn" "${b_args[@]}"
  # All along, nobody let node 1's nexus go on.
  nx_get 1
  jqe "node 1's old nexus while cut off, after the switchover" '.state == "waiting"'
  event_since "$seq_b" arbiter-allowed &&
    fail "the arbiter answered a nexus after the switchover: $(jq -c '.events' <<<"$body")"
  step "  node 1's old nexus still holds its writes"

  # Heal: node 1's old nexus goes, node 1 is the standby path again, its replica rebuilt.
  rig_undrop 1 || fail "rig_undrop 1"
  step "B: healed"
  event_wait 20 "$seq_b" standby-restored "node 1 back as the standby path"
  event_wait 30 "$seq_b" replica-readded "node 1's replica added back"
  vol_wait 60 "$pv" "the volume after B" \
    '.state == "online" and .published.node == "n2" and .published.standby.node == "n1" and
     .published.standby.ready and (.replicas | length) == 2 and all(.replicas[]; .state == "online")'
  pub=$(jq -c .published <<<"$body")
  step "  volume online through n2, standby n1, both replicas online"
  engine_nexuses 1
  [ -z "$out" ] || fail "node 1 should hold no nexus after the standby was restored: $out"
  engine_nexuses 2
  [ "$out" = "$pv" ] || fail "node 2 should hold the volume's nexus only: $out"
  pub_io identify "$(jq -c '{address: .standby.address, port: .standby.port, nqn: .nqn}' <<<"$pub")"
  [ "$rc" -eq 0 ] || fail "identify on node 1's standby path: $out"
  grep -qw "$((vol_bytes / nx_bs))" <<<"$out" &&
    fail "node 1's path serves the namespace after the switchover: $out"
  step "  node 1: no nexus, its path serves no namespace"
  nx_node=2
  nx_get
  child_uri "nvmf://$(rig_ip 1):"
  nx_check_rebuild "$child" full "$vol_bytes"
  fio_stop "$old_pid"
  step "  job old stopped (its writes were held by node 1's old nexus: not part of the claim)"
  fio_run B-verify 2 "$nqn" "${b_args[@]}" --verify_only=1
  fio_run pre-verify2 2 "$nqn" "${pre_args[@]}" --verify_only=1

  # The end: unpublished (the nexus closes cleanly), the replicas compared.
  expect 204 DELETE "/v1/volumes/$pv/publish"
  local h1 h2 gen=
  replica_hash 1 "${rpool[1]}" "${rid[1]}" "$vol_bytes"
  h1=$hash
  replica_hash 2 "${rpool[2]}" "${rid[2]}" "$vol_bytes"
  h2=$hash
  step "data areas: n1 ${h1:0:16} n2 ${h2:0:16}"
  [ "$h1" = "$h2" ] || fail "the replicas' data areas differ: n1 $h1, n2 $h2"
  for i in 1 2; do
    ok "$i" nexus label "pool://${rpool[$i]}/${rid[$i]}" --json
    jqe "the label of n$i's replica after unpublish" \
      '.present and .nexus_uuid == $u and .clean and (.members | length) == 2 and
       all(.members[]; .state == "in-sync")' --arg u "$pv"
    [ -z "$gen" ] || [ "$gen" = "$(jq -r .generation <<<"$out")" ] ||
      fail "the replicas' labels are at generations $gen and $(jq -r .generation <<<"$out")"
    gen=$(jq -r .generation <<<"$out")
  done
  step "labels: clean, 2 members in sync, generation $gen on both"
}

# ---- repair ----------------------------------------------------------------------------
# Four nodes; a 3-replica volume on n1, n2, n3 (n4's pool is declared only
# after the volume, so that n4 is the one spare node), published with its
# nexus on n1; weft-control with --replace-after CR_REPLACE_AFTER (3 s) and
# the lib's reconcile interval (0.5 s). fio fills the volume beyond its hot
# area, then the hot jobs write and verify for 20 s; 3 s in, the node that
# holds a replica but neither the nexus nor the standby path is SIGKILLed.
# The volume shows degraded; replace-after seconds after the node's last
# beat the reconciler places a new replica on n4 (replica-replacing), the
# nexus rebuilds it (full) while fio writes, and the old one leaves the
# nexus and the volume (replica-replaced):
# the volume online with 3 replicas on n1, the survivor and n4, published as
# before. fio ends with no error. The killed node restarted: its replica, an
# orphan now, is destroyed (replica-destroyed; its engine holds no volume),
# and it does not come back into the volume. What fio wrote verifies again
# (--verify_only); unpublished, the 3 replicas' data areas hash equal, their
# labels are clean, 3 members in sync, at one generation; deleted, nothing
# is left on the engines.
rv=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9e04
rp_after=${CR_REPLACE_AFTER:-3}
rp_fill_args=(--name=fill --rw=write --bs=1m --offset=${nx_hot_mib}m --size=$((nx_size_mib - nx_hot_mib))m)

# event_time KIND: $etime, the Unix ms of the first event KIND in $body (the events).
event_time() {
  etime=$(jq -r --arg k "$1" '[.events[] | select(.kind == $k)][0].time_ms' <<<"$body")
}

case_repair() {
  cr_control_flags+=(--replace-after "$rp_after") # reconcile interval 0.5 s: the lib's
  cr_init 4
  cr_nodes_up 3 256
  cr_start_engine 4
  rig_wait 20 nodes_online 4 || fail "4 nodes online within 20 s: $body"
  expect 201 PUT "/v1/volumes/$rv" "{\"size_bytes\":$vol_bytes,\"replicas\":3}"
  jqe_body "the volume's replicas" '[.replicas[].node] | sort == ["n1","n2","n3"]'
  local -A rid rpool
  local i
  for i in 1 2 3; do
    rid[$i]=$(jq -r --arg n "n$i" '.replicas[] | select(.node == $n) | .id' <<<"$body")
    rpool[$i]=$(jq -r --arg n "n$i" '.replicas[] | select(.node == $n) | .pool' <<<"$body")
  done
  expect 201 PUT /v1/pools/p4 "{\"node\":\"n4\",\"disk\":\"$rig_dir/n4/pool.img\",\"size\":$((256 * MiB))}"
  jqe_body "pool p4" '.state == "online"'
  step "4 nodes; volume $rv: replicas on n1, n2, n3; then pool p4 on n4 (the spare)"

  expect 200 PUT "/v1/volumes/$rv/publish" "{\"host_nqn\":\"$cr_host\",\"node\":\"n1\"}"
  local pub=$body nqn sb victim keep
  nqn=$(jq -r .nqn <<<"$pub")
  jqe_body "the publication" '.node == "n1" and .standby.ready and
    (.standby.node == "n2" or .standby.node == "n3")'
  sb=$(jq -r '.standby.node | ltrimstr("n")' <<<"$pub")
  victim=$((5 - sb)) # n2 or n3: the one that is not the standby
  keep=$sb
  vol_wait 20 "$rv" "the volume published" '.state == "online"'
  nx_uuid=$rv
  nx_node=1
  nx_nqn=$nqn
  step "published: nexus on n1, standby path on n$sb; the victim: n$victim (replica ${rid[$victim]})"
  fio_run fill 1 "$nqn" "${rp_fill_args[@]}"

  # fio writes and verifies; a replica node dies.
  local seq0 kill_ms
  last_seq
  seq0=$seq
  FIO_LIMIT=90 fio_start hot 1 "$nqn" $(fio_hot_args 20)
  local hot_pid=$fio_pid
  sleep 3
  kill_ms=$(date +%s%3N)
  rig_kill "$victim" || fail "rig_kill $victim"
  step "node $victim's engine SIGKILLed while fio writes (hot jobs, 20 s)"
  vol_wait 10 "$rv" "the volume with node $victim gone" '.state == "degraded"'
  step "  volume degraded: replicas $(jq -c '[.replicas[] | {node, state}]' <<<"$body")"
  rig_wait 10 node_state "n$victim" offline || fail "node $victim should be offline: $body"
  step "  node n$victim offline"

  # The replacement.
  event_wait $((rp_after + 20)) "$seq0" replica-replacing "a replacement for node $victim's replica"
  local msg new_id
  msg=$(jq -r '[.events[] | select(.kind == "replica-replacing")][0].message' <<<"$body")
  event_time replica-replacing
  step "  $(((etime - kill_ms))) ms after the kill (--replace-after $rp_after s, counted from the node's last beat)"
  # The node's last beat was at most one heartbeat (300 ms) before the kill.
  [ "$etime" -ge $((kill_ms + rp_after * 1000 - 400)) ] ||
    wrong "the replacement started $((etime - kill_ms)) ms after the kill, before --replace-after $rp_after s"
  grep -q "replica ${rid[$victim]} on node n$victim .* on node n4 is being rebuilt" <<<"$msg" ||
    fail "replica-replacing should name node $victim's replica and n4: $msg"
  event_wait 60 "$seq0" replica-replaced "node $victim's replica replaced"
  event_time replica-replaced
  # The rebuild took writes: fio was still writing when the replacement was in sync.
  _rig_alive "$hot_pid" ||
    fail "fio's hot jobs ended before the replacement was in sync: the rebuild took no writes (CR_REPLACE_AFTER too long?)"
  step "  $(((etime - kill_ms))) ms after the kill, fio still writing"
  vol_wait 20 "$rv" "the volume after the replacement" \
    '.state == "online" and (.replicas | length) == 3 and
     all(.replicas[]; .state == "online" and (.replaces // null) == null)'
  jqe_body "the replicas after the replacement" \
    '[.replicas[].node] | sort == ([$a, $b, "n4"] | sort)' --arg a n1 --arg b "n$keep"
  jqe_body "the surviving replicas" \
    '([.replicas[] | select(.node != "n4") | .id] | sort) == ([$a, $b] | sort)' \
    --arg a "${rid[1]}" --arg b "${rid[$keep]}"
  new_id=$(jq -r '.replicas[] | select(.node == "n4") | .id' <<<"$body")
  jqe_body "the new replica" '.replicas[] | select(.node == "n4") | .pool == "p4"'
  grep -q "$new_id" <<<"$msg" || fail "the new replica $new_id is not the one replica-replacing named: $msg"
  jqe_body "the publication after the replacement" \
    '.published.node == "n1" and .published.nqn == $q and .published.standby.node == $s and
     .published.standby.ready' --arg q "$nqn" --arg s "n$sb"
  rid[4]=$new_id
  rpool[4]=p4
  step "  volume online: replicas ${rid[1]:0:8} (n1), ${rid[$keep]:0:8} (n$keep), $new_id (n4); published as before"
  nx_get
  jqe "the nexus after the replacement" "$nx_all_online"' and (.children | length) == 3 and
    all(.children[]; .uri | contains($v) | not)' --arg v "${rid[$victim]}"
  child_uri "nvmf://$(rig_ip 4):"
  [[ $child == *"$new_id"* ]] || fail "n4's child in the nexus is not replica $new_id: $child"
  nx_check_rebuild "$child" full "$vol_bytes"
  fio_wait hot "$hot_pid"

  # The engines hold the volume's replicas and nothing else.
  for i in 1 "$keep" 4; do
    engine_volumes "$i"
    [ "$out" = "${rid[$i]}" ] || fail "node $i should hold replica ${rid[$i]} only: $(paste -sd' ' - <<<"$out")"
  done

  # The killed node comes back: its replica (an orphan) is destroyed.
  local seq1
  last_seq
  seq1=$seq
  rig_restart_engine "$victim" || fail "restart node $victim's engine"
  rig_wait 15 node_state "n$victim" online || fail "node $victim online again: $body"
  step "node $victim's engine restarted, online"
  event_wait 15 "$seq1" replica-destroyed "node $victim's orphaned replica destroyed"
  grep -q "${rid[$victim]}" <<<"$(jq -r '[.events[] | select(.kind == "replica-destroyed")][0].message' <<<"$body")" ||
    fail "replica-destroyed does not name ${rid[$victim]}: $(jq -c .events <<<"$body")"
  engine_volumes "$victim"
  [ -z "$out" ] || fail "node $victim should hold no volume after its orphan was destroyed: $out"
  engine_nexuses "$victim"
  [ -z "$out" ] || fail "node $victim should hold no nexus: $out"
  step "  node $victim's engine holds no volume"
  sleep 2 # a few reconcile passes with node $victim back
  vol_is "$rv" true
  jqe_body "the volume with node $victim back" \
    '.state == "online" and ([.replicas[].id] | sort) == ([$a, $b, $c] | sort) and .published.node == "n1"' \
    --arg a "${rid[1]}" --arg b "${rid[$keep]}" --arg c "$new_id"
  event_since "$seq1" replica-readded && fail "node $victim's replica was added back: $(jq -c .events <<<"$body")"
  event_since "$seq1" replica-replacing && fail "another replacement started: $(jq -c .events <<<"$body")"

  # What fio wrote verifies again; the replicas' data areas are equal.
  fio_run fill-verify 1 "$nqn" "${rp_fill_args[@]}" --verify_only=1
  fio_run once-verify 1 "$nqn" "${once_args[@]}" --verify_only=1
  expect 204 DELETE "/v1/volumes/$rv/publish"
  local h=() line= gen=
  for i in 1 "$keep" 4; do
    replica_hash "$i" "${rpool[$i]}" "${rid[$i]}" "$vol_bytes"
    h[i]=$hash
    line+=" n$i ${hash:0:16}"
  done
  step "data areas:$line"
  [ "${h[1]}" = "${h[$keep]}" ] && [ "${h[1]}" = "${h[4]}" ] || fail "the replicas' data areas differ:$line"
  for i in 1 "$keep" 4; do
    ok "$i" nexus label "pool://${rpool[$i]}/${rid[$i]}" --json
    jqe "the label of n$i's replica after unpublish" \
      '.present and .nexus_uuid == $u and .clean and (.members | length) == 3 and
       all(.members[]; .state == "in-sync")' --arg u "$rv"
    [ -z "$gen" ] || [ "$gen" = "$(jq -r .generation <<<"$out")" ] ||
      fail "the replicas' labels are at generations $gen and $(jq -r .generation <<<"$out")"
    gen=$(jq -r .generation <<<"$out")
  done
  step "labels: clean, 3 members in sync, generation $gen on each"
  expect 204 DELETE "/v1/volumes/$rv"
  for i in 1 2 3 4; do
    engine_volumes "$i"
    [ -z "$out" ] || fail "node $i holds volumes after the delete: $out"
  done
  step "volume deleted: nothing left on the engines"
}

# ---- nexus_killed ----------------------------------------------------------------------
# Three nodes; a 3-replica volume published with its nexus on node 1. Job
# pre writes and verifies through node 1; job old writes through it when
# node 1's engine is SIGKILLed (old is cut short: fio's engine has no second
# path, a kernel host with multipath does: interop.switchover). The control
# plane sees node 1 offline and switches the nexus over to the standby node
# (a majority of the replicas answers: no waiver needed); through it what
# pre wrote verifies and job B writes and verifies. Node 1 restarted: its old
# nexus goes (standby-restored), its replica is added back and rebuilt
# (replica-readded), the volume online with its 3 replicas; B verifies
# again; unpublished, the three data areas hash equal.
kv=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9e04

case_nexus_killed() {
  cr_init 3
  cr_nodes_up 3 256
  expect 201 PUT "/v1/volumes/$kv" "{\"size_bytes\":$vol_bytes,\"replicas\":3}"
  local -A rid rpool
  local i
  for i in 1 2 3; do
    rid[$i]=$(jq -r --arg n "n$i" '.replicas[] | select(.node == $n) | .id' <<<"$body")
    rpool[$i]=$(jq -r --arg n "n$i" '.replicas[] | select(.node == $n) | .pool' <<<"$body")
  done
  expect 200 PUT "/v1/volumes/$kv/publish" "{\"host_nqn\":\"$cr_host\",\"node\":\"n1\"}"
  local pub=$body nqn sb
  nqn=$(jq -r .nqn <<<"$pub")
  sb=$(jq -r '.standby.node | ltrimstr("n")' <<<"$pub")
  [ -n "$sb" ] && [ "$sb" != 1 ] || fail "no standby path: $pub"
  vol_wait 20 "$kv" "the volume published" '.state == "online"'
  step "volume $kv: 3 replicas; nexus on n1, standby path on n$sb"
  fio_run pre 1 "$nqn" "${pre_args[@]}"
  local seq_k
  last_seq
  seq_k=$seq
  FIO_LIMIT=90 fio_start old 1 "$nqn" --name=old --rw=randwrite --offset=16m --size=16m \
    --time_based=1 --runtime=80
  local old_pid=$fio_pid
  sleep 2
  rig_kill 1 || fail "rig_kill 1"
  local t_kill=$SECONDS
  step "node 1's engine (the nexus) SIGKILLed while job old writes"
  event_wait 30 "$seq_k" nexus-switched-over "the switchover to node $sb"
  step "  switched over $((SECONDS - t_kill)) s after the kill"
  vol_wait 10 "$kv" "the volume after the switchover" \
    ".published.node == \"n$sb\" and .published.standby.node == \"n1\" and .nexus.node == \"n$sb\""
  pub=$(jq -c .published <<<"$body")
  [ "$(jq -r .nqn <<<"$pub")" = "$nqn" ] || fail "the NQN changed in the switchover: $pub"
  fio_stop "$old_pid"
  step "  job old stopped (its connection went with node 1)"
  fio_run pre-verify "$sb" "$nqn" "${pre_args[@]}" --verify_only=1
  fio_run B "$sb" "$nqn" "${b_args[@]}"
  step "  through node $sb: what pre wrote verifies, job B written and verified"

  rig_restart_engine 1 || fail "restart node 1's engine"
  step "node 1's engine restarted"
  event_wait 30 "$seq_k" standby-restored "node 1 back as the standby path"
  event_wait 30 "$seq_k" replica-readded "node 1's replica added back"
  vol_wait 60 "$kv" "the volume after node 1 came back" \
    ".state == \"online\" and .published.node == \"n$sb\" and .published.standby.node == \"n1\" and
     .published.standby.ready and (.replicas | length) == 3 and all(.replicas[]; .state == \"online\")"
  step "  volume online through n$sb, standby n1, 3 replicas online"
  engine_nexuses 1
  [ -z "$out" ] || fail "node 1 should hold no nexus after the standby was restored: $out"
  fio_run B-verify "$sb" "$nqn" "${b_args[@]}" --verify_only=1
  fio_run pre-verify2 "$sb" "$nqn" "${pre_args[@]}" --verify_only=1

  expect 204 DELETE "/v1/volumes/$kv/publish"
  local h line=
  declare -A hs
  for i in 1 2 3; do
    replica_hash "$i" "${rpool[$i]}" "${rid[$i]}" "$vol_bytes"
    hs[$i]=$hash
    line+=" n$i ${hash:0:16}"
  done
  step "data areas:$line"
  [ "${hs[1]}" = "${hs[2]}" ] && [ "${hs[2]}" = "${hs[3]}" ] || fail "the replicas' data areas differ:$line"
}

# ---- ha ------------------------------------------------------------------------------
# The replicated control plane on the rig: nodes 4, 5 and 6 each run a
# member of one etcd cluster (v3, on the rig's network), nodes 4 and 5 a
# weft-control instance on it (--store etcd, lease 2 s); the engines of
# nodes 1-3 heartbeat to both. The client creates 50 3-replica volumes, one
# after another, with `weft volume create --control A,B` (each retried with
# its id until it succeeds); once 15 are acknowledged the leader's node
# dies: its weft-control and its etcd member SIGKILLed together (etcd keeps
# a quorum of two). The survivor leads within a few seconds and the creates
# go on through it. Every one of the 50 volumes is complete (3 replicas on 3
# nodes, ready), every acknowledged one is there, the engines hold exactly
# 150 replica volumes (none made twice, none leaked), no node went offline
# during the hand-over. The dead node restarted (etcd member and
# weft-control): it stands by and reads the same 50 volumes.
ha_n=50
ha_kill_after=15

ha_leads() {  # ha_leads I: node I's weft-control says it leads
  rig_client curl -sf --max-time 2 "${ha_url[$1]}/v1/status" | jq -e .leader >/dev/null
}
ha_one_leader() {
  local n=0
  ha_leads 4 && n=$((n + 1))
  ha_leads 5 && n=$((n + 1))
  [ $n = 1 ]
}
ha_etcd_healthy() {  # ha_etcd_healthy I: node I's etcd member answers healthy
  rig_client curl -sf --max-time 2 "http://$(rig_ip "$1"):2379/health" | grep -q '"health":"true"'
}
# ha_start_etcd I STATE: node I's etcd member (STATE: new, existing).
ha_start_etcd() {
  local i=$1 ip
  ip=$(rig_ip "$i")
  ip netns exec "$(rig_ns "$i")" etcd --name "e$i" --data-dir "$rig_dir/etcd$i" \
    --listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
    --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
    --initial-cluster "$ha_initial" --initial-cluster-state "$2" --initial-cluster-token "weft-rig-$rig_id" \
    --logger zap --log-level error >>"$rig_dir/etcd$i.log" 2>&1 </dev/null &
  ha_epid[i]=$!
}
# ha_start_control I: node I's weft-control on the etcd cluster.
ha_start_control() {
  local i=$1
  echo "=== starting weft-control ($(date +%T.%N | cut -c1-12))" >>"$rig_dir/control$i.log"
  ip netns exec "$(rig_ns "$i")" "$WEFT_CONTROL" --listen "$(rig_ip "$i"):$cr_port" \
    --store "etcd:$ha_endpoints" --etcd-prefix /weft/ --lease 2 "${cr_control_flags[@]}" \
    >>"$rig_dir/control$i.log" 2>&1 </dev/null &
  ha_cpid[i]=$!
  local t
  for t in $(seq 200); do
    rig_client curl -sf --max-time 2 "${ha_url[$i]}/v1/status" >/dev/null && return 0
    _rig_alive "${ha_cpid[$i]}" || fail "weft-control on node $i exited"
    sleep 0.1
  done
  fail "weft-control on node $i does not answer after 20 s"
}
# ha_create ID: `weft volume create` of ID through both instances, retried
# with the same id until it succeeds or 40 s pass.
ha_create() {
  local t=$SECONDS
  while [ $((SECONDS - t)) -lt 40 ]; do
    rig_client "$WEFT_CLI" volume create --id "$1" --size 4MiB --replicas 3 --control "$ha_both" \
      --timeout 20 >/dev/null 2>>"$rig_dir/cli.log" && return 0
    sleep 0.2
  done
  return 1
}
ha_acked_at_least() { [ "$(wc -l <"$rig_dir/acked")" -ge "$1" ]; }

case_ha() {
  command -v etcd >/dev/null || fail "no etcd binary: run scripts/setup.sh (Debian's etcd-server)"
  rig_init 6 || fail "rig_init 6"
  ha_url=() ha_cpid=() ha_epid=()
  local i
  ha_initial= ha_endpoints=
  for i in 4 5 6; do
    ha_initial+="${ha_initial:+,}e$i=http://$(rig_ip "$i"):2380"
    ha_endpoints+="${ha_endpoints:+,}http://$(rig_ip "$i"):2379"
  done
  for i in 4 5 6; do ha_start_etcd "$i" new; done
  for i in 4 5 6; do rig_wait 30 ha_etcd_healthy "$i" || fail "etcd member on node $i not healthy after 30 s"; done
  step "etcd: 3 members on nodes 4, 5, 6"
  for i in 4 5; do
    ha_url[$i]=http://$(rig_ip "$i"):$cr_port
    ha_start_control "$i"
  done
  ha_both="${ha_url[4]},${ha_url[5]}"
  rig_wait 20 ha_one_leader || fail "not exactly one leader of the two instances after 20 s"
  local leader standby
  if ha_leads 4; then leader=4 standby=5; else leader=5 standby=4; fi
  step "weft-control on nodes 4 and 5: node $leader leads"
  # The shared helpers talk to the standby: it serves reads and forwards writes.
  cr_url=${ha_url[$standby]} cr_pid=${ha_cpid[$standby]} cr_engine_control=$ha_both
  cr_nodes_up 3 256

  local ids=() k
  for k in $(seq "$ha_n"); do ids+=("$(printf '7e1d0000-0000-4000-8000-%012d' "$k")"); done
  : >"$rig_dir/acked"
  (
    for id in "${ids[@]}"; do
      ha_create "$id" || { echo "FAILED $id" >>"$rig_dir/acked"; exit 1; }
      echo "$id" >>"$rig_dir/acked"
    done
  ) &
  local creator=$!
  rig_wait 120 ha_acked_at_least "$ha_kill_after" || fail "$ha_kill_after creates not acknowledged within 120 s"
  kill -KILL "${ha_cpid[$leader]}" "${ha_epid[$leader]}"
  local t0
  t0=$(date +%s.%N)
  step "after $(wc -l <"$rig_dir/acked") acknowledged creates: node $leader (the leader) dies: its weft-control and etcd member SIGKILLed"
  rig_wait 20 ha_leads "$standby" || fail "node $standby's instance does not lead 20 s after the kill"
  step "  node $standby leads $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s after the kill (lease 2 s)"
  wait "$creator" || fail "the creates did not all succeed: $(grep FAILED "$rig_dir/acked"); cli: $(tail -5 "$rig_dir/cli.log")"
  local acked
  mapfile -t acked <"$rig_dir/acked"
  [ "${#acked[@]}" = "$ha_n" ] || fail "${#acked[@]} creates acknowledged, want $ha_n"
  step "  all $ha_n creates acknowledged"

  req GET "/v1/events?limit=1000"
  local flaps
  flaps=$(jq '[.events[] | select(.kind == "node-online")] | length' <<<"$body")
  [ "$flaps" = 0 ] || fail "$flaps node(s) went offline during the hand-over (node-online events): $(jq -c "[.events[] | select(.kind == \"node-online\")]" <<<"$body")"
  if grep -q "507\|offline" "$rig_dir/cli.log"; then
    fail "creates were refused for want of nodes during the hand-over: $(grep -m3 "507\|offline" "$rig_dir/cli.log")"
  fi
  expect 200 GET /v1/volumes
  [ "$(jq '.volumes | length' <<<"$body")" = "$ha_n" ] || fail "$(jq '.volumes | length' <<<"$body") volumes, want $ha_n"
  local id
  for id in "${acked[@]}"; do
    jq -e --arg id "$id" '.volumes[] | select(.id == $id) |
      (.replicas | length == 3) and ([.replicas[].node] | unique | length == 3)' <<<"$body" >/dev/null ||
      fail "volume $id was acknowledged but is not there with 3 replicas on 3 nodes"
  done
  jqe_body "every volume ready" 'all(.volumes[]; .phase == null or .phase == "ready")'
  local view total=0 n
  view=$(jq -c '[.volumes[] | {id, replicas: ([.replicas[].id] | sort)}] | sort_by(.id)' <<<"$body")
  for i in 1 2 3; do
    engine_volumes "$i"
    n=$(grep -c . <<<"$out")
    total=$((total + n))
  done
  [ "$total" = $((3 * ha_n)) ] || fail "the engines hold $total replica volumes, want $((3 * ha_n))"
  step "  $ha_n volumes complete (3 replicas on 3 nodes, ready), $total replica volumes on the engines, no node offline"

  ha_start_etcd "$leader" existing
  rig_wait 30 ha_etcd_healthy "$leader" || fail "node $leader's etcd member not healthy after its restart"
  ha_start_control "$leader"
  sleep 3  # two leases: had it taken the lead, it would show by now
  ha_leads "$leader" && fail "the restarted instance on node $leader took the lead from node $standby"
  ha_leads "$standby" || fail "node $standby no longer leads after node $leader came back"
  cr_url=${ha_url[$leader]} cr_pid=${ha_cpid[$leader]}
  expect 200 GET /v1/volumes
  [ "$(jq -c '[.volumes[] | {id, replicas: ([.replicas[].id] | sort)}] | sort_by(.id)' <<<"$body")" = "$view" ] ||
    fail "the restarted instance reads other volumes than the leader"
  step "node $leader restarted: stands by, reads the same $ha_n volumes and replicas"
  expect 204 DELETE "/v1/volumes/${ids[0]}"
  step "  a delete through it is forwarded to the leader"
}

case "$nx_case" in
  full_restart | partition | repair | nexus_killed | ha)
    "case_$nx_case"
    ;;
  *)
    echo "unknown case $nx_case"
    exit 2
    ;;
esac
nx_pass
