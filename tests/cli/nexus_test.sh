#!/usr/bin/env bash
# The `weft engine nexus` commands (and `weft engine volume inject-fault`) against real
# weft-engine processes and their gRPC API, with data through NVMe/TCP, one
# case per run:
#   nexus_test.sh WEFT ENGINE CASE
# Cases:
#   lifecycle  create over three pool volumes, list/get, share, I/O, unshare,
#              destroy, the label left on the children, re-create: same data
#   faults     a child's writes fail (inject-fault): I/O goes on, the child is
#              faulted; `nexus rebuild` brings it back with a partial rebuild
#   refusals   exit 1 and the engine's sentence for what it refuses; exit 2
#              for usage; nothing left behind
#   remote     a second engine holds a child over NVMe/TCP; it is killed and
#              restarted: the nexus goes on, then rebuilds the child by itself
#   remote_auth the second engine requires DH-HMAC-CHAP (bidirectional) from
#              the first's host NQN, which holds the secrets: the nexus is made
#              and serves; with another secret required, a new one is refused
#   remote_tls the second engine requires TLS; the first holds a TLS key
#              (--tls-key-file) that the second holds for its NQN: the nexus
#              reaches its child over TLS; without the key, a new one is refused
# A wrong answer the engine gives where the rest of the case can go on is
# recorded (`wrong`) and fails the case at its end, so that one such bug
# does not hide the checks after it.
set -u
weft=$1
engine=$2
case_name=$3
source "$(dirname "$0")/engine.sh"

wrongs=()
fail() {
  echo "FAIL ($case_name): $*"
  for w in "${wrongs[@]}"; do echo "FAIL ($case_name): $w"; done
  [ -f "$data/engine.log" ] && { echo "--- engine log"; tail -40 "$data/engine.log"; }
  [ -n "${data2:-}" ] && [ -f "$data2/engine.log" ] &&
    { echo "--- engine 2 log"; tail -20 "$data2/engine.log"; }
  exit 1
}
# wrong MESSAGE: records a failed check and goes on.
wrong() {
  echo "WRONG ($case_name): $*"
  wrongs+=("$*")
}
# wf ARGS...: runs weft (bounded); $out its stdout, $err its stderr, $rc its exit code.
wf() {
  engine_args "$@"
  out=$(timeout 60 "$weft" "${args[@]}" 2>"$data/stderr")
  rc=$?
  err=$(<"$data/stderr")
}
# ok ARGS...: weft ARGS must succeed.
ok() {
  wf "$@"
  [ "$rc" -eq 0 ] || fail "weft $* -> rc=$rc: $err$out"
}
# refused CODE PATTERN ARGS...: weft ARGS must exit 1 with the engine's
# gRPC status CODE (shown by -v) and a sentence "weft: ..." matching
# PATTERN (an extended regex, any case). SOFT=1: a wrong status is
# recorded (`wrong`) instead of ending the case.
refused() {
  local code=$1 pat=$2
  shift 2
  wf -v "$@"
  [ "$rc" -eq 1 ] || fail "weft $* -> rc=$rc, want 1: $err$out"
  local sentence
  sentence=$(head -1 <<<"$err")
  grep -qiE "^weft: .*${pat}" <<<"$sentence" || fail "weft $*: the sentence should say '$pat': $err"
  if [ -n "${SOFT:-}" ]; then
    grep -q "gRPC status $code " <<<"$err" || wrong "weft $*: want status $code: $err"
  else
    grep -q "gRPC status $code " <<<"$err" || fail "weft $*: want status $code: $err"
  fi
}
# usage PATTERN ARGS...: weft ARGS must exit 2 with a sentence matching PATTERN.
usage() {
  local pat=$1
  shift
  wf "$@"
  [ "$rc" -eq 2 ] && grep -qiE "^weft: .*${pat}" <<<"$err" || fail "weft $* -> rc=$rc: $err$out"
}
# Starts engine 1 and points weft at its API ($WEFT_API).
start() {
  start_engine "$engine" "$@"
  [ -n "$api_port" ] || fail "the engine has no --api-listen"
  export WEFT_API=127.0.0.1:$api_port
}
# nvme CMD NQN ARGS...: weft nvme on engine 1's first NVMe/TCP listener
# (NVME_PORT: another port); $run_out, $run_rc.
nvme() {
  local cmd=$1 sub=$2
  shift 2
  run_out=$(timeout 60 "$weft" nvme "$cmd" -a 127.0.0.1 -s "${NVME_PORT:-$port}" -n "$sub" \
    --timeout 10 "$@" 2>&1)
  run_rc=$?
}
# put NQN LBA FILE: writes FILE at LBA. check NQN LBA FILE: reads it back, compares.
put() {
  nvme write "$1" --lba "$2" --blocks $(($(stat -c %s "$3") / 512)) -i "$3"
  [ "$run_rc" -eq 0 ] || fail "write $3 at LBA $2 of $1: $run_out"
}
check() {
  nvme read "$1" --lba "$2" --blocks $(($(stat -c %s "$3") / 512)) -o "$data/back.bin"
  [ "$run_rc" -eq 0 ] || fail "read LBA $2 of $1: $run_out"
  cmp -s "$3" "$data/back.bin" || fail "the data at LBA $2 of $1 is not $3"
}
# jqe FILTER [jq args...]: $out must satisfy FILTER.
jqe() {
  local filter=$1
  shift
  jq -e "$@" "$filter" <<<"$out" >/dev/null || fail "JSON is not $filter: $out"
}
# rand NAME KiB: a file of random bytes.
rand() {
  head -c $(($2 * 1024)) /dev/urandom >"$data/$1"
}

MiB=$((1 << 20))
uuid_re='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'

# A pool p on a 256 MiB file with 1 MiB clusters, and volumes of SIZE.
make_pool() {
  ok pool create p "$data/pool.img" --size 256MiB --cluster-size 1MiB
}
volumes() {
  local size=$1
  shift
  for v in "$@"; do ok volume create p "$v" "$size"; done
}

# ---- a second engine (remote case) ---------------------------------------------------
data2=
e2_pid=
stop_engine2() {
  if [ -n "$e2_pid" ] && kill -0 "$e2_pid" 2>/dev/null; then
    kill -TERM "$e2_pid"
    wait "$e2_pid" 2>/dev/null
  fi
  e2_pid=
}
trap 'stop_engine2; stop_engine; rm -rf "$data"' EXIT
# start_engine2: engine 2 on $data2 (its --data-dir: its pools, shares and
# listeners come back on restart); $api2 its API address.
# replica_engine [engine flags...]: a second engine (started with the flags)
# with a listener, a pool and two volumes shared to engine 1's host NQN:
# sets host1, data2, api2, port2 and the children's URIs remote, remote2.
replica_engine() {
  host1=$(cat "$data/host-nqn")
  data2=$data/engine2
  mkdir -p "$data2"
  start_engine2 "$@"
  ok listener add 127.0.0.1:0 --api "$api2" --json
  port2=$(jq -r .address <<<"$out" | sed 's/.*://')
  ok pool create q "$data2/q.img" --size 128MiB --cluster-size 1MiB --api "$api2"
  ok volume create q r 40MiB --api "$api2"
  ok volume create q r2 40MiB --api "$api2"
  ok volume share q r --host "$host1" --api "$api2" --json
  remote=nvmf://127.0.0.1:$port2/$(jq -r .nqn <<<"$out")
  ok volume share q r2 --host "$host1" --api "$api2" --json
  remote2=nvmf://127.0.0.1:$port2/$(jq -r .nqn <<<"$out")
}

# nexus_over_remote: a nexus over local volume a and $remote, shared, with
# in1.bin written and read back through it: sets uuid and nqn.
nexus_over_remote() {
  make_pool
  volumes 40MiB a b
  ok nexus create --size 32MiB --child pool://p/a --child "$remote" --minority-policy proceed --json
  jqe '.state == "online" and all(.children[]; .state == "online")'
  uuid=$(jq -r .uuid <<<"$out")
  ok nexus share "$uuid" --any-host
  nqn=nqn.2026-11.io.weft:nexus:$uuid
  rand in1.bin 512
  put "$nqn" 0 "$data/in1.bin"
  check "$nqn" 0 "$data/in1.bin"
}

start_engine2() {
  local log=$data2/engine.log
  echo "--- start" >>"$log"
  local before
  before=$(grep -c 'management API on' "$log")
  "$engine" --data-dir "$data2" --cores 0 --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
    --metrics-listen none "$@" >>"$log" 2>&1 &
  e2_pid=$!
  for _ in $(seq 200); do
    [ "$(grep -c 'management API on' "$log")" -gt "$before" ] && break
    kill -0 "$e2_pid" 2>/dev/null || break
    sleep 0.05
  done
  api2=127.0.0.1:$(grep -o 'management API on 127.0.0.1:[0-9]*' "$log" | tail -1 | sed 's/.*://')
  [ "$(grep -c 'management API on' "$log")" -gt "$before" ] || fail "engine 2 did not start"
}

case "$case_name" in
  lifecycle)
    start
    make_pool
    volumes 33MiB a b c
    ok nexus create --size 32MiB --child pool://p/a --child pool://p/b --child pool://p/c \
      --io-timeout-ms 4000 --rebuild-rate 100MiB/s
    grep -qE "^nexus $uuid_re created: 32.00 MiB, online, generation [0-9]+, 3/3 children online$" \
      <<<"$out" || fail "create: $out"
    grep -qE '^uri +uuid +state +reason +where +rebuild$' <<<"$out" || fail "children header: $out"
    for v in a b c; do
      grep -qE "^pool://p/$v +$uuid_re +online +- +local +-$" <<<"$out" || fail "child $v: $out"
    done
    uuid=$(sed -nE "s/^nexus ($uuid_re) created.*/\\1/p" <<<"$out")
    nqn=nqn.2026-11.io.weft:nexus:$uuid

    ok nexus get "$uuid" --json
    jqe '.uuid == $u and .size_bytes == 33554432 and .state == "online" and .generation >= 1 and
         .waiting == "" and .share_nqn == "" and .region_size > 0 and
         ([.children[].uri] == ["pool://p/a", "pool://p/b", "pool://p/c"]) and
         all(.children[]; .state == "online" and .reason == "" and .local and
             (.reconnecting | not) and (.uuid | test("^[0-9a-f-]{36}$")))' --arg u "$uuid"
    jqe '.options == {"io_timeout_ms": 4000, "rebuild_rate": 104857600,
                      "minority_policy": "wait", "auto_rebuild": true}'
    jqe 'keys_unsorted == ["uuid", "size_bytes", "state", "generation", "children", "share_nqn",
                           "options", "waiting", "rebuild_history", "dirty_regions", "region_size"]'
    gen=$(jq .generation <<<"$out")
    child_ids=$(jq -c '[.children[].uuid]' <<<"$out")
    ok nexus get "$uuid"
    grep -qx "nexus $uuid" <<<"$out" || fail "get title: $out"
    grep -qE '^  state +online$' <<<"$out" || fail "get state: $out"
    grep -qE "^  generation +$gen$" <<<"$out" || fail "get generation: $out"
    grep -qE '^  dirty +[0-9]+ region\(s\) of [0-9.]+ [KM]iB$' <<<"$out" || fail "get dirty: $out"
    grep -qE '^  options +I/O timeout 4000 ms, rebuild rate 100.00 MiB/s, minority policy wait, auto rebuild on$' \
      <<<"$out" || fail "get options: $out"
    grep -qE "^pool://p/b +$uuid_re +online +- +local +-$" <<<"$out" || fail "get child: $out"
    ok nexus list
    grep -qE '^uuid +size +state +generation +children +shared as +rebuild$' <<<"$out" ||
      fail "list header: $out"
    grep -qE "^$uuid +32.00 MiB +online +$gen +3/3 online +- +-$" <<<"$out" || fail "list row: $out"
    ok nexus list --json
    jqe '[.nexuses[].uuid] == [$u]' --arg u "$uuid"

    # Shared: hosts see one 32 MiB disk; data goes through.
    ok nexus share "$uuid" --any-host
    grep -qx "nexus $uuid shared as $nqn, namespace 1; any host may connect" <<<"$out" ||
      fail "share: $out"
    grep -qx "  nvme connect -t tcp -a 127.0.0.1 -s $port -n $nqn" <<<"$out" ||
      fail "connect line: $out"
    ok nexus list
    grep -qE "^$uuid +32.00 MiB +online +$gen +3/3 online +$nqn +-$" <<<"$out" ||
      fail "list row shared: $out"
    nvme identify "$nqn" --json
    [ "$run_rc" -eq 0 ] && [ "$(jq -r '.namespaces[0].size_bytes' <<<"$run_out")" = $((32 * MiB)) ] ||
      fail "identify: $run_out"
    nvme verify "$nqn" --lba 0 --blocks 2048
    [ "$run_rc" -eq 0 ] || fail "verify: $run_out"
    rand in.bin 512
    put "$nqn" 8192 "$data/in.bin"
    check "$nqn" 8192 "$data/in.bin"
    rand last.bin 64
    put "$nqn" $((32 * MiB / 512 - 128)) "$data/last.bin"
    # The nexus on the metrics page: its state, each child's, the bitmap.
    if [ -n "${metrics_port:-}" ]; then
      m=$(curl -s "http://127.0.0.1:$metrics_port/metrics")
      grep -qx "weft_nexus_state{nexus=\"$uuid\",state=\"online\"} 1" <<<"$m" ||
        fail "metrics: no online weft_nexus_state for $uuid"
      grep -qx "weft_nexus_child_state{nexus=\"$uuid\",child=\"pool://p/b\",state=\"online\"} 1" \
        <<<"$m" || fail "metrics: no child state"
      grep -qE "^weft_nexus_dirty_regions\{nexus=\"$uuid\"\} [1-9]" <<<"$m" ||
        fail "metrics: no dirty regions after writes"
    fi

    ok nexus unshare "$uuid"
    grep -qx "nexus $uuid is no longer shared" <<<"$out" || fail "unshare: $out"
    nvme identify "$nqn"
    [ "$run_rc" -ne 0 ] || fail "still served after unshare: $run_out"
    ok nexus destroy "$uuid"
    grep -q "^nexus $uuid destroyed: its children keep their data and label" <<<"$out" ||
      fail "destroy: $out"
    ok nexus list
    grep -q "^no nexuses" <<<"$out" || fail "list after destroy: $out"

    # The children keep the label: clean, every member in sync.
    ok nexus label pool://p/a
    grep -qx "pool://p/a holds the label of nexus $uuid" <<<"$out" || fail "label: $out"
    grep -qE '^  clean +yes' <<<"$out" || fail "label clean: $out"
    grep -qE '^  size +32.00 MiB$' <<<"$out" || fail "label size: $out"
    grep -qE "^$uuid_re +in-sync +\\(this child\\)$" <<<"$out" || fail "label members: $out"
    for v in a b c; do
      ok nexus label "pool://p/$v" --json
      jqe '.present and .nexus_uuid == $u and .clean and .size_bytes == 33554432 and
           .generation >= $g and .region_size > 0 and
           ([.members[].uuid] | sort) == ($ids | sort) and all(.members[]; .state == "in-sync") and
           .child_uuid == $ids[$i]' \
        --arg u "$uuid" --argjson g "$gen" --argjson ids "$child_ids" --argjson i "$(($(printf '%d' "'$v") - 97))"
    done
    ok volume create p blank 8MiB
    ok nexus label pool://p/blank
    grep -qx "pool://p/blank has no nexus label: it is a new child to any nexus" <<<"$out" ||
      fail "blank label: $out"
    ok nexus label pool://p/blank --json
    jqe '.present == false'

    # Re-created from the labels (no size): same children, same data.
    ok nexus create --uuid "$uuid" --child pool://p/a --child pool://p/b --child pool://p/c
    grep -qE "^nexus $uuid re-created from its children's labels: 32.00 MiB, online, generation [0-9]+, 3/3 children online$" \
      <<<"$out" || fail "re-create: $out"
    ok nexus get "$uuid" --json
    jqe '.state == "online" and .size_bytes == 33554432 and .generation > $g and
         [.children[].uuid] == $ids' --argjson g "$gen" --argjson ids "$child_ids"
    ok nexus share "$uuid" --any-host
    check "$nqn" 8192 "$data/in.bin"
    check "$nqn" $((32 * MiB / 512 - 128)) "$data/last.bin"
    nvme verify "$nqn" --lba 100 --blocks 64 --seed 7
    [ "$run_rc" -eq 0 ] || fail "verify after re-create: $run_out"
    ;;

  faults)
    start
    make_pool
    volumes 40MiB a b c
    # Slow rebuilds (1 MiB/s) so that progress shows.
    ok nexus create --size 32MiB --child pool://p/a --child pool://p/b --child pool://p/c \
      --rebuild-rate 1MiB --json
    uuid=$(jq -r .uuid <<<"$out")
    nqn=nqn.2026-11.io.weft:nexus:$uuid
    ok nexus share "$uuid" --any-host
    rand in1.bin 1024
    put "$nqn" 0 "$data/in1.bin"

    ok volume inject-fault p c --ops write
    grep -qx "volume p/c: write operations now fail with errno 5 (Input/output error) until cleared (--ops none)" \
      <<<"$out" || fail "inject-fault: $out"
    # The write succeeds: c is retired, a and b have it.
    rand in2.bin 2048
    put "$nqn" 8192 "$data/in2.bin"
    ok nexus get "$uuid" --json
    jqe '.state == "degraded" and
         [.children[] | {uri, state, reason}] == [
           {"uri": "pool://p/a", "state": "online", "reason": ""},
           {"uri": "pool://p/b", "state": "online", "reason": ""},
           {"uri": "pool://p/c", "state": "faulted", "reason": "io error"}] and
         .dirty_regions > 0'
    ok nexus get "$uuid"
    grep -qE '^  state +degraded$' <<<"$out" || fail "get state: $out"
    grep -qE "^pool://p/c +$uuid_re +faulted +io error +local +-$" <<<"$out" || fail "get c: $out"
    ok nexus list
    grep -qE "^$uuid +32.00 MiB +degraded +[0-9]+ +2/3 online +$nqn +-$" <<<"$out" ||
      fail "list degraded: $out"
    check "$nqn" 8192 "$data/in2.bin"

    # Still failing: the rebuild fails, exit 1 with its outcome.
    wf nexus rebuild "$uuid" pool://p/c
    [ "$rc" -eq 1 ] && grep -qE "^weft: .*rebuild of pool://p/c failed: .*pool://p/c" <<<"$err" ||
      fail "rebuild onto a failing child: rc=$rc $err $out"
    ok nexus get "$uuid" --json
    jqe '.children[2].state == "faulted" and
         (.rebuild_history | length) >= 1 and
         (.rebuild_history[-1] | .child == "pool://p/c" and (.outcome | startswith("failed")))'

    ok volume inject-fault p c --ops none
    grep -qx "volume p/c: fault cleared, its I/O works again" <<<"$out" || fail "clear: $out"
    SECONDS=0
    wf nexus rebuild "$uuid" pool://p/c
    took=$SECONDS
    [ "$rc" -eq 0 ] || fail "rebuild: rc=$rc $err $out"
    grep -qx "rebuilding pool://p/c of nexus $uuid" <<<"$out" || fail "rebuild start: $out"
    # Not a terminal: one line a second.
    progress=$(grep -cE '^[0-9]{2}:[0-9]{2}:[0-9]{2} pool://p/c: partial rebuild [0-9]+% \([0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B\)' <<<"$out")
    [ "$progress" -ge 1 ] || fail "no progress lines: $out"
    [ "$took" -lt 2 ] || [ "$progress" -ge 2 ] || fail "one progress line for $took s: $out"
    grep -qE '^partial rebuild of pool://p/c: done, [0-9.]+ [KM]iB copied in ' <<<"$out" ||
      fail "rebuild end: $out"
    grep -qx "pool://p/c is online (in sync); nexus $uuid is online" <<<"$out" ||
      fail "rebuild online: $out"
    ok nexus get "$uuid" --json
    jqe '.state == "online" and all(.children[]; .state == "online") and
         (.rebuild_history[-1] | .child == "pool://p/c" and .kind == "partial" and
          .outcome == "done" and .bytes >= 2097152 and .bytes < 33554432 and
          .end_unix_ms >= .start_unix_ms)'
    ok nexus get "$uuid"
    grep -qE '^rebuild history:$' <<<"$out" || fail "history title: $out"
    grep -qE '^pool://p/c +partial +[0-9-]+ [0-9:]+ +[0-9.]+ m?s +[0-9.]+ [KM]iB +done$' <<<"$out" ||
      fail "history row: $out"
    ok nexus rebuild "$uuid" pool://p/c
    grep -qx "pool://p/c is online (in sync): nothing to rebuild" <<<"$out" || fail "again: $out"

    # c alone serves reads: it holds what it missed.
    ok nexus fault-child "$uuid" pool://p/a
    grep -q "^pool://p/a of nexus $uuid is faulted" <<<"$out" || fail "fault-child: $out"
    grep -qE "^pool://p/a +$uuid_re +faulted +faulted by request +local +-$" <<<"$out" ||
      fail "fault-child table: $out"
    b_id=$(jq -r '.children[1].uuid' <<<"$(timeout 30 "$weft" engine nexus get "$uuid" --json)")
    ok nexus fault-child "$uuid" "${b_id^^}"  # the child's UUID, any case
    check "$nqn" 0 "$data/in1.bin"
    check "$nqn" 8192 "$data/in2.bin"
    ok nexus online-child "$uuid" pool://p/a
    grep -q "^pool://p/a of nexus $uuid is coming back" <<<"$out" || fail "online-child: $out"
    ok nexus rebuild "$uuid" "$b_id" --no-wait
    grep -qx "pool://p/b of nexus $uuid is being rebuilt (follow it: weft engine nexus rebuild $uuid pool://p/b --watch)" \
      <<<"$out" || fail "no-wait: $out"
    ok nexus rebuild "$uuid" --watch
    ok nexus get "$uuid" --json
    jqe '.state == "online" and all(.children[]; .state == "online") and
         ([.rebuild_history[] | select(.outcome == "done") | .child] | index("pool://p/a") and
          index("pool://p/b"))'
    check "$nqn" 0 "$data/in1.bin"
    check "$nqn" 8192 "$data/in2.bin"
    ok nexus rebuild "$uuid" --watch
    grep -q "^nexus $uuid: no rebuild running (32.00 MiB, online" <<<"$out" || fail "watch idle: $out"
    ;;

  refusals)
    start
    make_pool
    volumes 40MiB a b
    ok volume create p small 32MiB
    ok nexus create --size 32MiB --child pool://p/a --json
    uuid=$(jq -r .uuid <<<"$out")
    other=5d2c2a0e-0000-4000-8000-000000000001
    refused NOT_FOUND "no nexus $other" nexus get "$other"
    refused NOT_FOUND "no nexus $other" nexus destroy "$other"
    refused NOT_FOUND "no nexus $other" nexus add-child "$other" pool://p/b
    refused NOT_FOUND "no nexus $other" nexus share "$other" --any-host
    refused INVALID_ARGUMENT '"not-a-uuid" is not a UUID' nexus get not-a-uuid
    refused INVALID_ARGUMENT '"not-a-uuid" is not a UUID' nexus unshare not-a-uuid
    refused INVALID_ARGUMENT '"nope" is not a UUID' nexus create --uuid nope --size 32MiB --child pool://p/b
    refused INVALID_ARGUMENT '"x" is not a UUID' nexus create --size 32MiB --child pool://p/b --child-uuid x
    # Child URIs that do not parse.
    refused INVALID_ARGUMENT 'is not a child URI: a child is pool://POOL/VOLUME or nvmf://' \
      nexus create --size 32MiB --child foo://bar
    refused INVALID_ARGUMENT 'no volume' nexus create --size 32MiB --child pool://p
    refused INVALID_ARGUMENT 'port' nexus create --size 32MiB --child nvmf://127.0.0.1/nqn.2026-11.io.weft:x
    refused INVALID_ARGUMENT 'not an NQN' nexus create --size 32MiB --child nvmf://127.0.0.1:4420/foo
    refused INVALID_ARGUMENT 'is not a child URI' nexus add-child "$uuid" p/b
    refused INVALID_ARGUMENT 'is not a child URI' nexus label bogus
    # Too small: 32 MiB of data needs 33 MiB.
    refused INVALID_ARGUMENT 'pool://p/small holds 33554432 bytes; .*needs 34603008' \
      nexus create --size 32MiB --child pool://p/b --child pool://p/small
    refused INVALID_ARGUMENT 'pool://p/small holds 33554432 bytes' nexus add-child "$uuid" pool://p/small
    refused INVALID_ARGUMENT 'not a multiple of 512' nexus create --size 1000 --child pool://p/b
    refused INVALID_ARGUMENT 'needs a size' nexus create --child pool://p/b
    # Duplicates.
    refused ALREADY_EXISTS 'pool://p/b is given twice' nexus create --size 32MiB --child pool://p/b --child pool://p/b
    refused FAILED_PRECONDITION 'pool://p/a is a child of nexus .* already' nexus add-child "$uuid" pool://p/a
    refused FAILED_PRECONDITION 'pool://p/a is a child of nexus .* already' nexus create --size 32MiB --child pool://p/a
    refused ALREADY_EXISTS "nexus $uuid exists" nexus create --uuid "$uuid" --child pool://p/b
    # The last in-sync child stays.
    refused FAILED_PRECONDITION 'pool://p/a is the last in-sync child' nexus remove-child "$uuid" pool://p/a
    refused FAILED_PRECONDITION 'pool://p/a is the last in-sync child' nexus fault-child "$uuid" pool://p/a
    refused NOT_FOUND 'pool://p/zz is not a child of this nexus' nexus remove-child "$uuid" pool://p/zz
    refused INVALID_ARGUMENT 'pool://p/a is online already' nexus online-child "$uuid" pool://p/a
    refused FAILED_PRECONDITION 'pool://p/a is the last in-sync child' nexus repoint-child "$uuid" pool://p/a nvmf://127.0.0.1:4420/nqn.x:y
    refused NOT_FOUND 'pool://p/zz is not a child of this nexus' nexus repoint-child "$uuid" pool://p/zz nvmf://127.0.0.1:4420/nqn.x:y
    refused INVALID_ARGUMENT 'is not a child URI' nexus repoint-child "$uuid" pool://p/a tcp://nowhere
    refused FAILED_PRECONDITION 'not waiting for an arbiter' nexus arbitrate "$uuid" --allow
    refused FAILED_PRECONDITION 'not waiting for an arbiter' nexus arbitrate "$uuid" --deny
    # Children that do not exist: NOT_FOUND, as the API says for an unknown
    # pool or volume (and nexus.h: ENOENT for "no such local volume").
    SOFT=1 refused NOT_FOUND 'pool "p" has no volume "nosuch"' nexus create --size 32MiB --child pool://p/nosuch
    SOFT=1 refused NOT_FOUND 'no pool named "nopool"' nexus create --size 32MiB --child pool://nopool/x
    SOFT=1 refused NOT_FOUND 'pool "p" has no volume "nosuch"' nexus add-child "$uuid" pool://p/nosuch
    refused FAILED_PRECONDITION 'pool://p/a is a child of nexus' nexus label pool://p/a
    refused NOT_FOUND '' volume inject-fault p nosuch --ops read
    # A shared nexus stays; a shared volume is no child.
    ok nexus share "$uuid" --any-host
    refused FAILED_PRECONDITION "nexus $uuid is shared as nqn.2026-11.io.weft:nexus:$uuid: unshare it first" \
      nexus destroy "$uuid"
    refused ALREADY_EXISTS "shared as .* already" nexus share "$uuid" --nqn nqn.2026-11.io.weft:elsewhere --any-host
    refused INVALID_ARGUMENT 'not a valid NQN' nexus share "$uuid" --nqn not-an-nqn --any-host
    ok volume share p b --any-host
    refused FAILED_PRECONDITION 'pool://p/b is shared as' nexus add-child "$uuid" pool://p/b
    ok volume unshare p b
    ok nexus unshare "$uuid"
    refused NOT_FOUND "nexus $uuid is not shared" nexus unshare "$uuid"
    # Usage: exit 2 before asking the engine.
    usage 'say the arbiter' nexus arbitrate "$uuid"
    usage 'say the arbiter' nexus arbitrate "$uuid" --allow --deny
    usage 'say which hosts may connect' nexus share "$uuid"
    usage '--size "12x" is not a size' nexus create --size 12x --child pool://p/b
    usage '--rebuild-rate "fast" is not a rate' nexus create --size 32MiB --child pool://p/b --rebuild-rate fast
    usage 'say which child' nexus rebuild "$uuid"
    wf nexus rebuild "$uuid" pool://p/zz
    [ "$rc" -eq 1 ] && grep -q "^weft: pool://p/zz is not a child of nexus $uuid" <<<"$err" ||
      fail "rebuild of no child: rc=$rc $err"
    # Nothing was left behind: one nexus, b carries no label.
    ok nexus list --json
    jqe '[.nexuses[] | {uuid, state, children: [.children[].uri]}] ==
         [{"uuid": $u, "state": "online", "children": ["pool://p/a"]}]' --arg u "$uuid"
    ok nexus label pool://p/b --json
    jqe '.present == false'
    ok nexus destroy "$uuid"
    refused NOT_FOUND "no nexus $uuid" nexus get "$uuid"
    ;;

  remote)
    start
    data2=$data/engine2
    mkdir -p "$data2"
    start_engine2
    # Engine 2: a volume shared to any host on a listener it keeps (the
    # port comes back on restart, as the child URI needs).
    ok listener add 127.0.0.1:0 --api "$api2" --json
    port2=$(jq -r .address <<<"$out" | sed 's/.*://')
    ok pool create q "$data2/q.img" --size 128MiB --cluster-size 1MiB --api "$api2"
    ok volume create q r 40MiB --api "$api2"
    ok volume share q r --any-host --api "$api2" --json
    nqn2=$(jq -r .nqn <<<"$out")
    remote=nvmf://127.0.0.1:$port2/$nqn2

    # Engine 1: a local child and the remote one. Two children: losing one
    # leaves no majority, so the nexus is told to go on (proceed).
    make_pool
    volumes 40MiB a
    ok nexus create --size 32MiB --child pool://p/a --child "$remote" --minority-policy proceed --json
    jqe '.state == "online" and .options.minority_policy == "proceed" and
         [.children[] | {uri, state, local}] == [
           {"uri": "pool://p/a", "state": "online", "local": true},
           {"uri": $r, "state": "online", "local": false}]' --arg r "$remote"
    uuid=$(jq -r .uuid <<<"$out")
    remote_id=$(jq -r '.children[1].uuid' <<<"$out")
    nqn=nqn.2026-11.io.weft:nexus:$uuid
    ok nexus get "$uuid"
    grep -qE "^nvmf://127.0.0.1:$port2/$nqn2 +$remote_id +online +- +remote +-$" <<<"$out" ||
      fail "remote row: $out"
    ok nexus share "$uuid" --any-host
    rand in1.bin 1024
    put "$nqn" 0 "$data/in1.bin"
    check "$nqn" 0 "$data/in1.bin"
    nvme verify "$nqn" --lba 4096 --blocks 256
    [ "$run_rc" -eq 0 ] || fail "verify: $run_out"

    # The label on the remote child, read from engine 1 over NVMe/TCP.
    ok nexus label "$remote" --json
    jqe '.present and .nexus_uuid == $u and .child_uuid == $c and (.clean | not) and
         .size_bytes == 33554432 and (.members | length) == 2 and
         all(.members[]; .state == "in-sync")' --arg u "$uuid" --arg c "$remote_id"
    ok nexus label "$remote"
    grep -qx "$remote holds the label of nexus $uuid" <<<"$out" || fail "remote label: $out"

    # Engine 2 dies: writes go on with the local child.
    kill -9 "$e2_pid"
    wait "$e2_pid" 2>/dev/null
    e2_pid=
    rand in2.bin 1024
    put "$nqn" 8192 "$data/in2.bin"
    check "$nqn" 8192 "$data/in2.bin"
    for _ in $(seq 50); do
      ok nexus get "$uuid" --json
      jq -e '.children[1].reconnecting' <<<"$out" >/dev/null && break
      sleep 0.1
    done
    jqe '.state == "degraded" and .children[0].state == "online" and
         (.children[1] | .state == "faulted" and .reconnecting and (.local | not))'
    reason=$(jq -r '.children[1].reason' <<<"$out")
    [ "$reason" = unreachable ] ||
      wrong "a remote child whose engine was killed is faulted with reason '$reason', want 'unreachable'"
    ok nexus get "$uuid"
    grep -qE "^nvmf://127.0.0.1:$port2/$nqn2 +$remote_id +faulted +[a-z ]+, reconnecting +remote +-$" \
      <<<"$out" || fail "remote row while away: $out"
    # It is rebuilt by itself when it answers: rebuild says so and watches.
    wf nexus rebuild "$uuid" "$remote" --no-wait
    [ "$rc" -eq 0 ] && grep -q "^$remote does not answer yet: it is being reconnected" <<<"$out" ||
      fail "rebuild of a reconnecting child: rc=$rc $err $out"

    # Engine 2 is back (same data dir: its pool, share and listener): the
    # nexus reconnects and rebuilds the child, a partial rebuild.
    start_engine2
    tac "$data2/engine.log" | sed '/^--- start$/q' | grep -q "listening on 127.0.0.1:$port2 " ||
      fail "engine 2 lost its listener"
    SECONDS=0
    wf nexus rebuild "$uuid" "$remote"
    [ "$rc" -eq 0 ] || fail "waiting for the remote child: rc=$rc $err $out"
    [ "$SECONDS" -lt 30 ] || fail "the remote child took $SECONDS s to come back"
    # (It may be back and rebuilt already.)
    grep -qxE "$remote is online \(in sync\)(; nexus $uuid is online|: nothing to rebuild)" <<<"$out" ||
      fail "back: $out"
    ok nexus get "$uuid" --json
    jqe '.state == "online" and all(.children[]; .state == "online" and (.reconnecting | not)) and
         (.rebuild_history[-1] | .child == $r and .kind == "partial" and .outcome == "done" and
          .bytes >= 1048576 and .bytes < 33554432)' --arg r "$remote"
    grep -q "partial rebuild of $remote: done" "$data/engine.log" ||
      fail "engine 1's log shows no partial rebuild"
    check "$nqn" 0 "$data/in1.bin"
    check "$nqn" 8192 "$data/in2.bin"
    # The remote child itself holds what it missed (its data starts 1 MiB in).
    NVME_PORT=$port2 check "$nqn2" $((8192 + 2048)) "$data/in2.bin"
    NVME_PORT=$port2 check "$nqn2" 2048 "$data/in1.bin"
    ok nexus unshare "$uuid"
    ok nexus destroy "$uuid"
    ok nexus label "$remote" --json
    jqe '.present and .clean and .nexus_uuid == $u' --arg u "$uuid"
    ;;

  remote_auth)
    # Engine 1 holds DH-HMAC-CHAP secrets as a host; engine 2 requires them
    # (bidirectional) from engine 1's host NQN for its shares.
    for k in host ctrl other; do
      timeout 10 "$weft" key gen-dhchap --hmac sha256 -o "$data/$k.key" >/dev/null ||
        fail "weft key gen-dhchap"
    done
    start --dhchap-secret-file "$data/host.key" --dhchap-ctrl-secret-file "$data/ctrl.key"
    grep -q "it authenticates with DH-HMAC-CHAP where asked" "$data/engine.log" ||
      fail "engine 1 does not say it holds a secret"
    replica_engine
    ok host-key set "$host1" --key-file "$data/host.key" --ctrl-key-file "$data/ctrl.key" --api "$api2"
    nexus_over_remote
    grep -q "$host1 authenticated on queue 0 .*bidirectional" "$data2/engine.log" ||
      fail "engine 2 did not authenticate engine 1 both ways: $(grep -i auth "$data2/engine.log" | tail -3)"
    # Engine 2 now wants another secret: a new nexus over its other volume
    # is refused (the child cannot authenticate), and says why.
    ok host-key set "$host1" --key-file "$data/other.key" --api "$api2"
    wf nexus create --size 32MiB --child pool://p/b --child "$remote2" --minority-policy proceed
    [ "$rc" -ne 0 ] || fail "a nexus over a child whose engine refuses our secret was made: $out"
    grep -q "authentication (DH-HMAC-CHAP) of this engine" <<<"$err" || wrong "the refusal does not say it is about authentication: $err"
    # The first nexus's connection, authenticated before, keeps working.
    check "$nqn" 0 "$data/in1.bin"
    for f in host ctrl other; do
      b64=$(cut -d: -f3 <"$data/$f.key")
      grep -qF "$b64" "$data/engine.log" "$data2/engine.log" && fail "a secret ($f) is in an engine's log"
    done
    ok nexus unshare "$uuid"
    ok nexus destroy "$uuid"
    ;;

  remote_tls)
    # Engine 2's listeners require TLS; engine 1 reaches its replica over
    # TLS with its own TLS key, which engine 2 holds for engine 1's NQN.
    timeout 10 "$weft" key gen-tls -o "$data/tls.key" >/dev/null || fail "weft key gen-tls"
    start --tls-key-file "$data/tls.key"
    grep -q "its connections to them run TLS" "$data/engine.log" ||
      fail "engine 1 does not say it holds a TLS key"
    replica_engine --tls required
    ok host-key set "$host1" --tls-key-file "$data/tls.key" --api "$api2"
    nexus_over_remote
    grep -q "$host1 connected to .*TLS" "$data2/engine.log" ||
      fail "engine 1's connections to engine 2 are not TLS: $(grep connected "$data2/engine.log" | tail -2)"
    # Engine 2 no longer holds the key: a new nexus over its other volume
    # is refused, and says why; the first nexus's connections go on.
    ok host-key remove "$host1" --api "$api2"
    wf nexus create --size 32MiB --child pool://p/b --child "$remote2" --minority-policy proceed
    [ "$rc" -ne 0 ] || fail "a nexus over a child whose engine refuses our TLS key was made: $out"
    grep -q "refused this engine's TLS key" <<<"$err" || wrong "the refusal does not say it is about the TLS key: $err"
    check "$nqn" 0 "$data/in1.bin"
    b64=$(cut -d: -f3 <"$data/tls.key")
    grep -qF "$b64" "$data/engine.log" "$data2/engine.log" && fail "the TLS key is in an engine's log"
    ok nexus unshare "$uuid"
    ok nexus destroy "$uuid"
    ;;

  *)
    echo "unknown case $case_name"
    exit 2
    ;;
esac
if [ "${#wrongs[@]}" -gt 0 ]; then
  for w in "${wrongs[@]}"; do echo "FAIL ($case_name): $w"; done
  exit 1
fi
echo "PASS ($case_name)"
