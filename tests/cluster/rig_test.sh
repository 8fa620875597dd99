#!/usr/bin/env bash
# The cluster rig's smoke test: every fault primitive of tests/cluster/rig.sh
# against real engines and the real CLI.
#   rig_test.sh ENGINE WEFT
# Three nodes; node 2 serves a volume; nodes 1 and 3 and the client do I/O to
# it over NVMe/TCP while faults come and go. Prints PASS, or a FAIL line and
# the engines' logs.
set -u
WEFT_ENGINE=$1
WEFT_CLI=$2
source "$(dirname "$0")/rig.sh"

# Network namespaces need root; ctest counts exit code 77 as skipped.
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null || ! command -v tc >/dev/null; then
  echo "SKIP: the rig needs root, nft and tc (scripts/setup.sh installs nftables)"
  exit 77
fi

start_time=$SECONDS
fail() {
  echo "FAIL: $*"
  rig_dump 20
  exit 1
}
# step TEXT: a progress line with the seconds since the start.
step() { echo "[$((SECONDS - start_time))s] $*"; }
# now_ms: a monotonic-enough clock in milliseconds.
now_ms() {
  local t=${EPOCHREALTIME/./}
  echo $((t / 1000))
}

MiB=$((1 << 20))
blocks_4m=$((4 * MiB / 512))
# Short I/O timeouts: a fault shows up within seconds. The CLI's --timeout
# does not bound the TCP handshake (weft's initiator connects without a
# deadline: silently dropped SYNs wait for the kernel's retries, minutes), so
# an outer `timeout` bounds every command: 20 s where it should work, 4 s
# where it should fail (an unhindered read takes well under a second).
io_timeout=2
outer_timeout=20
fail_timeout=4

rig_init 3 || fail "rig_init"
for i in 1 2 3; do
  rig_start_engine "$i" || fail "start node $i"
done
step "3 nodes up (rig $rig_id, $rig_dir)"

# Node 2: a pool in its data dir, a volume shared to any host.
out=$(rig_cli 2 pool create p0 "$rig_dir/n2/p0.img" --size 256MiB --cluster-size 1MiB 2>&1) ||
  fail "pool create: $out"
out=$(rig_cli 2 volume create p0 v0 64MiB 2>&1) || fail "volume create: $out"
out=$(rig_cli 2 volume share p0 v0 --any-host --json 2>&1) || fail "volume share: $out"
nqn=$(jq -r .nqn <<<"$out")
[ -n "$nqn" ] && [ "$nqn" != null ] || fail "no NQN in the share: $out"
jq -e --arg a "$(rig_ip 2):4420" '.listeners | index($a) != null' <<<"$out" >/dev/null ||
  fail "the share is not on $(rig_ip 2):4420: $out"

# nv FROM CMD ARGS...: weft nvme CMD against node 2's volume from node FROM
# (c: the client), with --timeout $tmo (default $io_timeout), killed after
# $limit (default $outer_timeout) seconds;
# $nv_out its output, $nv_rc its exit code (124 or 137: killed), $nv_ms its time.
nv() {
  local from=$1 cmd=$2 t0
  shift 2
  t0=$(now_ms)
  nv_out=$(rig_node "$from" timeout -k 2 "${limit:-$outer_timeout}" "$WEFT_CLI" nvme "$cmd" \
    -a "$(rig_ip 2)" -s 4420 \
    -n "$nqn" --hostnqn "nqn.2014-08.io.weft:rig:host-$from" --timeout "${tmo:-$io_timeout}" "$@" 2>&1)
  nv_rc=$?
  nv_ms=$(($(now_ms) - t0))
}
ref=$rig_dir/ref.bin
head -c $((4 * MiB)) /dev/urandom >"$ref"
# works FROM: a read of the volume's first 64 KiB from FROM succeeds (within
# 8 s) and matches what was written.
works() {
  limit=8 nv "$1" read --lba 0 --blocks 128 -o "$rig_dir/got.$1"
  [ "$nv_rc" -eq 0 ] && cmp -s -n $((128 * 512)) "$ref" "$rig_dir/got.$1"
}
# expect_works FROM WHAT: works FROM, within 15 s (a link may need a moment).
expect_works() {
  rig_wait 15 works "$1" || fail "$2: I/O from $1 does not work: rc=$nv_rc $nv_out"
}
# expect_fails WHAT FROM...: a read from each FROM (at once) fails, or hangs
# and is killed, within $fail_timeout seconds.
expect_fails() {
  local what=$1 from pids=() rc ms why
  shift
  for from in "$@"; do
    (
      limit=$fail_timeout nv "$from" read --lba 0 --blocks 8 -o /dev/null
      echo "$nv_rc $nv_ms $(head -1 <<<"$nv_out")" >"$rig_dir/fails.$from"
    ) &
    pids+=($!)
  done
  wait "${pids[@]}" # not a bare wait: the engines are children too
  for from in "$@"; do
    read -r rc ms why <"$rig_dir/fails.$from" || fail "$what: no result from $from"
    [ "$rc" -ne 0 ] || fail "$what: I/O from $from still works"
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || why="no answer, killed by timeout"
    step "  $what: I/O from $from fails after $ms ms: $why"
  done
}

# Write 4 MiB from node 1, read it back from nodes 1 and 3 and the client.
nv 1 write --lba 0 --blocks "$blocks_4m" -i "$ref"
[ "$nv_rc" -eq 0 ] || fail "write from node 1: $nv_out"
for from in 1 c 3; do
  nv "$from" read --lba 0 --blocks "$blocks_4m" -o "$rig_dir/back.bin"
  [ "$nv_rc" -eq 0 ] || fail "read from $from: $nv_out"
  cmp -s "$ref" "$rig_dir/back.bin" || fail "the data read from $from differs from the data written"
done
step "4 MiB written from node 1, read back from nodes 1, 3 and the client"

# Link down on node 2: I/O fails; link up: it works again.
rig_link_down 2 || fail "rig_link_down"
rig_link_down 2 || fail "rig_link_down twice"
expect_fails "link down" 1
rig_link_up 2 || fail "rig_link_up"
rig_link_up 2 || fail "rig_link_up twice"
expect_works 1 "link up"
step "link down/up"

# Node 2 drops everything: nobody reaches it; undropped: everybody does.
rig_drop 2 || fail "rig_drop 2"
rig_drop 2 || fail "rig_drop 2 twice"
expect_fails "drop all" 1 c
rig_undrop 2 || fail "rig_undrop"
rig_undrop 2 || fail "rig_undrop twice"
expect_works 1 "undrop"
expect_works c "undrop"
step "drop all / undrop"

# Node 2 drops only node 1, then node 3 too: the client still gets through.
rig_drop 2 1 || fail "rig_drop 2 1"
rig_drop 2 1 || fail "rig_drop 2 1 twice"
expect_fails "drop 2<->1" 1
expect_works c "drop 2<->1"
expect_works 3 "drop 2<->1"
rig_drop 2 3 || fail "rig_drop 2 3"
expect_fails "drop 2<->1,3" 1 3
expect_works c "drop 2<->1,3"
out=$(rig_cli 2 volume list --json 2>&1) || fail "the API from the client while 2<->1,3 drop: $out"
rig_undrop 2 || fail "rig_undrop"
expect_works 1 "undrop"
expect_works 3 "undrop"
step "drop one peer / undrop"

# A slow link: 4 MiB through node 2's shaped side takes clearly longer than
# unshaped, in this run. Reads cross node 2's egress (out), writes its
# ingress (in). The rate makes 4 MiB take ~4 s, a sanitizer build's
# unshaped transfer well under half that.
rate_kbit=8000
min_ms=$((4 * MiB * 8 / rate_kbit / 2)) # half what the rate allows: tbf shapes at all
timed() {
  local what=$1
  if [ "$what" = read ]; then
    tmo=10 nv 1 read --lba 0 --blocks "$blocks_4m" -o "$rig_dir/slow.bin"
    [ "$nv_rc" -eq 0 ] && cmp -s "$ref" "$rig_dir/slow.bin" || fail "4 MiB read: rc=$nv_rc $nv_out"
  else
    tmo=10 nv 1 write --lba 0 --blocks "$blocks_4m" -i "$ref"
    [ "$nv_rc" -eq 0 ] || fail "4 MiB write: $nv_out"
  fi
}
# The fastest of two unshaped runs, so a hiccup does not make the base slow.
base() {
  timed "$1"
  local a=$nv_ms
  timed "$1"
  [ "$a" -lt "$nv_ms" ] && nv_ms=$a
}
for pair in read:out write:in; do
  what=${pair%%:*}
  dir=${pair##*:}
  base "$what"
  fast=$nv_ms
  rig_slow 2 "${rate_kbit}kbit" "$dir" || fail "rig_slow $dir"
  rig_slow 2 "${rate_kbit}kbit" "$dir" || fail "rig_slow $dir twice"
  timed "$what"
  slow=$nv_ms
  rig_unslow 2 || fail "rig_unslow"
  rig_unslow 2 || fail "rig_unslow twice"
  timed "$what"
  after=$nv_ms
  step "  4 MiB $what: ${fast} ms, shaped ($dir ${rate_kbit}kbit) ${slow} ms, unshaped again ${after} ms"
  [ "$slow" -ge $((2 * fast)) ] && [ "$slow" -ge "$min_ms" ] ||
    fail "rig_slow $dir: the shaped $what took $slow ms, unshaped $fast ms (want >= 2x and >= $min_ms ms)"
  [ $((2 * after)) -le "$slow" ] ||
    fail "rig_unslow: the $what still takes $after ms (shaped: $slow ms)"
done
step "slow / unslow"

# Frozen engine: connections time out; resumed: it answers again.
rig_stop 2 || fail "rig_stop"
rig_stop 2 || fail "rig_stop twice"
expect_fails "stopped" 1
rig_cont 2 || fail "rig_cont"
expect_works 1 "continued"
step "stop / cont"

# Killed and restarted: the pool, the share and the data are still there.
pid=$(rig_pid 2)
rig_kill 2 || fail "rig_kill"
! kill -0 "$pid" 2>/dev/null || fail "the engine (pid $pid) is still there after rig_kill"
rig_alive 2 && fail "rig_alive after rig_kill"
rig_kill 2 || fail "rig_kill twice"
expect_fails "killed" 1
rig_restart_engine 2 || fail "rig_restart_engine"
[ "$(rig_pid 2)" != "$pid" ] && rig_alive 2 || fail "no new engine after rig_restart_engine"
expect_works 1 "restarted"
nv c read --lba 0 --blocks "$blocks_4m" -o "$rig_dir/back.bin"
[ "$nv_rc" -eq 0 ] && cmp -s "$ref" "$rig_dir/back.bin" || fail "the 4 MiB after restart: $nv_out"
out=$(rig_cli 2 volume list --json 2>&1) || fail "volume list after restart: $out"
jq -e --arg n "$nqn" '.volumes[] | select(.name == "v0") | .share_nqn == $n' <<<"$out" >/dev/null ||
  fail "the share is gone after restart: $out"
# A clean restart (SIGTERM) too.
rig_restart_engine 2 || fail "rig_restart_engine of a running engine"
expect_works 1 "restarted cleanly"
step "kill / restart"

# Cleanup leaves nothing behind: no namespace, no engine, no directory.
pids=("${rig_pids[@]}")
id=$rig_id
dir=$rig_dir
rig_cleanup
left=$(ip netns list | grep "^wr${id}[hnc]")
[ -z "$left" ] || fail "namespaces left: $left"
for pid in "${pids[@]}"; do
  ! kill -0 "$pid" 2>/dev/null || fail "engine pid $pid is still running"
done
[ ! -e "$dir" ] || fail "$dir is still there"
step "cleanup left nothing"
echo PASS
