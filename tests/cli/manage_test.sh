#!/usr/bin/env bash
# The `weft` management commands (pool, volume, snapshot, listener) against a
# real weft-engine's gRPC API, one case per run:
#   manage_test.sh WEFT ENGINE CASE
# Cases: pool_lifecycle import volumes snapshot_clone share stats listener
#        persistence encryption key_rotation key_rotation_reload purge no_engine
#        api_security
set -u
weft=$1
engine=$2
case_name=$3
source "$(dirname "$0")/engine.sh"
source "$(dirname "$0")/pki.sh"

fail() {
  echo "FAIL ($case_name): $*"
  [ -f "$data/engine.log" ] && { echo "--- engine log"; tail -30 "$data/engine.log"; }
  exit 1
}
# wf ARGS...: runs weft; $out its stdout, $err its stderr, $rc its exit code.
wf() {
  engine_args "$@"
  out=$("$weft" "${args[@]}" 2>"$data/stderr")
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
# PATTERN (an extended regex, any case; empty: any sentence).
refused() {
  local code=$1 pat=$2
  shift 2
  wf -v "$@"
  [ "$rc" -eq 1 ] || fail "weft $* -> rc=$rc, want 1: $err$out"
  local sentence
  sentence=$(head -1 <<<"$err")
  grep -qiE "^weft: .*${pat}" <<<"$sentence" || fail "weft $*: the sentence should say '$pat': $err"
  grep -q "gRPC status $code " <<<"$err" || fail "weft $*: want status $code: $err"
}
# Starts the engine and points weft at its API ($WEFT_API).
start() {
  start_engine "$engine" "$@"
  [ -n "$api_port" ] || fail "the engine has no --api-listen"
  export WEFT_API=127.0.0.1:$api_port
}
# nvme ARGS...: weft nvme on the engine's first NVMe/TCP listener.
nvme() {
  local cmd=$1 sub=$2
  shift 2
  run_out=$("$weft" nvme "$cmd" -a 127.0.0.1 -s "$port" -n "$sub" --timeout 5 "$@" 2>&1)
  run_rc=$?
}
# jqe FILTER [jq args...]: $out must satisfy FILTER.
jqe() {
  local filter=$1
  shift
  jq -e "$@" "$filter" <<<"$out" >/dev/null || fail "JSON is not $filter: $out"
}

MiB=$((1 << 20))
h_only=nqn.2014-08.io.weft.test:only
h_other=nqn.2014-08.io.weft.test:other
h_intruder=nqn.2014-08.io.weft.test:intruder

# A pool p on a 256 MiB file with 1 MiB clusters.
make_pool() {
  ok pool create p "$data/pool.img" --size 256MiB --cluster-size 1MiB
}
# share POOL NAME [flags]: shares it; $share_nqn.
share() {
  ok volume share "$@" --json
  share_nqn=$(jq -r .nqn <<<"$out")
  [ -n "$share_nqn" ] || fail "no nqn: $out"
}

case "$case_name" in
  pool_lifecycle)
    start
    ok pool list
    grep -q "^no pools" <<<"$out" || fail "empty list: $out"
    ok pool list --json
    jqe '.pools == []'
    ok pool create p1 "$data/p1.img" --size 256MiB --cluster-size 1MiB
    grep -q "^pool p1 created on $data/p1.img: .* in 1.00 MiB clusters" <<<"$out" ||
      fail "create: $out"
    [ "$(stat -c %s "$data/p1.img")" -eq $((256 * MiB)) ] || fail "file size"
    ok pool list
    grep -qE '^name +capacity +used +committed +cluster +volumes +path$' <<<"$out" ||
      fail "header: $out"
    grep -qE "^p1 +[0-9.]+ MiB +0 B +0 B +1.00 MiB +0 +$data/p1.img$" <<<"$out" ||
      fail "row: $out"
    ok pool list --json
    jqe '.pools | length == 1' &&
      jqe '.pools[0] | keys == ["capacity_bytes", "cluster_size", "committed_bytes", "name",
                                "path", "purge", "status", "used_bytes", "uuid", "volume_count"]'
    jqe '.pools[0] | .name == "p1" and .status == "online" and .path == $path and .cluster_size == 1048576 and
         .capacity_bytes >= 200 * 1048576 and .capacity_bytes <= 256 * 1048576 and
         .capacity_bytes % 1048576 == 0 and .used_bytes == 0 and .committed_bytes == 0 and
         .volume_count == 0 and (.uuid | test("^[0-9a-f-]{36}$"))' --arg path "$data/p1.img"
    # The file holds a pool: a second create on it is refused, nothing changes.
    refused ALREADY_EXISTS "p1\\.img|pool p1" pool create p2 "$data/p1.img"
    refused ALREADY_EXISTS "p1" pool create p1 "$data/other.img" --size 64MiB
    refused INVALID_ARGUMENT "cluster" pool create p3 "$data/p3.img" --size 64MiB --cluster-size 3000
    refused INVALID_ARGUMENT "name" pool create "bad/name" "$data/p4.img" --size 64MiB
    wf pool create p5 "$data/p5.img" --size 12x
    [ "$rc" -eq 2 ] && grep -q '^weft: --size "12x" is not a size' <<<"$err" || fail "12x: $rc $err"
    ok pool list --json
    jqe '[.pools[].name] == ["p1"]'
    ok pool destroy p1
    grep -q "^pool p1 destroyed" <<<"$out" || fail "destroy: $out"
    ok pool list
    grep -q "^no pools" <<<"$out" || fail "list after destroy: $out"
    ok pool list --json
    jqe '.pools == []'
    refused NOT_FOUND "p1" pool destroy p1
    # The superblock is wiped: nothing to import, and a new pool may go there.
    wf pool import "$data/p1.img"
    [ "$rc" -eq 1 ] && grep -q "^weft: " <<<"$err" || fail "import of a wiped pool: rc=$rc $err"
    ok pool create p1 "$data/p1.img"
    ;;
  import)
    start
    make_pool
    ok volume create p v1 8MiB
    ok pool list --json
    uuid=$(jq -r '.pools[0].uuid' <<<"$out")
    # Another engine, with its own state: it knows no pool until told.
    stop_engine
    mkdir -p "$data/other"
    engine_data_dir=$data/other start
    ok pool list --json
    jqe '.pools == []'
    ok pool import "$data/pool.img"
    grep -q "^pool p imported from $data/pool.img: .* 1 volume(s)" <<<"$out" || fail "import: $out"
    ok pool list --json
    jqe '.pools[0] | .name == "p" and .uuid == $u and .volume_count == 1' --arg u "$uuid"
    ok volume list --json
    jqe '[.volumes[] | {pool, name, size_bytes}] == [{"pool": "p", "name": "v1", "size_bytes": 8388608}]'
    refused ALREADY_EXISTS "" pool import "$data/pool.img"
    refused NOT_FOUND "" pool import "$data/nothing-here.img"
    ;;
  volumes)
    start
    make_pool
    ok volume create p thin1 64MiB
    grep -q "^volume p/thin1 created: 64.00 MiB, thin, 0 B allocated (uuid " <<<"$out" ||
      fail "create: $out"
    ok volume create p thick1 16MiB --thick
    grep -q "^volume p/thick1 created: 16.00 MiB, thick, 16.00 MiB allocated" <<<"$out" ||
      fail "create thick: $out"
    ok volume list --json
    jqe '.volumes | length == 2'
    jqe '.volumes[0] | keys == ["allocated_bytes", "name", "parent_uuid", "pool", "read_only",
                                "share_nqn", "size_bytes", "snapshot", "thin", "uuid"]'
    jqe '.volumes[] | select(.name == "thin1") | .pool == "p" and .size_bytes == 67108864 and
         .allocated_bytes == 0 and .thin and (.snapshot | not) and (.read_only | not) and
         .parent_uuid == "" and .share_nqn == "" and (.uuid | length) == 36'
    jqe '.volumes[] | select(.name == "thick1") | .size_bytes == 16777216 and
         .allocated_bytes == 16777216 and (.thin | not)'
    ok volume list
    grep -qE '^pool +name +size +allocated +type +shared as$' <<<"$out" || fail "header: $out"
    grep -qE '^p +thin1 +64.00 MiB +0 B +thin +-$' <<<"$out" || fail "thin row: $out"
    grep -qE '^p +thick1 +16.00 MiB +16.00 MiB +thick +-$' <<<"$out" || fail "thick row: $out"
    ok pool list --json
    jqe '.pools[0] | .committed_bytes == 80 * 1048576 and .used_bytes >= 16 * 1048576 and
         .volume_count == 2'
    # Refusals.
    refused ALREADY_EXISTS "thin1" volume create p thin1 1MiB
    refused INVALID_ARGUMENT "512" volume create p odd 1000
    refused INVALID_ARGUMENT "" volume create p zero 0
    refused INVALID_ARGUMENT "name" volume create p "bad name" 1MiB
    refused NOT_FOUND "nopool" volume create nopool v 1MiB
    refused RESOURCE_EXHAUSTED "" volume create p huge 1GiB --thick
    wf volume create p v 12x
    [ "$rc" -eq 2 ] && grep -q '^weft: SIZE "12x" is not a size' <<<"$err" || fail "12x: $rc $err"
    ok volume list --json
    jqe '[.volumes[].name] | sort == ["thick1", "thin1"]'
    # Grow; shrink while nothing past the new end is written.
    ok volume resize p thin1 128MiB
    grep -q "^volume p/thin1 resized: 128.00 MiB, thin" <<<"$out" || fail "grow: $out"
    ok volume resize p thin1 32MiB
    ok volume list --json
    jqe '.volumes[] | select(.name == "thin1") | .size_bytes == 33554432'
    # Data in the last MiB: shrinking over it is refused.
    share p thin1 --any-host
    nvme write "$share_nqn" --lba $((32 * MiB / 512 - 8)) --blocks 8 --pattern 0x5a
    [ "$run_rc" -eq 0 ] || fail "write: $run_out"
    refused FAILED_PRECONDITION "" volume resize p thin1 16MiB
    ok volume list --json
    jqe '.volumes[] | select(.name == "thin1") | .size_bytes == 33554432 and .allocated_bytes > 0'
    ok volume unshare p thin1
    ok volume destroy p thick1
    grep -q "^volume p/thick1 destroyed" <<<"$out" || fail "destroy: $out"
    ok volume list --json
    jqe '[.volumes[].name] == ["thin1"]'
    refused NOT_FOUND "nope" volume destroy p nope
    refused NOT_FOUND "nope" volume resize p nope 1MiB
    refused NOT_FOUND "nopool" volume destroy nopool thin1
    ok volume destroy p thin1
    ok volume list
    grep -q "^no volumes" <<<"$out" || fail "empty: $out"
    ;;
  snapshot_clone)
    start
    make_pool
    ok volume create p src 16MiB
    ok volume list --json
    src_uuid=$(jq -r '.volumes[] | select(.name == "src") | .uuid' <<<"$out")
    share p src --any-host
    src_nqn=$share_nqn
    head -c $((64 * 512)) /dev/urandom >"$data/before.bin"
    nvme write "$src_nqn" --lba 100 --blocks 64 -i "$data/before.bin"
    [ "$run_rc" -eq 0 ] || fail "write: $run_out"
    ok snapshot create p src snap1
    grep -q "^snapshot p/snap1 of src created: 16.00 MiB" <<<"$out" || fail "snapshot: $out"
    # The origin moves on; the snapshot keeps the old contents.
    nvme write "$src_nqn" --lba 100 --blocks 64 --pattern 0xee
    [ "$run_rc" -eq 0 ] || fail "write after snapshot: $run_out"
    ok snapshot list --json
    jqe '.snapshots | length == 1'
    jqe '.snapshots[0] | .name == "snap1" and .pool == "p" and .snapshot and .read_only and
         .parent_uuid == $src and .size_bytes == 16777216' --arg src "$src_uuid"
    snap_uuid=$(jq -r '.snapshots[0].uuid' <<<"$out")
    ok snapshot clone p snap1 c1
    grep -q "^clone p/c1 of snapshot snap1 created: 16.00 MiB, thin" <<<"$out" || fail "clone: $out"
    ok volume list --json
    jqe '.volumes[] | select(.name == "c1") | .parent_uuid == $s and .thin and (.snapshot | not)
         and (.read_only | not)' --arg s "$snap_uuid"
    ok volume list
    grep -qE '^p +c1 +16.00 MiB +.* +clone +-$' <<<"$out" || fail "clone row: $out"
    grep -qE '^p +snap1 +16.00 MiB +.* +snapshot +-$' <<<"$out" || fail "snapshot row: $out"
    ok snapshot list
    grep -qE '^pool +name +size +allocated +origin +clones$' <<<"$out" || fail "header: $out"
    grep -qE '^p +snap1 +16.00 MiB +.* +src +1$' <<<"$out" || fail "snapshot list row: $out"
    share p c1 --any-host
    [ "$share_nqn" = "nqn.2026-11.io.weft:p:c1" ] || fail "default NQN: $share_nqn"
    c1_nqn=$share_nqn
    nvme read "$c1_nqn" --lba 100 --blocks 64 -o "$data/clone.bin"
    [ "$run_rc" -eq 0 ] || fail "read clone: $run_out"
    cmp "$data/before.bin" "$data/clone.bin" || fail "the clone does not hold the snapshot's data"
    nvme read "$src_nqn" --lba 100 --blocks 1
    [ "$run_rc" -eq 0 ] && grep -q "^0000c800  ee ee ee" <<<"$run_out" || fail "origin: $run_out"
    # The clone is writable and its own.
    nvme write "$c1_nqn" --lba 0 --blocks 1 --pattern 0x11
    [ "$run_rc" -eq 0 ] || fail "write clone: $run_out"
    nvme read "$src_nqn" --lba 0 --blocks 1
    [ "$run_rc" -eq 0 ] && ! grep -q "^00000000  11 11" <<<"$run_out" || fail "leak: $run_out"
    # A shared snapshot reads as it was and refuses writes.
    share p snap1 --any-host
    snap_nqn=$share_nqn
    nvme read "$snap_nqn" --lba 100 --blocks 64 -o "$data/snap.bin"
    [ "$run_rc" -eq 0 ] && cmp "$data/before.bin" "$data/snap.bin" || fail "read snapshot: $run_out"
    nvme write "$snap_nqn" --lba 100 --blocks 1 --pattern 0x22
    [ "$run_rc" -ne 0 ] && grep -q "write-protected" <<<"$run_out" || fail "snapshot write: $run_out"
    ok volume unshare p snap1
    # A snapshot with a clone stays.
    refused FAILED_PRECONDITION "" snapshot destroy p snap1
    refused FAILED_PRECONDITION "" volume destroy p snap1
    wf snapshot destroy p src
    [ "$rc" -eq 1 ] && grep -q "^weft: p/src is a volume, not a snapshot" <<<"$err" ||
      fail "snapshot destroy of a volume: $rc $err"
    refused ALREADY_EXISTS "snap1" snapshot create p src snap1
    refused NOT_FOUND "nope" snapshot create p nope snap2
    refused NOT_FOUND "nope" snapshot clone p nope c2
    ok volume unshare p c1
    ok volume destroy p c1
    ok snapshot destroy p snap1
    grep -q "^snapshot p/snap1 destroyed" <<<"$out" || fail "destroy: $out"
    ok snapshot list
    grep -q "^no snapshots" <<<"$out" || fail "empty: $out"
    ;;
  share)
    start
    make_pool
    ok volume create p v 8MiB
    ok volume create p v2 8MiB
    ok volume share p v --host "$h_only"
    vnqn=nqn.2026-11.io.weft:p:v
    grep -q "^volume p/v shared as $vnqn, namespace 1; hosts allowed: $h_only$" <<<"$out" ||
      fail "share: $out"
    grep -q "^  nvme connect -t tcp -a 127.0.0.1 -s $port -n $vnqn$" <<<"$out" ||
      fail "connect line: $out"
    nvme identify "$vnqn" --hostnqn "$h_intruder"
    [ "$run_rc" -ne 0 ] || fail "intruder connected: $run_out"
    grep -q "does not allow host NQN $h_intruder to connect to $vnqn" <<<"$run_out" ||
      fail "intruder: $run_out"
    nvme identify "$vnqn" --hostnqn "$h_only" --json
    [ "$run_rc" -eq 0 ] || fail "allowed host refused: $run_out"
    [ "$(jq -r '.namespaces[0].size_bytes' <<<"$run_out")" = $((8 * MiB)) ] || fail "size: $run_out"
    ok volume list --json
    jqe '.volumes[] | select(.name == "v") | .share_nqn == $n' --arg n "$vnqn"
    ok volume list
    grep -qE "^p +v +8.00 MiB +.* thin +$vnqn$" <<<"$out" || fail "row: $out"
    # Shared: not destroyed, nor its pool.
    refused FAILED_PRECONDITION "" volume destroy p v
    refused FAILED_PRECONDITION "" pool destroy p
    # Hosts see a resize.
    ok volume resize p v 16MiB
    nvme identify "$vnqn" --hostnqn "$h_only" --json
    [ "$(jq -r '.namespaces[0].size_bytes' <<<"$run_out")" = $((16 * MiB)) ] ||
      fail "size after resize: $run_out"
    # Sharing again with the same NQN replaces the host list.
    ok volume share p v --host "$h_other" --json
    jqe '.nqn == $n and .pool == "p" and .volume == "v" and .nsid == 1 and
         (.allow_any_host | not) and .allowed_hosts == [$h] and
         (.listeners | index("127.0.0.1:" + $port)) != null' \
      --arg n "$vnqn" --arg h "$h_other" --arg port "$port"
    nvme identify "$vnqn" --hostnqn "$h_only"
    [ "$run_rc" -ne 0 ] || fail "the old host still connects: $run_out"
    nvme identify "$vnqn" --hostnqn "$h_other"
    [ "$run_rc" -eq 0 ] || fail "the new host is refused: $run_out"
    refused ALREADY_EXISTS "" volume share p v --nqn nqn.2026-11.io.weft:elsewhere --any-host
    refused INVALID_ARGUMENT "" volume share p v2 --nqn not-an-nqn --any-host
    refused NOT_FOUND "nope" volume share p nope --any-host
    wf volume share p v2
    [ "$rc" -eq 2 ] && grep -q "^weft: say which hosts may connect" <<<"$err" || fail "no hosts: $err"
    # A chosen NQN, any host.
    ok volume share p v2 --nqn nqn.2026-11.io.weft:custom --any-host
    grep -q "any host may connect" <<<"$out" || fail "any host: $out"
    nvme identify nqn.2026-11.io.weft:custom --hostnqn "$h_intruder"
    [ "$run_rc" -eq 0 ] || fail "custom NQN: $run_out"
    # Unshared: the subsystem is gone, the volume may go.
    ok volume unshare p v
    grep -q "^volume p/v is no longer shared" <<<"$out" || fail "unshare: $out"
    nvme identify "$vnqn" --hostnqn "$h_other"
    [ "$run_rc" -ne 0 ] && grep -q "no subsystem $vnqn" <<<"$run_out" || fail "after unshare: $run_out"
    refused NOT_FOUND "" volume unshare p v
    ok volume list --json
    jqe '.volumes[] | select(.name == "v") | .share_nqn == ""'
    ok volume destroy p v
    ok volume unshare p v2
    ok pool destroy p
    ;;
  stats)
    start
    make_pool
    ok volume create p v 8MiB
    share p v --any-host
    nvme write "$share_nqn" --lba 0 --blocks 16 --pattern 0x42
    [ "$run_rc" -eq 0 ] || fail "write: $run_out"
    nvme read "$share_nqn" --lba 0 --blocks 8 -o "$data/r.bin"
    [ "$run_rc" -eq 0 ] || fail "read: $run_out"
    ok volume stats --json
    jqe '.volumes[] | select(.nqn == $n) | .pool == "p" and .volume == "v" and .nsid == 1 and
         .io.writes >= 1 and .io.write_bytes >= 8192 and .io.reads >= 1 and
         .io.read_bytes >= 4096 and .io.errors == 0 and .io.write_latency.count >= 1 and
         .io.read_latency.count >= 1' --arg n "$share_nqn"
    jqe '(.reactors | length) >= 1 and ([.reactors[].io.writes] | add) >= 1'
    ok volume stats
    grep -qE "^p/v +1 +[0-9]+ +[0-9]+ .* $share_nqn$" <<<"$out" || fail "table: $out"
    grep -qE '^core +reads +writes' <<<"$out" || fail "reactor table: $out"
    ;;
  listener)
    start
    ok listener list --json
    jqe '[.listeners[].address] | index("127.0.0.1:" + $p) != null' --arg p "$port"
    ok listener add 127.0.0.1:0 --json
    added=$(jq -r .address <<<"$out")
    [[ "$added" =~ ^127\.0\.0\.1:[1-9][0-9]*$ ]] || fail "bound address: $out"
    ok listener list
    grep -qx "$added" <<<"$out" || fail "list: $out"
    make_pool
    ok volume create p v 8MiB
    share p v --any-host
    jq -e --arg a "$added" '.listeners | index($a) != null' <<<"$out" >/dev/null ||
      fail "share listeners: $out"
    run_out=$("$weft" nvme identify -a 127.0.0.1 -s "${added##*:}" -n "$share_nqn" --timeout 5 2>&1) ||
      fail "identify on the added listener: $run_out"
    refused INVALID_ARGUMENT "" listener add not-an-address
    ;;
  persistence)
    start
    make_pool
    ok volume create p v 8MiB
    ok volume create p thick 4MiB --thick
    share p v --host "$h_only"
    head -c $((32 * 512)) /dev/urandom >"$data/in.bin"
    nvme write "$share_nqn" --hostnqn "$h_only" --lba 7 --blocks 32 -i "$data/in.bin"
    [ "$run_rc" -eq 0 ] || fail "write: $run_out"
    ok snapshot create p v s1
    ok listener add 127.0.0.1:0 --json
    added=$(jq -r .address <<<"$out")
    ok pool list --json
    pools_before=$(jq -S . <<<"$out")
    ok volume list --json
    volumes_before=$(jq -S '.volumes | sort_by(.name)' <<<"$out")
    stop_engine
    start
    ok pool list --json
    [ "$(jq -S . <<<"$out")" = "$pools_before" ] ||
      fail "pools after restart: $out; before: $pools_before"
    ok volume list --json
    [ "$(jq -S '.volumes | sort_by(.name)' <<<"$out")" = "$volumes_before" ] ||
      fail "volumes after restart: $out; before: $volumes_before"
    ok listener list --json
    jqe '[.listeners[].address] | index($a) != null' --arg a "$added"
    nvme read "$share_nqn" --hostnqn "$h_only" --lba 7 --blocks 32 -o "$data/out.bin"
    [ "$run_rc" -eq 0 ] || fail "read after restart: $run_out"
    cmp "$data/in.bin" "$data/out.bin" || fail "data differs after restart"
    nvme identify "$share_nqn" --hostnqn "$h_intruder"
    [ "$run_rc" -ne 0 ] || fail "the host list was lost: $run_out"
    ;;
  encryption)
    # Encryption at rest: what reaches the pool file is ciphertext (a scan
    # for the written text finds it in a plain volume's pool, not in the
    # encrypted one's), the key survives a restart (wrapped, in the state),
    # an engine without the KEK does not serve the volume, a nexus is
    # encrypted above its children, and erasing the key (crypto-erase) or
    # destroying the volume leaves nothing readable.
    ok key gen-kek -o "$data/kek"
    [ "$(stat -c %a "$data/kek")" = 600 ] || fail "the KEK file is not mode 0600"
    start --kek-file "$data/kek"
    grep -q "key-encryption key [0-9a-f]\{16\} from file $data/kek (wraps new data keys)" "$data/engine.log" ||
      fail "the engine does not say which KEK it has"
    for i in $(seq 40000); do echo "WEFT-PLAINTEXT-MARKER-$i"; done | head -c $((1 << 20)) >"$data/marker.bin"
    marker_in() { grep -c -a "WEFT-PLAINTEXT-MARKER" "$1"; }
    ok pool create pp "$data/plain.img" --size 64MiB --cluster-size 1MiB
    ok pool create pe "$data/enc.img" --size 64MiB --cluster-size 1MiB
    ok volume create pp v 8MiB
    ok volume create pe v 8MiB
    ok volume-key set pe v --json
    jqe '.target == "pe/v" and (.wrapped_key | startswith("weft-dek-1:")) and (.kek_id | length == 16)'
    wrapped=$(jq -r .wrapped_key <<<"$out")
    ok volume-key set pe v  # again: a no-op
    # One character of the body changed (whichever it is).
    c=${wrapped:40:1}
    [ "$c" = A ] && d=B || d=A
    damaged=${wrapped:0:40}$d${wrapped:41}
    refused INVALID_ARGUMENT "does not unwrap" volume-key set pe v --wrapped-key "$damaged"
    ok volume create pe w 4MiB
    ok volume-key set pe w --json
    refused ALREADY_EXISTS "another key" volume-key set pe v --wrapped-key "$(jq -r .wrapped_key <<<"$out")"
    ok volume destroy pe w
    share pp v --any-host
    plain_nqn=$share_nqn
    share pe v --any-host
    enc_nqn=$share_nqn
    refused FAILED_PRECONDITION "is shared" volume-key erase pe v --yes
    refused FAILED_PRECONDITION "is shared" volume-key set pp v
    # 1 MiB: 2048 blocks of the plain volume, 256 of the encrypted one (it
    # serves 4 KiB blocks).
    nvme identify "$enc_nqn"
    grep -qE "4096" <<<"$run_out" || fail "the encrypted volume does not serve 4 KiB blocks: $run_out"
    nvme write "$plain_nqn" --lba 0 --blocks 2048 -i "$data/marker.bin"
    [ "$run_rc" -eq 0 ] || fail "write to the plain volume: $run_out"
    nvme write "$enc_nqn" --lba 0 --blocks 256 -i "$data/marker.bin"
    [ "$run_rc" -eq 0 ] || fail "write to the encrypted volume: $run_out"
    nvme read "$enc_nqn" --lba 0 --blocks 256 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] || fail "read: $run_out"
    cmp -s "$data/marker.bin" "$data/back.bin" || fail "the encrypted volume does not read back"
    sync
    [ "$(marker_in "$data/plain.img")" -gt 1000 ] || fail "the scan does not find the text in the plain pool"
    [ "$(marker_in "$data/enc.img")" = 0 ] || fail "the encrypted pool file holds plaintext"
    grep -q "$wrapped" "$data/engine-state.json" || fail "the wrapped key is not in the state"
    [ "$(stat -c %a "$data/engine-state.json")" = 600 ] || fail "the state file is not mode 0600"
    grep -q "$wrapped" "$data/engine.log" && fail "the wrapped key is in the log"
    # A restart: the same key, the same data.
    stop_engine
    start --kek-file "$data/kek"
    nvme read "$enc_nqn" --lba 0 --blocks 256 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] && cmp -s "$data/marker.bin" "$data/back.bin" ||
      fail "the encrypted volume does not read back after a restart: $run_out"
    # Without the KEK the volume is not served (nothing else is lost).
    stop_engine
    start
    grep -q "the data key of pe/v does not unwrap" "$data/engine.log" ||
      fail "no word of the key that does not unwrap"
    nvme read "$enc_nqn" --lba 0 --blocks 8 -o "$data/none.bin"
    cmp -s "$data/marker.bin" "$data/none.bin" 2>/dev/null && fail "served without its KEK"
    nvme read "$plain_nqn" --lba 0 --blocks 8 -o "$data/p.bin"
    [ "$run_rc" -eq 0 ] || fail "the plain volume is not served: $run_out"
    refused FAILED_PRECONDITION "kek-file" volume-key set pp v
    stop_engine
    start --kek-file "$data/kek"
    # A nexus encrypted above its two children: neither holds plaintext.
    ok pool create pn "$data/nexus.img" --size 64MiB --cluster-size 1MiB
    ok volume create pn a 9MiB
    ok volume create pn b 9MiB
    ok nexus create --size 8MiB --child pool://pn/a --child pool://pn/b --json
    nx=$(jq -r .uuid <<<"$out")
    refused FAILED_PRECONDITION "child of nexus" volume-key set pn a
    ok volume-key set --nexus "$nx"
    ok nexus share "$nx" --any-host --json
    nx_nqn=$(jq -r .nqn <<<"$out")
    nvme write "$nx_nqn" --lba 0 --blocks 256 -i "$data/marker.bin"
    [ "$run_rc" -eq 0 ] || fail "write to the nexus: $run_out"
    nvme read "$nx_nqn" --lba 0 --blocks 256 -o "$data/back.bin"
    cmp -s "$data/marker.bin" "$data/back.bin" || fail "the encrypted nexus does not read back"
    sync
    [ "$(marker_in "$data/nexus.img")" = 0 ] || fail "a child of the encrypted nexus holds plaintext"
    ok volume-key list --json
    jqe '[.keys[].target] | sort == ["nexus:" + $nx, "pe/v"]' --arg nx "$nx"
    # KEK rotation: a new KEK first, the old one second; rewrap; then the
    # old one is not needed any more.
    old_kek=$(jq -r '.keys[0].kek_id' <<<"$out")
    ok key gen-kek -o "$data/kek2"
    stop_engine
    start --kek-file "$data/kek2" --kek-file "$data/kek"
    ok volume-key rewrap --json
    jqe '[.keys[].kek_id] | unique | length == 1 and .[0] != $old' --arg old "$old_kek"
    grep -q "weft-dek-1:$old_kek:" "$data/engine-state.json" && fail "a key is still wrapped by the old KEK"
    # The new KEK alone, from an environment variable this time.
    stop_engine
    WEFT_TEST_KEK=$(cat "$data/kek2") start --kek-env WEFT_TEST_KEK
    grep -q "key-encryption key [0-9a-f]\{16\} from environment variable WEFT_TEST_KEK" "$data/engine.log" ||
      fail "the engine does not say it took the KEK from the environment"
    grep -qa "weft-kek-1" "/proc/$engine_pid/environ" && fail "the KEK is still in the engine's environment"
    nvme read "$enc_nqn" --lba 0 --blocks 256 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] && cmp -s "$data/marker.bin" "$data/back.bin" ||
      fail "the encrypted volume does not read back with the new KEK alone: $run_out"
    nvme read "$nx_nqn" --lba 0 --blocks 256 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] && cmp -s "$data/marker.bin" "$data/back.bin" ||
      fail "the encrypted nexus does not read back with the new KEK alone: $run_out"
    # Crypto-erase: the key is gone from the state; shared again, the
    # volume reads as what it is without its key.
    ok volume unshare pe v
    wf volume-key erase pe v
    [ "$rc" = 2 ] && grep -q "add --yes" <<<"$err" || fail "erase without --yes: $rc $err"
    ok volume-key erase pe v --yes
    grep -q "$wrapped" "$data/engine-state.json" && fail "the erased key is still in the state"
    refused NOT_FOUND "no key" volume-key erase pe v --yes
    share pe v --any-host
    nvme read "$share_nqn" --lba 0 --blocks 2048 -o "$data/after.bin"
    [ "$run_rc" -eq 0 ] || fail "read after the erase: $run_out"
    [ "$(marker_in "$data/after.bin")" = 0 ] || fail "the text is readable after the crypto-erase"
    ok volume unshare pe v
    ok volume-key set pe v  # a new key: no better
    share pe v --any-host
    nvme read "$share_nqn" --lba 0 --blocks 2048 -o "$data/after.bin"
    [ "$(marker_in "$data/after.bin")" = 0 ] || fail "the text is readable with a new key"
    # Destroying a volume erases its key; destroying a pool, its volumes'.
    ok volume unshare pe v
    ok volume destroy pe v
    ok volume-key list --json
    jqe '[.keys[].target] == ["nexus:" + $nx]' --arg nx "$nx"
    ok volume create pe x 4MiB
    ok volume-key set pe x
    ok pool destroy pe
    ok volume-key list --json
    jqe '[.keys[].target] == ["nexus:" + $nx]' --arg nx "$nx"
    ;;
  key_rotation)
    # Data-key rotation: a volume's data re-encrypted to a new data key in
    # the background while a host writes to it, through a SIGKILL of the
    # engine half way (it resumes from its journal), with every byte the
    # same afterwards, no plaintext in the pool file, the new key alone in
    # the state, and the old key reading nothing of it.
    ok key gen-kek -o "$data/kek"
    start --kek-file "$data/kek"
    ok pool create pe "$data/enc.img" --size 96MiB --cluster-size 1MiB
    ok volume create pe v 64MiB
    ok volume create pe plain 4MiB
    refused NOT_FOUND "has no key" volume-key rotate pe plain
    # A small one followed to its end (--wait), unshared.
    ok volume-key set pe plain --json
    small_old=$(jq -r .wrapped_key <<<"$out")
    ok volume-key rotate pe plain --unlimited --wait
    grep -q "pe/plain: every block is under its new data key" <<<"$out" || fail "rotate --wait: $out"
    ok volume-key list --json
    jqe '.keys[] | select(.target == "pe/plain") | .wrapped_key != $old and (.rotation.next_wrapped_key == "")' \
      --arg old "$small_old"
    ok volume-key set pe v --json
    old_wrapped=$(jq -r .wrapped_key <<<"$out")
    wf volume-key rotate pe v --rate 0
    [ "$rc" -eq 2 ] && grep -q "more than 0" <<<"$err" || fail "--rate 0: rc=$rc $err"
    share pe v --any-host
    nqn=$share_nqn
    # 48 MiB of numbered lines (12288 blocks of 4 KiB); the rest of the
    # volume is never written.
    seq 1 2000000 | sed 's/^/WEFT-PLAINTEXT-MARKER-/' | head -c $((48 * MiB)) >"$data/want.bin"
    marker_in() { grep -c -a "WEFT-PLAINTEXT-MARKER" "$1"; }
    nvme write "$nqn" --lba 0 --blocks 12288 -i "$data/want.bin"
    [ "$run_rc" -eq 0 ] || fail "write: $run_out"
    ok volume-key rotate pe v --rate 4MiB --json
    jqe '.rotation.running and (.rotation.next_wrapped_key | startswith("weft-dek-1:")) and
         .rotation.rate_bytes == 4194304 and .wrapped_key == $old' --arg old "$old_wrapped"
    new_wrapped=$(jq -r .rotation.next_wrapped_key <<<"$out")
    refused FAILED_PRECONDITION "being rotated" snapshot create pe v s1
    refused FAILED_PRECONDITION "being rotated" volume resize pe v 80MiB
    ok volume-key rotate pe v --rate 4MiB --json  # again: the same rotation
    jqe '.rotation.next_wrapped_key == $new' --arg new "$new_wrapped"
    grep -q "$new_wrapped" "$data/engine-state.json" || fail "the new key is not in the state"
    # Online: a host writes 1 MiB at 40 MiB (ahead of the rotation) and at
    # 1 MiB (behind it, soon) while it runs, and reads them back.
    seq 1 100000 | sed 's/^/WEFT-PLAINTEXT-MARKER-later-/' | head -c $MiB >"$data/later.bin"
    for lba in 10240 256; do
      nvme write "$nqn" --lba $lba --blocks 256 -i "$data/later.bin"
      [ "$run_rc" -eq 0 ] || fail "write during the rotation: $run_out"
      nvme read "$nqn" --lba $lba --blocks 256 -o "$data/back.bin"
      [ "$run_rc" -eq 0 ] && cmp -s "$data/later.bin" "$data/back.bin" ||
        fail "a write during the rotation does not read back at $lba: $run_out"
      dd if="$data/later.bin" of="$data/want.bin" bs=4096 seek=$lba conv=notrunc status=none
    done
    # Progress shows; the engine dies half way (SIGKILL).
    for _ in $(seq 100); do
      ok volume-key list --json
      done_bytes=$(jq '.keys[] | select(.target == "pe/v") | .rotation.rotated_bytes // 0' <<<"$out")
      [ "$done_bytes" -ge $((8 * MiB)) ] && break
      sleep 0.1
    done
    jqe '.keys[] | select(.target == "pe/v") | .rotation.running and
         .rotation.size_bytes == 67108864 and .rotation.rotated_bytes < 67108864'
    wf volume-key list
    grep -qE "pe/v .*[0-9]+% \(.* of 64.00 MiB\), at most 4.00 MiB/s" <<<"$out" ||
      fail "list does not show the rotation: $out"
    kill -KILL "$engine_pid"
    wait "$engine_pid" 2>/dev/null
    engine_pid=
    [ -f "$data/rekey-pe%2Fv.journal" ] || fail "no journal: $(ls "$data")"
    start --kek-file "$data/kek"
    grep -qE "pe/v: data-key rotation resumes at [1-9][0-9]* of 67108864 bytes" "$data/engine.log" ||
      fail "the rotation does not resume where it was"
    # ... at its pace, until told another (which is kept too).
    ok volume-key list --json
    jqe '.keys[] | select(.target == "pe/v") | .rotation.rate_bytes == 4194304'
    grep -q '"rotation_rate": 4194304' "$data/engine-state.json" || fail "the pace is not in the state"
    ok volume-key rotate pe v --rate 3MiB --json
    jqe '.rotation.rate_bytes == 3145728'
    grep -q '"rotation_rate": 3145728' "$data/engine-state.json" || fail "the new pace is not in the state"
    ok volume-key rotate pe v --unlimited
    for _ in $(seq 300); do
      ok volume-key list --json
      jq -e '.keys[] | select(.target == "pe/v") | .rotation.next_wrapped_key == ""' <<<"$out" >/dev/null && break
      sleep 0.1
    done
    jqe '.keys[] | select(.target == "pe/v") | .wrapped_key == $new and (.rotation.next_wrapped_key == "")' \
      --arg new "$new_wrapped"
    grep -q "$old_wrapped" "$data/engine-state.json" && fail "the old key is still in the state"
    [ -e "$data/rekey-pe%2Fv.journal" ] && fail "the journal is still there"
    grep -q "pe/v: data-key rotation done" "$data/engine.log" || fail "no word of the end"
    nvme read "$nqn" --lba 0 --blocks 12288 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] && cmp -s "$data/want.bin" "$data/back.bin" ||
      fail "the volume does not read back after the rotation: $run_out"
    nvme read "$nqn" --lba 12288 --blocks 256 -o "$data/zero.bin"
    [ "$run_rc" -eq 0 ] && cmp -s "$data/zero.bin" <(head -c $MiB /dev/zero) ||
      fail "a block never written does not read as zeroes"
    sync
    [ "$(marker_in "$data/enc.img")" = 0 ] || fail "the pool file holds plaintext"
    # A restart: the new key, the same data.
    stop_engine
    start --kek-file "$data/kek"
    nvme read "$nqn" --lba 0 --blocks 256 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] && cmp -s <(head -c $MiB "$data/want.bin") "$data/back.bin" ||
      fail "the volume does not read back after a restart: $run_out"
    # The old key reads nothing of it any more.
    ok volume unshare pe v
    ok volume-key erase pe v --yes
    ok volume-key set pe v --wrapped-key "$old_wrapped"
    share pe v --any-host
    nvme read "$share_nqn" --lba 0 --blocks 256 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] || fail "read with the old key: $run_out"
    [ "$(marker_in "$data/back.bin")" = 0 ] || fail "the old key still reads the data"
    ;;
  key_rotation_reload)
    # A rotation on a pool of --config: a SIGHUP that takes the pool away
    # stops the rotation first (the engine unharmed, the journal kept); one
    # that brings it back resumes it from the journal, at its pace, and it
    # ends with every byte the same.
    ok key gen-kek -o "$data/kek"
    echo "{\"pools\": [{\"name\": \"pr\", \"path\": \"$data/r.img\", \"size\": \"48MiB\"}]}" >"$data/with.json"
    echo '{}' >"$data/without.json"
    cp "$data/with.json" "$data/engine.json"
    start --kek-file "$data/kek" --config "$data/engine.json"
    ok volume create pr v 32MiB
    ok volume-key set pr v
    share pr v --any-host
    head -c $((16 * MiB)) /dev/urandom >"$data/want.bin"
    nvme write "$share_nqn" --lba 0 --blocks 4096 -i "$data/want.bin"
    [ "$run_rc" -eq 0 ] || fail "write: $run_out"
    ok volume unshare pr v
    ok volume-key rotate pr v --rate 2MiB
    for _ in $(seq 100); do
      [ -f "$data/rekey-pr%2Fv.journal" ] && break
      sleep 0.05
    done
    [ -f "$data/rekey-pr%2Fv.journal" ] || fail "no journal: $(ls "$data")"
    # logged PATTERN: waits up to 5 s for the engine's log to match PATTERN.
    logged() {
      for _ in $(seq 100); do
        grep -qE "$1" "$data/engine.log" && return 0
        sleep 0.05
      done
      return 1
    }
    cp "$data/without.json" "$data/engine.json"
    kill -HUP "$engine_pid"
    logged "pr/v: data-key rotation stopped: pool pr is no longer configured" ||
      fail "the rotation did not stop with its pool"
    sleep 0.5
    kill -0 "$engine_pid" 2>/dev/null || fail "the engine died"
    ok pool list --json
    jqe '.pools == []'
    [ -f "$data/rekey-pr%2Fv.journal" ] || fail "the journal went with the pool"
    cp "$data/with.json" "$data/engine.json"
    kill -HUP "$engine_pid"
    logged "pr/v: data-key rotation resumes at [1-9][0-9]* of 33554432 bytes" ||
      fail "the rotation did not resume: $(tail -5 "$data/engine.log")"
    ok volume-key list --json
    jqe '.keys[] | select(.target == "pr/v") | .rotation.rate_bytes == 2097152'
    ok volume-key rotate pr v --unlimited --wait
    grep -q "pr/v: every block is under its new data key" <<<"$out" || fail "rotate --wait: $out"
    share pr v --any-host
    nvme read "$share_nqn" --lba 0 --blocks 4096 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] && cmp -s "$data/want.bin" "$data/back.bin" ||
      fail "the volume does not read back after the rotation: $run_out"
    ;;
  purge)
    # Purge: a volume destroyed with --purge (or in a pool made with
    # --purge) leaves none of its data in the pool file, while one destroyed
    # without leaves it there (the scan can find it); a pool destroyed with
    # --purge leaves a file of zeroes; clusters a snapshot shares stay.
    start
    for i in $(seq 40000); do echo "WEFT-PURGE-MARKER-$i"; done | head -c $((1 << 20)) >"$data/marker.bin"
    marker_in() { grep -c -a "WEFT-PURGE-MARKER" "$1"; }
    # write_marker POOL VOLUME: 1 MiB of marker text at LBA 0.
    write_marker() {
      share "$1" "$2" --any-host
      nvme write "$share_nqn" --lba 0 --blocks 2048 -i "$data/marker.bin"
      [ "$run_rc" -eq 0 ] || fail "write to $1/$2: $run_out"
      ok volume unshare "$1" "$2"
    }
    ok pool create pa "$data/a.img" --size 64MiB --cluster-size 1MiB
    ok volume create pa kept 4MiB
    write_marker pa kept
    ok volume destroy pa kept
    sync
    [ "$(marker_in "$data/a.img")" -gt 1000 ] || fail "the scan does not find what a destroyed volume held"
    ok volume create pa gone 4MiB
    write_marker pa gone
    ok volume destroy pa gone --purge
    grep -q "purged" <<<"$out" || fail "destroy --purge: $out"
    # The first volume's clusters may be the second's now: scan a fresh pool.
    ok pool create pb "$data/b.img" --size 64MiB --cluster-size 1MiB
    ok volume create pb v 4MiB
    write_marker pb v
    ok snapshot create pb v s
    ok volume create pb w 4MiB
    write_marker pb w
    sync
    [ "$(marker_in "$data/b.img")" -gt 1000 ] || fail "the markers are not in pool b"
    ok volume destroy pb w --purge
    ok volume destroy pb v --purge  # its clusters are the snapshot's too: they stay
    sync
    n=$(marker_in "$data/b.img")
    [ "$n" -gt 1000 ] || fail "the snapshot's clusters were purged under it ($n markers left)"
    ok volume destroy pb s --purge
    sync
    [ "$(marker_in "$data/b.img")" = 0 ] || fail "pool b still holds a purged volume's data"
    # A pool made with --purge purges every volume destroyed in it.
    ok pool create pc "$data/c.img" --size 64MiB --cluster-size 1MiB --purge --json
    jqe '.purge == true'
    ok volume create pc v 4MiB
    write_marker pc v
    ok volume destroy pc v
    sync
    [ "$(marker_in "$data/c.img")" = 0 ] || fail "a purging pool kept a destroyed volume's data"
    # ... and zeroes the clusters a thin volume deallocates before they go back.
    ok volume create pc t 4MiB
    share pc t --any-host
    nvme write "$share_nqn" --lba 0 --blocks 4096 -i "$data/marker.bin"
    [ "$run_rc" -eq 0 ] || fail "write to pc/t: $run_out"
    sync
    [ "$(marker_in "$data/c.img")" -gt 1000 ] || fail "the markers are not in pool c"
    nvme deallocate "$share_nqn" --lba 0 --blocks 4096
    [ "$run_rc" -eq 0 ] && grep -q "^deallocated 4096 block(s) at LBA 0" <<<"$run_out" ||
      fail "deallocate: $run_out"
    nvme read "$share_nqn" --lba 0 --blocks 4096 -o "$data/back.bin"
    [ "$run_rc" -eq 0 ] && cmp -s -n $((4096 * 512)) "$data/back.bin" /dev/zero ||
      fail "deallocated blocks do not read zeroes: $run_out"
    ok volume unshare pc t
    sync
    [ "$(marker_in "$data/c.img")" = 0 ] || fail "a purging pool kept deallocated clusters' data"
    # Pool destroy --purge: nothing but zeroes is left in the file.
    ok volume create pa last 4MiB
    write_marker pa last
    ok pool destroy pa --purge
    grep -q "purged" <<<"$out" || fail "pool destroy --purge: $out"
    sync
    cmp -s -n "$(stat -c %s "$data/a.img")" "$data/a.img" /dev/zero || fail "pool a's file is not all zeroes"
    ok pool destroy pb
    ok pool destroy pc
    ;;
  no_engine)
    wf pool list --api 127.0.0.1:1
    [ "$rc" -eq 1 ] || fail "rc=$rc: $err"
    [ "$err" = "weft: no engine answers at 127.0.0.1:1 (is weft-engine running? --api ADDR; an engine serving its API over TLS needs --api-tls-ca)" ] ||
      fail "sentence: $err"
    [ -z "$out" ] || fail "stdout: $out"
    WEFT_API=127.0.0.1:1 wf volume list --json
    [ "$rc" -eq 1 ] && grep -q "^weft: no engine answers at 127.0.0.1:1 " <<<"$err" ||
      fail "WEFT_API: rc=$rc $err"
    # --api wins over WEFT_API.
    start
    WEFT_API=127.0.0.1:1 wf pool list --api "127.0.0.1:$api_port"
    [ "$rc" -eq 0 ] || fail "--api over WEFT_API: rc=$rc $err"
    # The port of an engine that stopped.
    stop_engine
    wf snapshot list
    [ "$rc" -eq 1 ] && grep -q "^weft: no engine answers at 127.0.0.1:$api_port " <<<"$err" ||
      fail "stopped engine: rc=$rc $err"
    ;;
  api_security)
    # The management API over TLS with client certificates and tokens: a
    # CA, the engine's certificate (IP 127.0.0.1, DNS engine.test), a
    # client's (CN operator-alice) and one from another CA (CN mallory).
    pki=$data/pki
    make_api_pki "$pki" "$weft" || fail "make_api_pki"
    [ "$(stat -c %a "$pki/alice.token")" = 600 ] || fail "gen-token -o: mode $(stat -c %a "$pki/alice.token")"
    alice_token=$(<"$pki/alice.token")
    [ "${#alice_token}" = 43 ] || fail "a token is 43 characters: ${#alice_token}"
    [ "$(stat -c %a "$pki/tokens")" = 600 ] || fail "the engine's token file: mode $(stat -c %a "$pki/tokens")"
    head -c 32 /dev/urandom | base64 | tr -d '=+/' >"$pki/wrong.token"
    chmod 600 "$pki/wrong.token"

    # Refused at start: an API others reach with neither TLS nor tokens
    # (refused before anything binds), a token file others can read.
    refuse_start() {  # refuse_start PATTERN FLAGS...: the engine exits at once, saying PATTERN
      local pat=$1
      shift
      timeout 20 "$engine" --data-dir "$data/refused" --listen 127.0.0.1:0 --metrics-listen none "$@" \
        >"$data/refused.log" 2>&1
      local r=$?
      [ "$r" -ne 0 ] && [ "$r" -ne 124 ] || fail "the engine should refuse to start with $*: rc=$r"
      grep -qE "$pat" "$data/refused.log" || fail "the refusal should say '$pat': $(cat "$data/refused.log")"
    }
    refuse_start "would take calls from anyone.*--api-insecure" --api-listen 0.0.0.0:0
    refuse_start "would cross the network in clear text" --api-listen 0.0.0.0:0 --api-token-file "$pki/tokens"
    chmod 644 "$pki/tokens"
    refuse_start "other users can read it: chmod 600" --api-listen 127.0.0.1:0 --api-token-file "$pki/tokens"
    chmod 600 "$pki/tokens"
    refuse_start "needs both a certificate" --api-listen 127.0.0.1:0 --api-tls-cert "$pki/engine.crt"

    start --api-tls-cert "$pki/engine.crt" --api-tls-key "$pki/engine.key" \
      --api-tls-client-ca "$pki/ca.crt" --api-token-file "$pki/tokens"
    grep -q "management API on 127.0.0.1:$api_port (gRPC, TLS, client certificates required, 2 token(s))" \
      "$data/engine.log" || fail "the start-up line should say how the API is secured: $(grep 'management API' "$data/engine.log")"
    tls=(--api-tls-ca "$pki/ca.crt")
    alice=("${tls[@]}" --api-tls-cert "$pki/alice.crt" --api-tls-key "$pki/alice.key")
    # Plain, TLS without a client certificate, another CA's certificate: no call gets through.
    wf pool list
    [ "$rc" -eq 1 ] && grep -q "^weft: no engine answers at 127.0.0.1:$api_port .*--api-tls-ca" <<<"$err" ||
      fail "plain to a TLS API: rc=$rc $err"
    wf pool list "${tls[@]}"
    [ "$rc" -eq 1 ] && grep -q "^weft: no engine answers at 127.0.0.1:$api_port over TLS" <<<"$err" ||
      fail "no client certificate: rc=$rc $err"
    # (each with a good token: only the certificate is wrong)
    no_tls_session() {  # no_tls_session WHAT: the last call got no TLS session
      [ "$rc" -eq 1 ] && grep -q "^weft: no engine answers at 127.0.0.1:$api_port over TLS" <<<"$err" ||
        fail "$1: rc=$rc $err"
    }
    wf pool list "${tls[@]}" --api-tls-cert "$pki/mallory.crt" --api-tls-key "$pki/mallory.key" \
      --api-token-file "$pki/alice.token"
    no_tls_session "another CA's client certificate"
    # The engine's certificate checked: against another CA, or for another name.
    wf pool list --api-tls-ca "$pki/rogue-ca.crt" --api-tls-cert "$pki/alice.crt" --api-tls-key "$pki/alice.key" \
      --api-token-file "$pki/alice.token"
    no_tls_session "the engine's certificate checked against another CA"
    wf pool list "${alice[@]}" --api-tls-name other.test --api-token-file "$pki/alice.token"
    no_tls_session "the engine's certificate for another name"
    # A good certificate without a token, with a wrong one.
    refused UNAUTHENTICATED "needs a token" pool list "${alice[@]}"
    refused UNAUTHENTICATED "not one this engine's API knows" pool list "${alice[@]}" --api-token-file "$pki/wrong.token"
    # Certificate and token: calls go through (the token also from the environment).
    ok pool create p "$data/pool.img" --size 64MiB "${alice[@]}" --api-token-file "$pki/alice.token"
    WEFT_API_TOKEN_FILE=$pki/bob.token WEFT_API_TLS_CA=$pki/ca.crt WEFT_API_TLS_CERT=$pki/alice.crt \
      WEFT_API_TLS_KEY=$pki/alice.key ok pool list --json
    jqe '.pools | length == 1'
    ok volume create p v1 4MiB "${alice[@]}" --api-tls-name engine.test --api-token-file "$pki/bob.token"
    wf pool create p "$data/pool2.img" --size 64MiB "${alice[@]}" --api-token-file "$pki/alice.token"
    [ "$rc" -eq 1 ] || fail "a second pool p should be refused: rc=$rc"
    # What a client sends cannot forge an audit line (a newline in a name).
    wf pool create $'p\naudit: token admin ipv4:1.2.3.4:1 DestroyPool name=p -> ok' "$data/pool4.img" \
      --size 64MiB "${alice[@]}" --api-token-file "$pki/alice.token"
    grep -q "^audit: token admin" "$data/engine.log" && fail "a client forged an audit line"
    grep -qF 'CreatePool name=p\x0aaudit: token admin' "$data/engine.log" ||
      fail "the newline should be escaped in the audit line: $(grep 'audit:.*CreatePool' "$data/engine.log")"
    # A client key others can read is refused by the CLI before any call.
    chmod 644 "$pki/alice.key"
    wf pool list "${alice[@]}" --api-token-file "$pki/alice.token"
    [ "$rc" -eq 1 ] && grep -q "other users can read it" <<<"$err" || fail "a readable client key: rc=$rc $err"
    chmod 600 "$pki/alice.key"

    # The audit log: every change and every refusal, who, what, the result;
    # reads that went through are not there; no token anywhere in the log.
    log=$(cat "$data/engine.log")
    grep -qE "audit: cert operator-alice, token alice ipv4:127\.0\.0\.1:[0-9]+ CreatePool name=p .* -> ok" <<<"$log" ||
      fail "no audit line for alice's CreatePool: $(grep audit: <<<"$log")"
    grep -qE "audit: cert operator-alice, token bob ipv4:127\.0\.0\.1:[0-9]+ CreateVolume pool=p name=v1 size_bytes=4194304 -> ok" <<<"$log" ||
      fail "no audit line for bob's CreateVolume: $(grep audit: <<<"$log")"
    grep -qE "audit: cert operator-alice, token alice .* CreatePool name=p .* -> failed: .*exists" <<<"$log" ||
      fail "no audit line for the failed CreatePool: $(grep audit: <<<"$log")"
    [ "$(grep -cE "audit: cert operator-alice ipv4:.* ListPools -> failed: .*token" <<<"$log")" = 2 ] ||
      fail "want 2 audit lines for the refused ListPools: $(grep audit: <<<"$log")"
    grep -q "audit: .*ListPools -> ok" <<<"$log" && fail "a read that went through is audited: $(grep audit: <<<"$log")"
    for t in "$alice_token" "$(<"$pki/bob.token")" "$(<"$pki/wrong.token")"; do
      grep -qF "$t" "$data/engine.log" && fail "a token is in the engine's log"
    done
    # Secrets in a request are not shown: a host key set through the API.
    ok key gen-dhchap -o "$pki/host.key"
    ok host-key set nqn.2014-08.io.weft.test:h1 --key-file "$pki/host.key" "${alice[@]}" --api-token-file "$pki/alice.token"
    grep -qE "audit: .* SetHostKey host_nqn=nqn.2014-08.io.weft.test:h1 .*dhchap_key=\*\*\* .*-> ok" "$data/engine.log" ||
      fail "SetHostKey's audit line should hide the key: $(grep 'audit: .*SetHostKey' "$data/engine.log")"
    grep -qF "$(cut -d: -f3 "$pki/host.key")" "$data/engine.log" && fail "the host key is in the engine's log"

    # Tokens alone, on loopback without TLS: the same checks on a plain channel.
    start --api-token-file "$pki/tokens"
    refused UNAUTHENTICATED "needs a token" pool list
    ok pool list --api-token-file "$pki/alice.token"
    ok pool create q "$data/pool3.img" --size 64MiB --api-token-file "$pki/alice.token"
    log=$(cat "$data/engine.log")
    grep -qE "audit: anonymous ipv4:127\.0\.0\.1:[0-9]+ ListPools -> failed: .*needs a token" <<<"$log" ||
      fail "no audit line for the refused call: $(grep audit: <<<"$log")"
    grep -qE "audit: token alice ipv4:127\.0\.0\.1:[0-9]+ CreatePool name=q .* -> ok" <<<"$log" ||
      fail "no audit line for CreatePool q: $(grep audit: <<<"$log")"
    ;;
  *)
    echo "unknown case $case_name"
    exit 2
    ;;
esac
echo "PASS ($case_name)"
