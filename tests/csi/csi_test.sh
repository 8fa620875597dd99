#!/usr/bin/env bash
# weft-csi against weft-control and three real engines on loopback:
#   csi_test.sh WEFT ENGINE CONTROL CSI CONFORMANCE
# CONFORMANCE walks csi-sanity's checks over the plugins' unix sockets: the
# controller's (conformance_test.cc), and, when this runs as root with FUSE
# and loop devices, the node's (node_test.cc) through two node plugins, "n1"
# and "n2", each with its own attachments and state, as two nodes would
# have. Around it: the plugin replaces a stale socket, refuses a path that
# is not one, removes its socket on SIGTERM, and leaves nothing behind on
# the engines or in the node plugins' state.
set -u
# Mounts (FUSE, the loop devices' file systems) in a mount namespace of this
# test's own: a namespace made meanwhile by another test (ip netns exec)
# copies every mount it sees and pins it, and a detach then finds its loop
# device busy.
if [ -z "${WEFT_OWN_MOUNT_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  WEFT_OWN_MOUNT_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi
weft=$1
engine=$2
control=$3
csi=$4
conformance=$5
case_name=csi
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../control/control_lib.sh"
GiB=$((1 << 30))

start_control
for i in 1 2 3; do start_node $i; done
wait_for 30 "3 nodes online" nodes_online 3
for i in 1 2 3; do
  expect 201 PUT /v1/pools/p$i "{\"node\":\"n$i\",\"disk\":\"$data/pool$i.img\",\"size\":$((2 * GiB))}"
done

sock=$data/csi/csi.sock
csi_pid=
start_csi() {
  "$csi" --endpoint "unix://$sock" --control "$url" >>"$data/csi.log" 2>&1 &
  csi_pid=$!
  pids+=("$csi_pid")
  wait_for 10 "weft-csi serving" grep -q "^serving unix://$sock" "$data/csi.log"
}
# A socket file left by a plugin that died is replaced.
mkdir -p "$data/csi"
python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$sock" ||
  fail "cannot make a stale socket"
start_csi
[ "$(stat -c %a "$sock")" = 600 ] || fail "the socket is mode $(stat -c %a "$sock"), not 600"

# weft-csi call: one CSI call from the command line.
out=$("$csi" call --endpoint "unix://$sock" GetPluginInfo) || fail "call GetPluginInfo: $out"
[ "$(jq -r .name <<<"$out")" = csi.weft.io ] || fail "call GetPluginInfo answered $out"
"$csi" call --endpoint "unix://$sock" Probe '{}' >/dev/null || fail "call Probe failed"
rc=0; out=$("$csi" call --endpoint "unix://$sock" CreateVolume '{"name":""}' 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "^CreateVolume: INVALID_ARGUMENT: " <<<"$out" || fail "call CreateVolume without a name: rc $rc, $out"
rc=0; out=$("$csi" call --endpoint "unix://$sock" NodeStageVolume '{"volume_id":' 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -q "not a NodeStageVolumeRequest" <<<"$out" || fail "call with bad JSON: rc $rc, $out"
rc=0; out=$("$csi" call --endpoint "unix://$sock" Nope 2>&1) || rc=$?
[ "$rc" = 2 ] && grep -q "no CSI method Nope" <<<"$out" || fail "call Nope: rc $rc, $out"

# Node plugins for n1 and n2 (userspace attach needs root, FUSE and loop
# devices; without them the node checks are skipped).
node_env=()
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ -c /dev/loop-control ]; then
  eps=
  for n in n1 n2; do
    mkdir -p "$data/$n"
    "$csi" --mode node --node-id $n --endpoint "unix://$data/$n/csi.sock" --weft "$weft" --control "$url" \
      --attach-run-dir "$data/$n/attach" --state-dir "$data/$n/state" >>"$data/csi-$n.log" 2>&1 &
    pids+=($!)
    wait_for 10 "weft-csi node $n serving" grep -q "^serving unix://" "$data/csi-$n.log"
    eps+="${eps:+,}$n=unix://$data/$n/csi.sock"
  done
  node_env=(WEFT_CSI_NODE_ENDPOINTS="$eps" WEFT_CSI_WORK="$data/work")
  # Given --control, a node plugin registers its node as a host.
  for n in n1 n2; do
    wait_for 10 "node $n registered as a host" curl -sf "$url/v1/hosts/$n" -o /dev/null
    [ "$(curl -sf "$url/v1/hosts/$n" | jq -r .host_nqn)" = "nqn.2026-11.io.weft:node:$n" ] ||
      fail "host $n: $(curl -s "$url/v1/hosts/$n")"
  done
  # weft attach VOLUME: published to this host through weft-control, then
  # attached; weft detach VOLUME detaches and unpublishes.
  expect 201 PUT /v1/volumes/6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d01 '{"size_bytes":16777216,"replicas":2}'
  av=6c1f4a1e-0d2b-4f57-9a53-3f7e2b1c9d01 ahost=nqn.2026-11.io.weft:node:attach-test
  adev=$("$weft" attach $av --control "$url" --hostnqn $ahost --run-dir "$data/attach-cli" 2>"$data/attach.err") ||
    fail "weft attach VOLUME: $(cat "$data/attach.err")"
  [ "$(blockdev --getsize64 "$adev")" = 16777216 ] || fail "weft attach VOLUME: $adev is $(blockdev --getsize64 "$adev") bytes"
  expect 200 GET /v1/volumes/$av
  [ "$(jq -r .published.host_nqn <<<"$body")" = $ahost ] || fail "not published to $ahost: $body"
  "$weft" detach $av --run-dir "$data/attach-cli" || fail "weft detach VOLUME"
  expect 200 GET /v1/volumes/$av
  [ "$(jq -r .published <<<"$body")" = null ] || fail "still published after weft detach: $body"
  expect 204 DELETE /v1/volumes/$av
else
  echo "note: not root with /dev/fuse and loop devices: the node checks are skipped"
fi

env WEFT_CSI_ENDPOINT="unix://$sock" WEFT_CONTROL_URL="$url" WEFT_CSI_NODES=n1,n2,n3 "${node_env[@]}" \
  "$conformance" || fail "the conformance checks failed"
for n in n1 n2; do
  [ -d "$data/$n/state" ] || continue
  [ -z "$(ls "$data/$n/state")" ] || fail "node $n's plugin still has $(ls "$data/$n/state")"
  [ -z "$(ls "$data/$n/attach" 2>/dev/null)" ] || fail "node $n still has attachments"
done

# Nothing left: no volume, no snapshot, no replica volume on any engine.
expect 200 GET /v1/volumes
[ "$(jq '.volumes | length' <<<"$body")" = 0 ] || fail "volumes left: $body"
expect 200 GET /v1/snapshots
[ "$(jq '.snapshots | length' <<<"$body")" = 0 ] || fail "snapshots left: $body"
for i in 1 2 3; do
  n=$("$weft" engine volume list --api "$(api_of $i)" --json | jq '.volumes | length')
  [ "$n" = 0 ] || fail "$n volume(s) left on node n$i"
done

# SIGTERM: the socket goes with the plugin.
kill -TERM "$csi_pid"
wait "$csi_pid"
rc=$?
[ "$rc" = 0 ] || fail "weft-csi exited $rc on SIGTERM"
[ ! -e "$sock" ] || fail "the socket outlived the plugin"
# A path that is not a socket is refused, not deleted.
echo keep >"$data/notasocket"
if "$csi" --endpoint "unix://$data/notasocket" --control "$url" >"$data/refused.log" 2>&1; then
  fail "weft-csi served on a regular file"
fi
grep -q "not a socket" "$data/refused.log" || fail "no sentence: $(cat "$data/refused.log")"
[ "$(cat "$data/notasocket")" = keep ] || fail "the file was touched"
echo "PASS: csi"
