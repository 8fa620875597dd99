#!/usr/bin/env bash
# weft-control against real engines on loopback, one case per run:
#   control_test.sh WEFT ENGINE CONTROL CASE
# Cases:
#   api       every route of the server is in openapi.json and the other way
#             round; each answers with a status its operation documents;
#             errors are application/problem+json with a sentence
#   volumes   three engines register; pools; a 3-replica volume created
#             (idempotent; refusals leave nothing), published to a host:
#             data written and read back through the nexus over NVMe/TCP; a
#             replica's engine killed: I/O goes on and the volume shows
#             degraded; unpublish, delete: nothing left on the engines
#   cli       the same through `weft volume|pool|node|events` (tables, --json,
#             exit 1 with the control plane's sentence)
#   repair    a replica's node stays away: the reconciler places a new
#             replica on the fourth node, the nexus rebuilds it, the old one
#             leaves the volume; the data reads back; when the old node
#             returns, its orphaned replica is destroyed
#   snapshots a published volume snapshotted (writes paused at its nexus),
#             written again; a volume made from the snapshot holds the data
#             of the moment; an unpublished volume snapshotted (in-sync
#             replicas from their labels) and cloned through the CLI; a
#             snapshot with a volume made from it is not deleted; nothing
#             left on the engines at the end
#   encrypted an encrypted volume (engines with one KEK): no plaintext in
#             any pool file; published elsewhere it reads back (the control
#             plane carries the wrapped key); a clone of its snapshot is
#             encrypted with the same key; delete erases the keys, on a
#             node that was away once it is back
#   moved     a replica's engine comes back listening at another address:
#             its child in the nexus is re-pointed there (same place in the
#             nexus, partial rebuild); the data reads back
#   engine_tls the engines' APIs over TLS with client certificates and
#             tokens: a control plane without credentials is refused (a
#             sentence naming the node, nothing made); with its certificate
#             and token a volume is made, published, written, deleted; the
#             engines' audit lines name it
#   rest_tls  the REST API over HTTPS with client certificates and tokens:
#             refusals (a plain 0.0.0.0, no token or an unknown one: 401
#             problems, no or another CA's client certificate); engines
#             register and the CLI works with theirs; the audit log has
#             every change and refusal and no token
#   restart   weft-control restarted on its SQLite file: the same nodes,
#             pools and volumes; engines restarted: the volume publishes
#             again with the data written before
set -u
weft=$1
engine=$2
control=$3
case_name=$4
here=$(cd "$(dirname "$0")" && pwd)
doc=$here/../../src/control/openapi.json
source "$here/control_lib.sh"

host=nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555
vol=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d01
MiB=$((1 << 20))

three_nodes_with_pools() {
  for i in 1 2 3; do start_node $i; done
  wait_for 30 "3 nodes online" nodes_online 3
  for i in 1 2 3; do
    expect 201 PUT /v1/pools/p$i "{\"node\":\"n$i\",\"disk\":\"$data/pool$i.img\",\"size\":$((128 * MiB))}"
  done
}
# io CMD ARGS...: weft nvme CMD on the publication in $pub.
io() {
  local cmd=$1
  shift
  run_out=$(timeout 60 "$weft" nvme "$cmd" -a "$(jq -r .address <<<"$pub")" \
    -s "$(jq -r .port <<<"$pub")" -n "$(jq -r .nqn <<<"$pub")" --hostnqn "$host" \
    --timeout 10 "$@" 2>&1)
  run_rc=$?
}

case $case_name in
api)
  start_control
  # The server's routes and the document's, both ways.
  "$control" --print-routes | sort >"$data/server.routes"
  jq -r '.paths | to_entries[] | .key as $p | .value | keys[] |
         select(. != "parameters") | "\(ascii_upcase) \($p)"' "$doc" | sort >"$data/doc.routes"
  diff "$data/server.routes" "$data/doc.routes" >"$data/diff" ||
    fail "routes differ (< server, > document): $(cat "$data/diff")"
  # The document served is the repository's.
  expect 200 GET /v1/openapi.json
  jq -S . <<<"$body" >"$data/served.json"
  jq -S . "$doc" | cmp -s - "$data/served.json" || fail "/v1/openapi.json is not src/control/openapi.json"
  # Every route answers with a status its operation documents.
  while read -r m p; do
    path=${p//\{id\}/6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d99}
    [[ $p == /v1/pools/* ]] && path=${p//\{name\}/nopool}
    [[ $p == /v1/nodes/* ]] && path=${p//\{id\}/nonode}
    b=
    [ "$m" = PUT ] && b='{}'
    req "$m" "$path" "$b"
    lm=$(tr '[:upper:]' '[:lower:]' <<<"$m")
    jq -e --arg p "$p" --arg m "$lm" --arg c "$code" '.paths[$p][$m].responses | has($c)' "$doc" \
      >/dev/null || fail "$m $path -> $code, not documented for $m $p: $body"
    if [ "$code" -ge 400 ]; then
      [[ $ctype == application/problem+json* ]] || fail "$m $path: $code as $ctype"
    fi
  done <"$data/server.routes"
  # Refusals, each a problem with a sentence.
  expect 404 GET /v1/nothing
  expect 405 POST /v1/volumes '{}'
  expect 400 PUT /v1/volumes/not-a-uuid '{"size_bytes":1048576}'
  expect 400 PUT /v1/volumes/$vol '{"size_bytes":1048576,"colour":"red"}'
  grep -q colour <<<"$body" || fail "the unknown field is not named: $body"
  expect 400 PUT /v1/volumes/$vol '{"size_bytes":1048576,'
  expect 400 PUT /v1/volumes/$vol '{"size_bytes":-5}'
  expect 400 PUT /v1/volumes/$vol '{"size_bytes":1048576,"replicas":9}'
  expect 400 PUT /v1/volumes/$vol '[1,2]'
  expect 400 PUT /v1/nodes/n1 '{"api":"nowhere","nvmf":["127.0.0.1:4420"],"host_nqn":"nqn.x"}'
  expect 400 PUT /v1/nodes/bad%20id '{"api":"127.0.0.1:1","nvmf":["127.0.0.1:4420"],"host_nqn":"nqn.x"}'
  expect 400 GET '/v1/events?limit=0'
  # Hosts (application-only nodes): registered, again (unchanged), listed, forgotten.
  expect 400 PUT /v1/hosts/h1 '{"host_nqn":"nqn.2026-11.io.weft:node:h1","colour":"red"}'
  expect 400 PUT /v1/hosts/bad%20id '{"host_nqn":"nqn.2026-11.io.weft:node:h1"}'
  expect 400 PUT /v1/hosts/h1 '{"host_nqn":"not an nqn"}'
  expect 201 PUT /v1/hosts/h1 '{"host_nqn":"nqn.2026-11.io.weft:node:h1"}'
  expect 200 PUT /v1/hosts/h1 '{"host_nqn":"nqn.2026-11.io.weft:node:h1"}'
  expect 200 GET /v1/hosts
  [ "$(jq -r '.hosts[0].host_nqn' <<<"$body")" = nqn.2026-11.io.weft:node:h1 ] || fail "hosts: $body"
  expect 204 DELETE /v1/hosts/h1
  expect 404 GET /v1/hosts/h1
  # Controller ID ranges: the engines got disjoint ones; a node keeps its own;
  # an engine's own range may not overlap another node's.
  expect 200 GET /v1/nodes
  jq -e '[.nodes[].cntlid_range] | . as $r | all(.[]; .[0] >= 1 and .[0] <= .[1]) and
         ([range(length) as $i | range(length) as $j | select($i < $j) |
           select($r[$i][0] <= $r[$j][1] and $r[$j][0] <= $r[$i][1])] | length == 0)' \
    <<<"$body" >/dev/null || fail "controller ID ranges are not disjoint: $(jq -c '[.nodes[] | {id, cntlid_range}]' <<<"$body")"
  fake='"api":"127.0.0.1:1","nvmf":["127.0.0.1:2"],"host_nqn":"nqn.2026-11.io.weft:fake"'
  expect 201 PUT /v1/nodes/fake1 "{$fake}"
  r1=$(jq -c .cntlid_range <<<"$body")
  expect 200 PUT /v1/nodes/fake1 "{$fake}"
  [ "$(jq -c .cntlid_range <<<"$body")" = "$r1" ] || fail "fake1's range moved: $r1, then $body"
  expect 409 PUT /v1/nodes/fake2 "{$fake,\"cntlid_range\":[$(jq '.[0]' <<<"$r1"),$(jq '.[0] + 5' <<<"$r1")]}"
  expect 400 PUT /v1/nodes/fake2 "{$fake,\"cntlid_range\":[0,5]}"
  expect 201 PUT /v1/nodes/fake2 "{$fake,\"cntlid_range\":[65500,65519]}"
  [ "$(jq -c .cntlid_range <<<"$body")" = "[65500,65519]" ] || fail "fake2's own range: $body"
  expect 204 DELETE /v1/nodes/fake1
  expect 204 DELETE /v1/nodes/fake2
  # No room anywhere: 507, and no volume left behind.
  expect 507 PUT /v1/volumes/$vol '{"size_bytes":1048576}'
  expect 404 GET /v1/volumes/$vol
  expect 200 GET /v1/status
  jq -e '.store | startswith("sqlite:")' <<<"$body" >/dev/null || fail "status: $body"
  ;;

volumes)
  start_control
  three_nodes_with_pools
  expect 200 PUT /v1/pools/p1 "{\"node\":\"n1\",\"disk\":\"$data/pool1.img\",\"size\":$((128 * MiB))}"
  expect 409 PUT /v1/pools/p1 "{\"node\":\"n2\",\"disk\":\"$data/other.img\",\"size\":$((128 * MiB))}"
  expect 200 GET /v1/pools/p2
  jq -e '.state == "online" and .capacity_bytes > 0' <<<"$body" >/dev/null || fail "pool: $body"
  # Too many replicas for three nodes: refused, nothing made.
  expect 507 PUT /v1/volumes/$vol '{"size_bytes":33554432,"replicas":4}'
  grep -q "4 replicas need 4 nodes" <<<"$body" || fail "507 sentence: $body"
  expect 404 GET /v1/volumes/$vol
  for i in 1 2 3; do
    n=$("$weft" engine volume list --api "$(api_of $i)" --json | jq '.volumes | length')
    [ "$n" = 0 ] || fail "a refused volume left $n volumes on n$i"
  done
  spec='{"size_bytes":33554432,"replicas":3,"thin":true}'
  expect 201 PUT /v1/volumes/$vol "$spec"
  jq -e '[.replicas[].node] | sort == ["n1","n2","n3"]' <<<"$body" >/dev/null ||
    fail "replicas not on three nodes: $body"
  expect 200 PUT /v1/volumes/$vol "$spec"
  expect 409 PUT /v1/volumes/$vol '{"size_bytes":67108864,"replicas":3}'
  expect 200 GET /v1/volumes
  [ "$(jq '.volumes | length' <<<"$body")" = 1 ] || fail "list: $body"
  # Publish: the nexus goes to the host's node when it holds a replica.
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"n2\"}"
  pub=$body
  [ "$(jq -r .node <<<"$pub")" = n2 ] || fail "nexus not on the host's node: $pub"
  jq -e '.connect | startswith("nvme connect -t tcp")' <<<"$pub" >/dev/null || fail "connect: $pub"
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"n2\"}"
  expect 409 PUT /v1/volumes/$vol/publish '{"host_nqn":"nqn.2014-08.org.nvmexpress:other"}'
  expect 409 DELETE /v1/volumes/$vol
  wait_for 20 "volume online" volume_state $vol online
  jq -e '.nexus.node == "n2" and .nexus.generation >= 1' <<<"$body" >/dev/null || fail "nexus: $body"
  io verify --lba 0 --blocks 2048 --seed 3
  [ "$run_rc" -eq 0 ] || fail "verify through the nexus: $run_out"
  # Only the published host may connect.
  run_out=$(timeout 30 "$weft" nvme identify -a "$(jq -r .address <<<"$pub")" \
    -s "$(jq -r .port <<<"$pub")" -n "$(jq -r .nqn <<<"$pub")" \
    --hostnqn nqn.2014-08.org.nvmexpress:intruder --timeout 5 2>&1) &&
    fail "another host connected: $run_out"
  # A replica's engine dies: I/O goes on, the volume is degraded.
  kill_node 3
  io verify --lba 4096 --blocks 512 --seed 4
  [ "$run_rc" -eq 0 ] || fail "verify with a replica gone: $run_out"
  wait_for 20 "volume degraded" volume_state $vol degraded
  jq -e '[.replicas[] | select(.node == "n3")][0].state != "online"' <<<"$body" >/dev/null ||
    fail "n3's replica still online: $body"
  wait_for 20 "n3 offline" nodes_online 2
  start_node 3
  wait_for 30 "n3 back" nodes_online 3
  wait_for 60 "volume online again (rebuilt)" volume_state $vol online
  io read --lba 4096 --blocks 1 >/dev/null
  [ "$run_rc" -eq 0 ] || fail "read after the rebuild: $run_out"
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol
  expect 404 GET /v1/volumes/$vol
  for i in 1 2 3; do
    n=$("$weft" engine volume list --api "$(api_of $i)" --json | jq '.volumes | length')
    [ "$n" = 0 ] || fail "delete left $n volumes on n$i"
    n=$("$weft" engine nexus list --api "$(api_of $i)" --json | jq '.nexuses | length')
    [ "$n" = 0 ] || fail "unpublish left $n nexuses on n$i"
  done
  expect 409 DELETE /v1/nodes/n1
  expect 200 GET /v1/events
  for k in node-registered pool-created volume-created volume-published volume-unpublished volume-deleted; do
    jq -e --arg k $k '[.events[].kind] | index($k)' <<<"$body" >/dev/null || fail "no $k event: $body"
  done
  ;;

snapshots)
  start_control
  three_nodes_with_pools
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":33554432,"replicas":3}'
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  wait_for 20 "volume online" volume_state $vol online
  io write --lba 0 --blocks 256 --pattern random --seed 7
  [ "$run_rc" -eq 0 ] || fail "write A: $run_out"
  io read --lba 0 --blocks 256 --output "$data/a.bin"
  snap=5a9e0000-0000-4000-8000-000000000001
  expect 400 PUT /v1/snapshots/$snap '{"volume":"nope"}'
  expect 400 PUT /v1/snapshots/$snap "{\"volume\":\"$vol\",\"extra\":1}"
  expect 404 PUT /v1/snapshots/$snap '{"volume":"5a9e0000-0000-4000-8000-0000000000ff"}'
  # Published: taken with the writes paused at the nexus.
  expect 201 PUT /v1/snapshots/$snap "{\"volume\":\"$vol\"}"
  jq -e '.phase == "ready" and (.replicas | length) == 3' <<<"$body" >/dev/null || fail "snapshot: $body"
  expect 200 PUT /v1/snapshots/$snap "{\"volume\":\"$vol\"}"
  io write --lba 0 --blocks 256 --pattern random --seed 8
  [ "$run_rc" -eq 0 ] || fail "write B: $run_out"
  io read --lba 0 --blocks 256 --output "$data/b.bin"
  cmp -s "$data/a.bin" "$data/b.bin" && fail "writes A and B read back the same"
  # A volume from the snapshot: clones of the replicas' snapshots.
  clone=5a9e0000-0000-4000-8000-000000000002
  expect 400 PUT /v1/volumes/$clone "{\"size_bytes\":67108864,\"source\":{\"snapshot\":\"$snap\"}}"
  expect 404 PUT /v1/volumes/$clone '{"size_bytes":33554432,"source":{"snapshot":"5a9e0000-0000-4000-8000-0000000000ff"}}'
  expect 201 PUT /v1/volumes/$clone "{\"size_bytes\":33554432,\"source\":{\"snapshot\":\"$snap\"}}"
  jq -e --arg s $snap '.spec.source.snapshot == $s' <<<"$body" >/dev/null || fail "clone spec: $body"
  expect 200 PUT /v1/volumes/$clone/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  wait_for 20 "clone online" volume_state $clone online
  jq -e '[.replicas[].state] == ["online","online","online"]' <<<"$body" >/dev/null ||
    fail "the clone's replicas are not all in sync at once: $body"
  io read --lba 0 --blocks 256 --output "$data/clone.bin"
  cmp -s "$data/a.bin" "$data/clone.bin" || fail "the clone does not hold the data at the snapshot (A)"
  expect 204 DELETE /v1/volumes/$clone/publish
  # Unpublished: the in-sync replicas are known from their labels.
  expect 204 DELETE /v1/volumes/$vol/publish
  snap2=5a9e0000-0000-4000-8000-000000000003
  out=$("$weft" snapshot create "$vol" --id $snap2 --control "$url") || fail "weft snapshot create: $out"
  grep -q "3 replica snapshot" <<<"$out" || fail "weft snapshot create: $out"
  clone2=5a9e0000-0000-4000-8000-000000000004
  out=$("$weft" volume create --from-snapshot $snap2 --id $clone2 --control "$url") ||
    fail "weft volume create --from-snapshot: $out"
  expect 200 PUT /v1/volumes/$clone2/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  wait_for 20 "clone2 online" volume_state $clone2 online
  io read --lba 0 --blocks 256 --output "$data/clone2.bin"
  cmp -s "$data/b.bin" "$data/clone2.bin" || fail "the second clone does not hold B"
  expect 204 DELETE /v1/volumes/$clone2/publish
  out=$("$weft" snapshot list --volume "$vol" --control "$url") || fail "weft snapshot list: $out"
  [ "$(grep -c ready <<<"$out")" = 2 ] || fail "weft snapshot list: $out"
  # A snapshot with a volume made from it stays; the origin may go.
  expect 409 DELETE /v1/snapshots/$snap
  expect 204 DELETE /v1/volumes/$vol
  expect 200 GET /v1/snapshots/$snap
  for v in $clone $clone2; do expect 204 DELETE /v1/volumes/$v; done
  expect 204 DELETE /v1/snapshots/$snap
  "$weft" snapshot delete $snap2 --control "$url" >/dev/null || fail "weft snapshot delete"
  expect 404 GET /v1/snapshots/$snap
  expect 200 GET /v1/snapshots
  [ "$(jq '.snapshots | length' <<<"$body")" = 0 ] || fail "snapshots left: $body"
  for i in 1 2 3; do
    n=$("$weft" engine volume list --api "$(api_of $i)" --json | jq '.volumes | length')
    [ "$n" = 0 ] || fail "$n volumes left on n$i"
  done
  expect 200 GET /v1/events
  for k in snapshot-created snapshot-deleted; do
    jq -e --arg k $k '[.events[].kind] | index($k)' <<<"$body" >/dev/null || fail "no $k event: $body"
  done
  ;;

resize)
  start_control
  three_nodes_with_pools
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":33554432,"replicas":3}'
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  wait_for 20 "volume online" volume_state $vol online
  io write --lba 0 --blocks 256 --pattern random --seed 7
  [ "$run_rc" -eq 0 ] || fail "write A: $run_out"
  io read --lba 0 --blocks 256 --output "$data/a.bin"
  expect 400 PUT /v1/volumes/$vol/size '{"size_bytes":16777216}'
  grep -q "does not shrink" <<<"$body" || fail "shrink: $body"
  expect 400 PUT /v1/volumes/$vol/size '{"size_bytes":67108864,"by":1}'
  expect 404 PUT /v1/volumes/6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d99/size '{"size_bytes":67108864}'
  # Grown under a host's reads: held for a moment, nothing fails (the
  # nexus test grows under writes).
  timeout 60 "$weft" nvme perf -a "$(jq -r .address <<<"$pub")" -s "$(jq -r .port <<<"$pub")" \
    -n "$(jq -r .nqn <<<"$pub")" --hostnqn "$host" --rw randread --io-size 4k --qd 8 \
    --seconds 3 >"$data/perf.out" 2>&1 &
  perf=$!
  sleep 1
  out=$("$weft" volume resize $vol --size +32MiB --control "$url") || fail "weft volume resize: $out"
  grep -q "64.00 MiB, and so its host sees it" <<<"$out" || fail "weft volume resize: $out"
  wait $perf || fail "I/O failed across the resize: $(cat "$data/perf.out")"
  expect 200 GET /v1/volumes/$vol
  jq -e '.spec.size_bytes == 67108864 and .nexus.size_bytes == 67108864' <<<"$body" >/dev/null ||
    fail "after the resize: $body"
  io identify
  grep -qw 131072 <<<"$run_out" || fail "the host does not see 64 MiB: $run_out"
  tail=$((131072 - 256))
  io write --lba $tail --blocks 256 --pattern random --seed 9
  [ "$run_rc" -eq 0 ] || fail "write past the old end: $run_out"
  io read --lba $tail --blocks 256 --output "$data/tail.bin"
  io read --lba 0 --blocks 256 --output "$data/a2.bin"
  cmp -s "$data/a.bin" "$data/a2.bin" || fail "the data before the old end changed"
  # The same size again: nothing to do.
  expect 200 PUT /v1/volumes/$vol/size '{"size_bytes":67108864}'
  # Grown while unpublished: the nexus made at the next publish grows.
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 200 PUT /v1/volumes/$vol/size '{"size_bytes":100663296}'
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  wait_for 20 "volume online" volume_state $vol online
  jq -e '.nexus.size_bytes == 100663296' <<<"$body" >/dev/null || fail "re-published: $body"
  io identify
  grep -qw 196608 <<<"$run_out" || fail "the host does not see 96 MiB: $run_out"
  io read --lba $tail --blocks 256 --output "$data/tail2.bin"
  cmp -s "$data/tail.bin" "$data/tail2.bin" || fail "the data past the first old end changed"
  # No room on a thick replica's pool: refused, and the others shrink back.
  thick=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d02
  expect 201 PUT /v1/volumes/$thick '{"size_bytes":8388608,"replicas":3,"thin":false}'
  expect 507 PUT /v1/volumes/$thick/size "{\"size_bytes\":$((200 * MiB))}"
  expect 200 GET /v1/volumes/$thick
  jq -e '.spec.size_bytes == 8388608' <<<"$body" >/dev/null || fail "a refused resize changed: $body"
  ids=$(jq -c '[.replicas[].id]' <<<"$body")
  for i in 1 2 3; do
    "$weft" engine volume list --api "$(api_of $i)" --json |
      jq -e --argjson ids "$ids" '[.volumes[] | select(.name as $n | $ids | index($n))] |
        length == 1 and all(.size_bytes == 9437184)' >/dev/null ||
      fail "a replica of the refused resize stayed grown on n$i: $("$weft" engine volume list --api "$(api_of $i)" --json)"
  done
  expect 204 DELETE /v1/volumes/$thick
  expect 200 GET /v1/events
  jq -e '[.events[].kind] | index("volume-resized")' <<<"$body" >/dev/null || fail "no event: $body"
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol
  ;;

switchover)
  CONTROL_FLAGS="--reconcile-interval 0.3"
  start_control
  three_nodes_with_pools
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":16777216,"replicas":3}'
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"n1\"}"
  pub=$body
  jq -e '.node == "n1" and .standby.node != "n1" and .standby.ready and
    (.standby.connect | test("nvme connect"))' <<<"$pub" >/dev/null || fail "no standby path: $pub"
  sb=$(jq -r .standby.node <<<"$pub")
  # The standby path: the same NQN, no namespace yet.
  main_pub=$pub
  pub=$(jq '{address: .standby.address, port: .standby.port, nqn: .nqn}' <<<"$main_pub")
  io identify
  [ "$run_rc" -eq 0 ] || fail "identify on the standby path: $run_out"
  grep -qw 16777216 <<<"$run_out" && fail "the standby path serves a namespace already: $run_out"
  pub=$main_pub
  io write --lba 0 --blocks 2048 --pattern random --seed 21
  [ "$run_rc" -eq 0 ] || fail "write: $run_out"
  io read --lba 0 --blocks 2048 --output "$data/a.bin"
  # The nexus's node is lost: the nexus moves to the standby node.
  kill_node 1
  moved() {
    req GET "/v1/volumes/$vol"
    jq -e --arg s "$sb" '.published.node == $s and .published.standby.node == "n1" and
      (.published.standby.ready | not) and .nexus != null' <<<"$body" >/dev/null
  }
  wait_for 30 "the nexus moved to $sb" moved
  pub=$(jq .published <<<"$body")
  io identify
  grep -qw 32768 <<<"$run_out" || fail "the new path does not serve the volume: $run_out"
  io read --lba 0 --blocks 2048 --output "$data/b.bin"
  [ "$run_rc" -eq 0 ] || fail "read after the switchover: $run_out"
  cmp -s "$data/a.bin" "$data/b.bin" || fail "the data changed across the switchover"
  io write --lba 4096 --blocks 64 --pattern 0x77
  [ "$run_rc" -eq 0 ] || fail "write after the switchover: $run_out"
  # The old node returns: the standby path again, its replica back in sync.
  start_node 1
  back() {
    req GET "/v1/volumes/$vol"
    jq -e '.published.standby.node == "n1" and .published.standby.ready and .state == "online"' \
      <<<"$body" >/dev/null
  }
  wait_for 60 "n1 the standby again and the volume online" back
  jq -e '[.replicas[].node] | sort == ["n1","n2","n3"]' <<<"$body" >/dev/null ||
    fail "the replicas are not those of before: $body"
  io read --lba 4096 --blocks 64 --output "$data/c.bin"
  head -c $((64 * 512)) /dev/zero | tr '\0' '\167' | cmp -s - "$data/c.bin" ||
    fail "the write after the switchover is not there"
  expect 200 GET /v1/events
  for k in nexus-switched-over standby-restored replica-readded; do
    jq -e --arg k $k '[.events[].kind] | index($k)' <<<"$body" >/dev/null || fail "no $k event: $body"
  done
  expect 204 DELETE /v1/volumes/$vol/publish
  for i in 1 2 3; do
    n=$("$weft" engine nexus list --api "$(api_of $i)" --json | jq '.nexuses | length')
    [ "$n" = 0 ] || fail "a nexus is left on n$i"
    "$weft" engine volume list --api "$(api_of $i)" --json | jq -e '[.volumes[] | select(.share_nqn != "")] | length == 0' \
      >/dev/null || fail "a share is left on n$i"
  done
  expect 204 DELETE /v1/volumes/$vol
  ;;

arbiter)
  CONTROL_FLAGS="--reconcile-interval 0.3"
  start_control
  three_nodes_with_pools
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":16777216,"replicas":2}'
  na=$(jq -r '.replicas[0].node' <<<"$body") nb=$(jq -r '.replicas[1].node' <<<"$body")
  rb=$(jq -r '.replicas[1].id' <<<"$body") pb=$(jq -r '.replicas[1].pool' <<<"$body")
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"$na\"}"
  pub=$body
  io write --lba 0 --blocks 64 --pattern 0x11
  [ "$run_rc" -eq 0 ] || fail "write: $run_out"
  # The other replica's writes fail: a two-way nexus cannot retire it on a
  # majority; it holds the write until the control plane says it may go on.
  "$weft" engine volume inject-fault "$pb" "$rb" --ops write --api "$(api_of "${nb#n}")" >/dev/null ||
    fail "inject-fault"
  io write --lba 128 --blocks 64 --pattern 0x22
  [ "$run_rc" -eq 0 ] || fail "the write was not let through: $run_out"
  expect 200 GET /v1/events
  jq -e '[.events[].kind] | index("arbiter-allowed")' <<<"$body" >/dev/null || fail "no arbiter-allowed event: $body"
  expect 200 GET /v1/volumes/$vol
  jq -e '.published.arbiter_generation > 0 and .nexus.state == "degraded"' <<<"$body" >/dev/null ||
    fail "after the arbiter's yes: $body"
  # The nexus's node goes silent (SIGSTOP): its other replica missed that
  # write, so the volume waits for it instead of switching over there.
  kill -STOP "${engine_pid[${na#n}]}"
  waited() {
    req GET /v1/events
    jq -e '[.events[].kind] | index("switchover-waiting")' <<<"$body" >/dev/null
  }
  wait_for 20 "the switchover refused" waited
  grep -q "arbiter let the old nexus go on" <<<"$body" || fail "switchover-waiting: $body"
  expect 200 GET /v1/volumes/$vol
  jq -e --arg a "$na" '.published.node == $a' <<<"$body" >/dev/null || fail "the volume moved: $body"
  kill -CONT "${engine_pid[${na#n}]}"
  wait_for 20 "3 nodes online" nodes_online 3
  io read --lba 128 --blocks 64 --output "$data/b.bin"
  [ "$run_rc" -eq 0 ] || fail "read after the pause: $run_out"
  head -c $((64 * 512)) /dev/zero | tr '\0' '\042' | cmp -s - "$data/b.bin" ||
    fail "the write the arbiter let through is not there"
  "$weft" engine volume inject-fault "$pb" "$rb" --ops none --api "$(api_of "${nb#n}")" >/dev/null
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol
  ;;

cli)
  start_control
  export WEFT_CONTROL=$url
  # wc ARGS...: weft ARGS; $out, $err, $rc.
  wc() {
    out=$(timeout 60 "$weft" "$@" 2>"$data/stderr")
    rc=$?
    err=$(<"$data/stderr")
  }
  wc node list
  [ "$rc" = 0 ] && grep -q "no nodes" <<<"$out" || fail "node list, empty: $rc $out $err"
  for i in 1 2 3; do start_node $i; done
  wait_for 30 "3 nodes online" nodes_online 3
  wc node list
  [ "$(grep -c ' online ' <<<"$out")" = 3 ] || fail "node list: $out"
  for i in 1 2 3; do
    wc pool create p$i --node n$i --disk "$data/pool$i.img" --size 64MiB
    [ "$rc" = 0 ] && grep -q "pool p$i created on node n$i" <<<"$out" || fail "pool create: $rc $out $err"
  done
  wc pool create p9 --node n9 --disk "$data/pool9.img" --size 64MiB
  [ "$rc" = 1 ] && grep -q "^weft: no node n9" <<<"$err" || fail "pool on an unknown node: $rc $out $err"
  wc pool list --json
  [ "$(jq '[.pools[] | select(.state == "online")] | length' <<<"$out")" = 3 ] || fail "pool list: $out"
  wc volume create --size 8MiB --replicas 3 --json
  [ "$rc" = 0 ] || fail "volume create: $out $err"
  id=$(jq -r .id <<<"$out")
  wc volume create --size 8MiB --replicas 3 --id "$id"
  [ "$rc" = 0 ] && grep -q "exists already" <<<"$out" || fail "create again: $rc $out $err"
  wc volume create --size 8MiB --replicas 4
  [ "$rc" = 1 ] && grep -q "^weft: not enough room: 4 replicas need 4 nodes" <<<"$err" ||
    fail "4 replicas on 3 nodes: $rc $out $err"
  wc volume create --size lots
  [ "$rc" = 2 ] || fail "a bad size should be a usage error: $rc $out $err"
  wc volume list
  grep -qE "^$id +8.00 MiB +online +3/3 online +- +-" <<<"$out" || fail "volume list: $out"
  wc volume publish "$id" --host-nqn "$host"
  [ "$rc" = 0 ] && grep -q "nvme connect -t tcp -a 127.0.0.1" <<<"$out" || fail "publish: $rc $out $err"
  wc volume get "$id" --watch
  [ "$rc" = 0 ] && grep -q "online" <<<"$out" || fail "get --watch: $rc $out $err"
  wc volume get "$id"
  grep -q "^published to $host" <<<"$out" || fail "volume get: $out"
  wc volume delete "$id"
  [ "$rc" = 1 ] && grep -q "unpublish it first" <<<"$err" || fail "delete while published: $rc $err"
  wc volume unpublish "$id"
  [ "$rc" = 0 ] || fail "unpublish: $err"
  wc volume delete "$id"
  [ "$rc" = 0 ] || fail "delete: $err"
  wc volume get "$id"
  [ "$rc" = 1 ] && grep -q "^weft: no volume $id" <<<"$err" || fail "get after delete: $rc $err"
  wc events
  grep -q "volume-deleted" <<<"$out" || fail "events: $out"
  wc volume list --control http://127.0.0.1:1
  [ "$rc" = 1 ] && grep -q "^weft: no control plane answered at http://127.0.0.1:1" <<<"$err" ||
    fail "no control plane: $rc $err"
  ;;

repair)
  CONTROL_FLAGS="--replace-after 2 --reconcile-interval 0.3"
  start_control
  three_nodes_with_pools
  start_node 4
  wait_for 30 "4 nodes online" nodes_online 4
  expect 201 PUT /v1/pools/p4 "{\"node\":\"n4\",\"disk\":\"$data/pool4.img\",\"size\":$((128 * MiB))}"
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":16777216,"replicas":3}'
  used=$(jq -r '[.replicas[].node] | sort | join(" ")' <<<"$body")
  spare=$(comm -23 <(printf 'n1\nn2\nn3\nn4\n') <(tr ' ' '\n' <<<"$used"))
  first=$(jq -r '.replicas[0].node' <<<"$body")
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"$first\"}"
  pub=$body
  io verify --lba 0 --blocks 4096 --seed 11
  [ "$run_rc" -eq 0 ] || fail "verify: $run_out"
  # A replica node other than the nexus's goes away for good.
  victim=$(jq -r --arg f "$first" '[.replicas[].node | select(. != $f)][0]' <<<"$(curl -s "$url/v1/volumes/$vol")")
  kill_node "${victim#n}"
  io write --lba 8192 --blocks 64 --pattern 0x3c
  [ "$run_rc" -eq 0 ] || fail "write with a replica gone: $run_out"
  replaced() {
    req GET "/v1/volumes/$vol"
    jq -e --arg v "$victim" --arg s "$spare" '.state == "online" and ([.replicas[].node] | index($v) == null)
      and ([.replicas[].node] | index($s) != null) and (.replicas | length == 3)' <<<"$body" >/dev/null
  }
  wait_for 90 "replica on $victim replaced on $spare" replaced
  io read --lba 8192 --blocks 64 -o "$data/back.bin"
  [ "$run_rc" -eq 0 ] || fail "read after the repair: $run_out"
  head -c $((64 * 512)) /dev/zero | tr '\0' '\074' | cmp -s - "$data/back.bin" ||
    fail "the data written while the replica was away is not there"
  expect 200 GET /v1/events
  for k in replica-replacing replica-replaced; do
    jq -e --arg k $k '[.events[].kind] | index($k)' <<<"$body" >/dev/null || fail "no $k event: $body"
  done
  # The old node returns: its replica (an orphan now) is destroyed.
  start_node "${victim#n}"
  orphan_gone() {
    [ "$("$weft" engine volume list --api "$(api_of "${victim#n}")" --json | jq '.volumes | length')" = 0 ]
  }
  wait_for 30 "the orphaned replica on $victim destroyed" orphan_gone
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol
  ;;

encrypted)
  CONTROL_FLAGS="--reconcile-interval 0.3"
  "$weft" key gen-kek -o "$data/kek" >/dev/null || fail "gen-kek"
  ENGINE_FLAGS="--kek-file $data/kek"
  start_control
  three_nodes_with_pools
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":16777216,"replicas":2,"encrypted":true}'
  jq -e '.spec.encrypted == true and (has("wrapped_key") | not)' <<<"$body" >/dev/null || fail "create: $body"
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"n1\"}"
  pub=$body
  for i in $(seq 40000); do echo "WEFT-ENCRYPTED-MARKER-$i"; done | head -c $((1 << 20)) >"$data/marker.bin"
  # It serves 4 KiB blocks: 1 MiB is 256 of them.
  io write --lba 0 --blocks 256 -i "$data/marker.bin"
  [ "$run_rc" -eq 0 ] || fail "write: $run_out"
  io read --lba 0 --blocks 256 --output "$data/a.bin"
  cmp -s "$data/marker.bin" "$data/a.bin" || fail "the encrypted volume does not read back"
  sync
  for i in 1 2 3; do
    n=$(grep -c -a "WEFT-ENCRYPTED-MARKER" "$data/pool$i.img")
    [ "$n" = 0 ] || fail "pool $i holds plaintext ($n markers)"
  done
  # Published through another node: the control plane gives it the key.
  expect 204 DELETE /v1/volumes/$vol/publish
  other=$(jq -r '.replicas[] | select(.node != "n1") | .node' <<<"$(curl -s "$url/v1/volumes/$vol")" | head -1)
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"$other\"}"
  pub=$body
  io read --lba 0 --blocks 256 --output "$data/b.bin"
  cmp -s "$data/marker.bin" "$data/b.bin" || fail "published through $other, it does not read back: $run_out"
  # A clone of its snapshot: encrypted with the same key (and must say so).
  snap=7a1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d09
  clone=7a1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d0a
  expect 201 PUT /v1/snapshots/$snap "{\"volume\":\"$vol\"}"
  jq -e '.encrypted == true and (has("wrapped_key") | not)' <<<"$body" >/dev/null || fail "snapshot: $body"
  expect 400 PUT /v1/volumes/$clone "{\"size_bytes\":16777216,\"replicas\":2,\"source\":{\"snapshot\":\"$snap\"}}"
  expect 201 PUT /v1/volumes/$clone "{\"size_bytes\":16777216,\"replicas\":2,\"encrypted\":true,\"source\":{\"snapshot\":\"$snap\"}}"
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 200 PUT /v1/volumes/$clone/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  io read --lba 0 --blocks 256 --output "$data/c.bin"
  cmp -s "$data/marker.bin" "$data/c.bin" || fail "the clone does not read the data: $run_out"
  expect 204 DELETE /v1/volumes/$clone/publish
  expect 204 DELETE /v1/volumes/$clone
  expect 204 DELETE /v1/snapshots/$snap
  expect 204 DELETE /v1/volumes/$vol
  # Deleted: no engine keeps their keys.
  for i in 1 2 3; do
    k=$("$weft" engine volume-key list --api "$(api_of $i)" --json | jq '.keys | length')
    [ "$k" = 0 ] || fail "node n$i still keeps $k key(s)"
  done
  # A node away when an encrypted volume is deleted keeps its copy of the
  # key only until it is back. (A nexus runs on a replica's node, and a
  # delete needs every replica's node: the node away is one that held the
  # nexus before its replica moved elsewhere. Its copy is set by hand here.)
  vol3=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d03
  expect 201 PUT /v1/volumes/$vol3 '{"size_bytes":16777216,"replicas":2,"encrypted":true}'
  spare=$(jq -r '["n1", "n2", "n3"] - [.replicas[].node] | .[0]' <<<"$body")
  [ "$spare" = n1 ] || [ "$spare" = n2 ] || [ "$spare" = n3 ] || fail "no node without a replica: $body"
  "$weft" engine volume-key set --nexus "$vol3" --api "$(api_of "${spare#n}")" >/dev/null ||
    fail "volume-key set on $spare"
  keys_on() { "$weft" engine volume-key list --api "$(api_of "$1")" --json | jq '.keys | length'; }
  [ "$(keys_on "${spare#n}")" = 1 ] || fail "$spare does not hold the key"
  kill_node "${spare#n}"
  wait_for 20 "$spare offline" nodes_online 2
  expect 204 DELETE /v1/volumes/$vol3
  grep -q "volume $vol3: node $spare is away or did not answer" "$data/control.log" || fail "no erasure owed to $spare"
  start_node "${spare#n}"
  key_erased() { [ "$(keys_on "${spare#n}")" = 0 ]; }
  wait_for 30 "$spare erasing its copy of the key" key_erased
  expect 200 GET /v1/events
  jq -e '[.events[].kind] | index("volume-key-erased")' <<<"$body" >/dev/null ||
    fail "no volume-key-erased event: $body"
  ;;

moved)
  CONTROL_FLAGS="--reconcile-interval 0.3"
  start_control
  three_nodes_with_pools
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":16777216,"replicas":3}'
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"n1\"}"
  pub=$body
  io write --lba 0 --blocks 2048 --pattern random --seed 5
  [ "$run_rc" -eq 0 ] || fail "write: $run_out"
  child_uuid() {
    "$weft" engine nexus get "$vol" --api "$(api_of 1)" --json |
      jq -r --arg p ":$1/" '.children[] | select(.uri | contains($p)) | .uuid'
  }
  old_port=${nvmf_port[2]}
  id_before=$(child_uuid "$old_port")
  [ -n "$id_before" ] || fail "no child of the nexus at n2's port $old_port"
  kill_node 2
  # Written while n2 is away: what its child misses.
  io write --lba 8192 --blocks 64 --pattern 0x5a
  [ "$run_rc" -eq 0 ] || fail "write with n2 away: $run_out"
  io read --lba 0 --blocks 16384 --output "$data/a.bin"
  nvmf_port[2]=  # back on another port
  start_node 2
  [ "${nvmf_port[2]}" != "$old_port" ] || fail "n2 came back on its old port"
  repointed() {
    req GET "/v1/volumes/$vol"
    [ "$(jq -r .state <<<"$body")" = online ] || return 1
    [ "$(child_uuid "${nvmf_port[2]}")" = "$id_before" ]
  }
  wait_for 30 "n2's child re-pointed to port ${nvmf_port[2]}, in sync" repointed
  "$weft" engine nexus get "$vol" --api "$(api_of 1)" --json |
    jq -e --arg p ":${nvmf_port[2]}/" '[.rebuild_history[] | select(.child | contains($p))] |
      length > 0 and all(.kind == "partial" and .outcome == "done")' >/dev/null ||
    fail "n2's child was not rebuilt partially: $("$weft" engine nexus get "$vol" --api "$(api_of 1)" --json | jq -c .rebuild_history)"
  expect 200 GET /v1/events
  jq -e '[.events[].kind] | index("replica-repointed")' <<<"$body" >/dev/null || fail "no replica-repointed event: $body"
  # n2's replica itself (its data area starts after the nexus's 1 MiB),
  # read as the nexus's engine reads it.
  req GET "/v1/volumes/$vol"
  r2=$(jq -r '.replicas[] | select(.node == "n2") | .id' <<<"$body")
  req GET /v1/nodes/n1
  pub=$(jq -n --arg p "${nvmf_port[2]}" --arg r "$r2" \
    '{address: "127.0.0.1", port: ($p | tonumber), nqn: ("nqn.2026-11.io.weft:replica:" + $r)}')
  host_saved=$host
  host=$(jq -r .host_nqn <<<"$body")
  io read --lba 2048 --blocks 16384 --output "$data/b.bin"
  [ "$run_rc" -eq 0 ] || fail "read of n2's replica: $run_out"
  host=$host_saved
  cmp -s "$data/a.bin" "$data/b.bin" || fail "the re-pointed child does not hold the data"
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol
  ;;

restart)
  start_control
  three_nodes_with_pools
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":16777216,"replicas":3}'
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  io write --lba 100 --blocks 8 --pattern 0x5a
  [ "$run_rc" -eq 0 ] || fail "write: $run_out"
  expect 204 DELETE /v1/volumes/$vol/publish
  stop_control
  start_control
  expect 200 GET /v1/volumes/$vol
  [ "$(jq -r '.spec.replicas' <<<"$body")" = 3 ] || fail "volume after restart: $body"
  # The nodes beat to the new process: still online after their records
  # from before the restart are stale (3 beats of 300 ms).
  sleep 1.5
  wait_for 30 "nodes back" nodes_online 3
  # Every engine restarted too: pools come back, the volume publishes again
  # with its data.
  for i in 1 2 3; do kill_node $i; done
  for i in 1 2 3; do start_node $i; done
  wait_for 30 "nodes after their restart" nodes_online 3
  expect 200 GET /v1/pools/p1
  [ "$(jq -r .state <<<"$body")" = online ] || fail "pool after restart: $body"
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\"}"
  pub=$body
  io read --lba 100 --blocks 8 -o "$data/back.bin"
  [ "$run_rc" -eq 0 ] || fail "read after restarts: $run_out"
  head -c 4096 /dev/zero | tr '\0' '\132' | cmp -s - "$data/back.bin" ||
    fail "the data written before the restarts is not there"
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol
  ;;
engine_tls)
  # The engines serve their APIs over TLS, require client certificates and
  # tokens (tests/cli/pki.sh); weft-control calls them with its own.
  source "$here/../cli/pki.sh"
  pki=$data/pki
  make_api_pki "$pki" "$weft" || fail "make_api_pki"
  ENGINE_FLAGS="--api-tls-cert $pki/engine.crt --api-tls-key $pki/engine.key --api-tls-client-ca $pki/ca.crt --api-token-file $pki/tokens"
  # Without credentials the control plane's calls are refused, and it says
  # which node refused.
  start_control
  start_node 1
  wait_for 30 "n1 online" nodes_online 1
  req PUT /v1/pools/p1 "{\"node\":\"n1\",\"disk\":\"$data/pool1.img\",\"size\":$((128 * MiB))}"
  [ "$code" -ge 500 ] && grep -q "node n1 (127.0.0.1:[0-9]*) does not answer" <<<"$body" ||
    fail "a pool on an engine that refuses the control plane: $code $body"
  echo "without credentials: $code $(jq -r .detail <<<"$body")"
  "$weft" engine pool list --api "$(api_of 1)" --api-tls-ca "$pki/ca.crt" --api-tls-cert "$pki/alice.crt" \
    --api-tls-key "$pki/alice.key" --api-token-file "$pki/alice.token" --json >"$data/pools.json" ||
    fail "weft engine pool list with credentials"
  [ "$(jq '.pools | length' "$data/pools.json")" = 0 ] || fail "a refused call made a pool: $(cat "$data/pools.json")"
  # A certificate without a token: the engine says so.
  stop_control
  CONTROL_FLAGS="--engine-tls-ca $pki/ca.crt --engine-tls-cert $pki/alice.crt --engine-tls-key $pki/alice.key"
  start_control
  wait_for 30 "n1 online" nodes_online 1
  req PUT /v1/pools/p1 "{\"node\":\"n1\",\"disk\":\"$data/pool1.img\",\"size\":$((128 * MiB))}"
  [ "$code" -ge 500 ] && grep -q "node n1 (127.0.0.1:[0-9]*) refused the control plane's call: .*needs a token" <<<"$body" ||
    fail "a pool through a control plane without a token: $code $body"
  # With them, a whole volume's life.
  stop_control
  CONTROL_FLAGS="--engine-tls-ca $pki/ca.crt --engine-tls-cert $pki/alice.crt --engine-tls-key $pki/alice.key --engine-token-file $pki/bob.token"
  start_control
  start_node 2
  start_node 3
  wait_for 30 "3 nodes online" nodes_online 3
  for i in 1 2 3; do
    expect 201 PUT /v1/pools/p$i "{\"node\":\"n$i\",\"disk\":\"$data/pool$i.img\",\"size\":$((128 * MiB))}"
  done
  expect 201 PUT /v1/volumes/$vol '{"size_bytes":33554432,"replicas":3,"thin":true}'
  expect 200 PUT /v1/volumes/$vol/publish "{\"host_nqn\":\"$host\",\"node\":\"n2\"}"
  pub=$body
  wait_for 20 "volume online" volume_state $vol online
  io write --lba 0 --blocks 2048 --seed 5
  [ "$run_rc" -eq 0 ] || fail "write through the nexus: $run_out"
  io verify --lba 0 --blocks 2048 --seed 5
  [ "$run_rc" -eq 0 ] || fail "verify through the nexus: $run_out"
  expect 204 DELETE /v1/volumes/$vol/publish
  expect 204 DELETE /v1/volumes/$vol
  # Every engine's audit log names the control plane by its certificate and token.
  for i in 1 2 3; do
    grep -qE "audit: cert operator-alice, token bob ipv4:127\.0\.0\.1:[0-9]+ CreatePool name=p$i .* -> ok" \
      "$data/engine$i.log" || fail "n$i: no audit line for CreatePool p$i: $(grep audit: "$data/engine$i.log")"
    grep -qE "audit: cert operator-alice, token bob .* DestroyVolume .* -> ok" "$data/engine$i.log" ||
      fail "n$i: no audit line for the replica's DestroyVolume: $(grep audit: "$data/engine$i.log")"
  done
  grep -qE "audit: cert operator-alice, token bob .* CreateNexus .* -> ok" "$data/engine2.log" ||
    fail "n2: no audit line for CreateNexus: $(grep audit: "$data/engine2.log")"
  grep -qE "audit: anonymous ipv4:" "$data/engine1.log" &&
    fail "n1: a call got through without a client certificate: $(grep audit: "$data/engine1.log")"
  grep -qE "audit: cert operator-alice ipv4:.* ListPools -> failed: .*needs a token" "$data/engine1.log" ||
    fail "n1: the call without a token is not in the audit log: $(grep audit: "$data/engine1.log")"
  ;;
rest_tls)
  # weft-control's REST API over HTTPS with client certificates and tokens
  # (tests/cli/pki.sh); the engines register, and the CLI calls, with theirs.
  source "$here/../cli/pki.sh"
  pki=$data/pki
  make_api_pki "$pki" "$weft" || fail "make_api_pki"
  # Refused at start: an address others reach with neither TLS nor tokens.
  timeout 20 "$control" --listen 0.0.0.0:0 --data-dir "$data/refused" >"$data/refused.log" 2>&1
  r=$?
  [ "$r" = 2 ] && grep -q "would take requests from anyone.*--insecure" "$data/refused.log" ||
    fail "a plain REST API on 0.0.0.0 should be refused: rc=$r $(cat "$data/refused.log")"
  timeout 20 "$control" --listen 0.0.0.0:0 --data-dir "$data/refused" --token-file "$pki/tokens" \
    >"$data/refused.log" 2>&1
  r=$?
  [ "$r" = 2 ] && grep -q "would cross the network in clear text" "$data/refused.log" ||
    fail "tokens over plain HTTP on 0.0.0.0 should be refused: rc=$r $(cat "$data/refused.log")"
  CONTROL_FLAGS="--tls-cert $pki/engine.crt --tls-key $pki/engine.key --tls-client-ca $pki/ca.crt --token-file $pki/tokens"
  control_scheme=https
  curl_opts=(--cacert "$pki/ca.crt" --cert "$pki/alice.crt" --key "$pki/alice.key"
    -H "Authorization: Bearer $(<"$pki/alice.token")")
  start_control
  grep -q "serving https://127.0.0.1:$control_port (https, client certificates required, 2 token(s)" \
    "$data/control.log" || fail "the start-up line should say how the API is secured: $(grep serving "$data/control.log")"
  # Refused: no token, an unknown one (401 problems); no client
  # certificate, another CA's (no TLS session).
  saved=("${curl_opts[@]}")
  curl_opts=(--cacert "$pki/ca.crt" --cert "$pki/alice.crt" --key "$pki/alice.key")
  expect 401 GET /v1/volumes
  grep -q "needs a token" <<<"$body" || fail "401 without a token: $body"
  # A path that would forge an audit line (%0a: a newline, decoded by the server).
  expect 401 GET "/v1/volumes/x%0aaudit:%20token%20admin%20127.0.0.1:1%20DELETE%20/v1/volumes/y%20-%3E%20204"
  grep -q "^audit: token admin" "$data/control.log" && fail "a client forged an audit line"
  grep -qF 'GET /v1/volumes/x\x0aaudit: token admin' "$data/control.log" ||
    fail "the newline should be escaped in the audit line: $(grep 'audit:.*GET /v1/volumes/x' "$data/control.log")"
  curl -s -o /dev/null -D "$data/headers" "${curl_opts[@]}" "$url/v1/volumes"
  grep -qi "^WWW-Authenticate: Bearer" "$data/headers" || fail "no WWW-Authenticate: $(cat "$data/headers")"
  curl_opts+=(-H "Authorization: Bearer $(<"$pki/mallory.key" tr -dc 'A-Za-z0-9' | head -c 43)")
  expect 401 PUT /v1/pools/px '{"node":"n1","disk":"/nonexistent","size":1048576}'
  grep -q "not one this control plane knows" <<<"$body" || fail "401 with an unknown token: $body"
  curl -s -o /dev/null --cacert "$pki/ca.crt" -H "Authorization: Bearer $(<"$pki/alice.token")" "$url/v1/volumes" &&
    fail "a request without a client certificate got an answer"
  curl -s -o /dev/null --cacert "$pki/ca.crt" --cert "$pki/mallory.crt" --key "$pki/mallory.key" \
    -H "Authorization: Bearer $(<"$pki/alice.token")" "$url/v1/volumes" &&
    fail "a request with another CA's client certificate got an answer"
  curl_opts=("${saved[@]}")
  # The engines register over HTTPS with their certificate and token.
  ENGINE_FLAGS="--control-tls-ca $pki/ca.crt --control-tls-cert $pki/alice.crt --control-tls-key $pki/alice.key --control-token-file $pki/bob.token"
  for i in 1 2 3; do start_node $i; done
  wait_for 30 "3 nodes online" nodes_online 3
  # The CLI: refused without the CA, served with the CA, certificate and token.
  cli=(--control "$url" --control-tls-ca "$pki/ca.crt" --control-tls-cert "$pki/alice.crt"
    --control-tls-key "$pki/alice.key" --control-token-file "$pki/alice.token")
  out=$("$weft" node list --control "$url" --control-tls-cert "$pki/alice.crt" --control-tls-key "$pki/alice.key" \
    --control-token-file "$pki/alice.token" 2>&1) && fail "the CLI without the CA: $out"
  grep -q "^weft: no control plane answered at $url" <<<"$out" || fail "the CLI without the CA: $out"
  out=$("$weft" node list "${cli[@]}" --control-token-file "$pki/mallory.key" 2>&1) &&
    fail "a client token file that is not a token: $out"
  for i in 1 2 3; do
    "$weft" pool create p$i --node n$i --disk "$data/pool$i.img" --size 128MiB "${cli[@]}" >/dev/null ||
      fail "weft pool create p$i over HTTPS"
  done
  "$weft" volume create --id "$vol" --size 32MiB --replicas 3 "${cli[@]}" >/dev/null ||
    fail "weft volume create over HTTPS"
  WEFT_CONTROL=$url WEFT_CONTROL_TLS_CA=$pki/ca.crt WEFT_CONTROL_TLS_CERT=$pki/alice.crt \
    WEFT_CONTROL_TLS_KEY=$pki/alice.key WEFT_CONTROL_TOKEN_FILE=$pki/bob.token \
    "$weft" volume list --json >"$data/list.json" || fail "weft volume list from the environment"
  jq -e --arg v "$vol" '[.volumes[] | select(.id == $v)] | length == 1' "$data/list.json" >/dev/null ||
    fail "volume list: $(cat "$data/list.json")"
  "$weft" volume delete "$vol" "${cli[@]}" >/dev/null || fail "weft volume delete over HTTPS"
  # The audit log: every change and every refusal; reads that went through
  # are not there; no token in the log.
  log=$(cat "$data/control.log")
  grep -qE "audit: cert operator-alice, token bob 127\.0\.0\.1:[0-9]+ PUT /v1/nodes/n1 -> 201" <<<"$log" ||
    fail "no audit line for n1's registration: $(grep audit: <<<"$log" | head)"
  grep -qE "audit: cert operator-alice, token alice 127\.0\.0\.1:[0-9]+ PUT /v1/volumes/$vol -> 201" <<<"$log" ||
    fail "no audit line for the volume's create: $(grep audit: <<<"$log" | tail)"
  grep -qE "audit: cert operator-alice, token alice .* DELETE /v1/volumes/$vol -> 204" <<<"$log" ||
    fail "no audit line for the delete: $(grep audit: <<<"$log" | tail)"
  grep -qE "audit: cert operator-alice 127\.0\.0\.1:[0-9]+ GET /v1/volumes -> 401" <<<"$log" ||
    fail "no audit line for the refused GET: $(grep audit: <<<"$log" | head)"
  grep -qE "audit: cert operator-alice 127\.0\.0\.1:[0-9]+ PUT /v1/pools/px -> 401" <<<"$log" ||
    fail "no audit line for the refused PUT: $(grep audit: <<<"$log" | head)"
  grep -qE "audit: .* GET /v1/volumes -> 200" <<<"$log" && fail "a read that went through is audited"
  for t in "$(<"$pki/alice.token")" "$(<"$pki/bob.token")"; do
    grep -qF "$t" "$data/control.log" && fail "a token is in the control plane's log"
  done
  for i in 1 2 3; do
    grep -qF "$(<"$pki/bob.token")" "$data/engine$i.log" && fail "a token is in n$i's log"
  done
  ;;
*)
  echo "unknown case $case_name"
  exit 2
  ;;
esac
echo "ok ($case_name)"
