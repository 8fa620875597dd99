#!/usr/bin/env bash
# switchover_test.sh - a replicated volume's nexus moves to another node while
# the Linux kernel's own NVMe/TCP host (Debian's 6.1 in QEMU, native
# multipath) writes to it with fio verify: no error, every block verified.
# The guest reaches the volume as a Kubernetes node would: weft-csi's node
# plugin (kernel attach) stages it with an ext4 file system and publishes it;
# fio writes a file in the mount.
#
#   switchover_test.sh WEFT_CLI WEFT_ENGINE WEFT_CONTROL WEFT_CSI [--work-dir DIR] [--keep]
#
# weft-control (SQLite) and three engines (n1-n3, controller ID ranges
# assigned by weft-control: the kernel refuses a second path with a duplicate
# controller ID, so the standby path proves them disjoint; 300 ms heartbeats, the control plane reconciling every 0.3 s) on
# 127.0.0.1; a 3-replica volume published to the VM's host NQN with its
# nexus on n1 and a standby path on another node, and a 1-replica 320 MiB
# volume for xfs (staged, grown, staged again by the guest first). The guest
# (switchover_guest.sh) stages the first through weft-csi (both paths connected, one
# multipath namespace: the nexus's path optimized, the standby's with no
# namespace yet), prints WEFT-CSI-RESIZE TAG VOLUME MIB (this script grows
# the volume; the guest's NodeExpandVolume grows the file system), runs fio 4k
# random writes with crc32c verify on a file of the published mount and
# prints WEFT-SWITCH-KILL once its writes flow; this script then SIGKILLs n1. The control plane must move the
# nexus to the standby node (row switchover/moved: the time from the kill),
# the guest's fio must end without an error and the kernel log no I/O error
# (rows switchover/* from the guest). Exit 0 only if every row passed.
#
# Needs root (QEMU) and tests/interop/setup.sh's packages, like
# kernel_host_test.sh, with which it shares the per-machine interop lock.
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KNVM=${WEFT_KNVM:-$HERE/kernel-nvme-vm}
GUEST_SCRIPT=$HERE/switchover_guest.sh
WEFT=${1:?usage: switchover_test.sh WEFT_CLI WEFT_ENGINE WEFT_CONTROL WEFT_CSI [--work-dir DIR] [--keep]}
ENGINE=${2:?engine}
CONTROL=${3:?control}
CSI=${4:?weft-csi}
shift 4
WORK= KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --work-dir) WORK=$2; shift ;;
    --keep) KEEP=1 ;;
    *) echo "switchover_test: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
AUTO_WORK=0
[ -n "$WORK" ] || { WORK=$(mktemp -d); AUTO_WORK=1; }
rm -rf "$WORK"; mkdir -p "$WORK"
TOTAL_TIMEOUT=${WEFT_INTEROP_TIMEOUT:-420}
VOL_MB=64 GROWN_MB=96 VOL2_MB=320 GROWN2_MB=384 FIO_SIZE=${WEFT_SWITCHOVER_FIO_SIZE:-16m} FIO_IOPS=${WEFT_SWITCHOVER_FIO_IOPS:-300}

SUMMARY_TITLE="weft nexus switchover under the kernel host" SETUP_ROW=switchover/setup
# shellcheck source=tests/interop/host_lib.sh
source "$HERE/host_lib.sh"
interop_lock switchover_test
declare -A EPID EPORT EAPI
"$KNVM" build > "$WORK/harness-build.log" 2>&1 9>&- ||
  fail_setup "kernel-nvme-vm build failed (run tests/interop/setup.sh as root): $(tail -1 "$WORK/harness-build.log")"

# ---------------------------------------------------------------- cluster ----
"$CONTROL" --listen 127.0.0.1:0 --data-dir "$WORK/control" --missed-beats 3 --engine-timeout 5 \
  --reconcile-interval 0.3 > "$WORK/control.log" 2>&1 9>&- &
PIDS+=($!)
for _ in $(seq 100); do
  port=$(grep -o 'listening 127.0.0.1:[0-9]*' "$WORK/control.log" | tail -1 | sed 's/.*://')
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/v1/status" > /dev/null && break
  sleep 0.1
done
[ -n "${port:-}" ] || fail_setup "weft-control did not start: $(tail -3 "$WORK/control.log")"
export WEFT_CONTROL=http://127.0.0.1:$port
start_node() {
  local i=$1 log=$WORK/engine$1.log
  mkdir -p "$WORK/e$i"
  "$ENGINE" --data-dir "$WORK/e$i" --cores 0 --poll-us 0 --listen 127.0.0.1:0 \
    --api-listen 127.0.0.1:0 --metrics-listen none --control "$WEFT_CONTROL" --node-id "n$i" \
    --heartbeat-ms 300 > "$log" 2>&1 9>&- &
  EPID[$i]=$!
  PIDS+=("${EPID[$i]}")
  for _ in $(seq 100); do
    grep -q 'management API on' "$log" && grep -q 'listening on' "$log" && break
    sleep 0.1
  done
  EPORT[$i]=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
  EAPI[$i]=$(grep -o 'management API on 127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*on //')
  [ -n "${EPORT[$i]}" ] && [ -n "${EAPI[$i]}" ] || fail_setup "engine n$i did not start: $(tail -3 "$log")"
}
for i in 1 2 3; do start_node $i; done
online() { [ "$("$WEFT" node list --json | jq '[.nodes[] | select(.state == "online")] | length')" = 3 ]; }
for _ in $(seq 100); do online && break; sleep 0.2; done
online || fail_setup "the three nodes are not online: $("$WEFT" node list 2>&1 | tr '\n' ' ')"
for i in 1 2 3; do
  out=$("$WEFT" pool create p$i --node n$i --disk "$WORK/pool$i.img" --size 768MiB 2>&1) ||
    fail_setup "pool create p$i: $out"
done
U=$(cat /proc/sys/kernel/random/uuid)
HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:$U HOSTID=$U
VOL=$(cat /proc/sys/kernel/random/uuid)
out=$("$WEFT" volume create --id "$VOL" --size ${VOL_MB}MiB --replicas 3 2>&1) || fail_setup "volume create: $out"
pub=$("$WEFT" volume publish "$VOL" --host-nqn "$HOSTNQN" --node n1 --json 2>&1) || fail_setup "publish: $pub"
NQN=$(jq -r .nqn <<< "$pub") P1=$(jq -r .port <<< "$pub") P2=$(jq -r '.standby.port // empty' <<< "$pub")
SB=$(jq -r '.standby.node // empty' <<< "$pub")
[ -n "$P2" ] && [ "$SB" != n1 ] || fail_setup "no standby path in the publication: $pub"
# A second volume for xfs (mkfs.xfs wants 300 MB): one replica, one path.
VOL2=$(cat /proc/sys/kernel/random/uuid)
out=$("$WEFT" volume create --id "$VOL2" --size ${VOL2_MB}MiB --replicas 1 2>&1) || fail_setup "volume create (xfs): $out"
pub=$("$WEFT" volume publish "$VOL2" --host-nqn "$HOSTNQN" --json 2>&1) || fail_setup "publish (xfs): $pub"
NQN2=$(jq -r .nqn <<< "$pub") P3=$(jq -r .port <<< "$pub")
record switchover/setup PASS "control plane $WEFT_CONTROL, 3 engines; volume $VOL (${VOL_MB} MiB, 3 replicas): nexus on n1 (port $P1), standby on $SB (port $P2)"

# --------------------------------------------------------------------- VM ----
job=$WORK/job.sh run=$WORK/vm vmlog=$WORK/vm.log
{
  echo "# generated by switchover_test.sh"
  for v in W_ADDR W_NQN W_PORT1 W_PORT2 W_HOSTNQN W_HOSTID W_MB W_GROWN_MB W_FIO_SIZE W_FIO_IOPS W_VOL \
           W_VOL2 W_NQN2 W_PORT3 W_MB2 W_GROWN_MB2; do
    case $v in
      W_GROWN_MB) val=$GROWN_MB ;; W_VOL) val=$VOL ;; W_VOL2) val=$VOL2 ;; W_NQN2) val=$NQN2 ;;
      W_PORT3) val=$P3 ;; W_MB2) val=$VOL2_MB ;; W_GROWN_MB2) val=$GROWN2_MB ;;
      W_ADDR) val=10.0.2.2 ;; W_NQN) val=$NQN ;; W_PORT1) val=$P1 ;; W_PORT2) val=$P2 ;;
      W_HOSTNQN) val=$HOSTNQN ;; W_HOSTID) val=$HOSTID ;; W_MB) val=$VOL_MB ;;
      W_FIO_SIZE) val=$FIO_SIZE ;; W_FIO_IOPS) val=$FIO_IOPS ;;
    esac
    printf "%s='%s'\n" "$v" "$val"
  done
  cat "$HERE/guest_lib.sh" "$GUEST_SCRIPT"
} > "$job"
log "booting the initiator VM (the volume's paths: 10.0.2.2:$P1 and 10.0.2.2:$P2, $NQN)"
"$KNVM" initiator --port "$P1" --nqn "$NQN" --hostnqn "$HOSTNQN" --hostid "$HOSTID" --no-connect \
  --script "$job" --add-bin "$CSI" --mem 1024 --smp 2 --timeout "$TOTAL_TIMEOUT" --run-dir "$run" > "$vmlog" 2>&1 9>&- &
VMPID=$!
killed_at= moved_note=
declare -A RESIZED
while kill -0 "$VMPID" 2>/dev/null; do
  # "WEFT-CSI-RESIZE TAG VOLUME MIB": the guest's NodeExpandVolume waits for it.
  while read -r _ tag rv rmb; do
    [ -n "$rmb" ] && [ -z "${RESIZED[$tag]:-}" ] || continue
    RESIZED[$tag]=1
    if out=$("$WEFT" volume resize "$rv" --size "${rmb}MiB" 2>&1); then
      record "csi/resize-$tag" PASS "volume $rv grown to $rmb MiB while staged"
    else record "csi/resize-$tag" FAIL "weft volume resize $rv: $out"; fi
  done < <(tr -d '\r' < "$run/results.log" 2>/dev/null | grep -a '^WEFT-CSI-RESIZE ')
  if [ -z "$killed_at" ] && grep -aq '^WEFT-SWITCH-KILL' "$run/results.log" 2>/dev/null; then
    kill -KILL "${EPID[1]}"
    killed_at=$(date +%s.%N)
    log "the guest's writes flow: SIGKILL n1 (the nexus's node)"
  fi
  if [ -n "$killed_at" ] && [ -z "$moved_note" ]; then
    node=$(curl -sf "$WEFT_CONTROL/v1/volumes/$VOL" | jq -r '.published.node // empty')
    if [ -n "$node" ] && [ "$node" != n1 ]; then
      moved_note=$(awk -v a="$killed_at" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
      log "the control plane moved the nexus to $node ${moved_note} s after the kill"
    fi
  fi
  sleep 0.1
done
wait "$VMPID"; vmrc=$?; VMPID=
if [ -z "$killed_at" ]; then record switchover/kill FAIL "the guest never gave the cue (WEFT-SWITCH-KILL)"
else record switchover/kill PASS "SIGKILL n1 once the guest's writes flowed"; fi
if [ -n "$moved_note" ]; then
  record switchover/moved PASS "the nexus on $SB ${moved_note} s after the kill ($(curl -sf "$WEFT_CONTROL/v1/events" | jq -r '[.events[] | select(.kind == "nexus-switched-over")][0].message'))"
else
  record switchover/moved FAIL "the publication still names n1: $(curl -sf "$WEFT_CONTROL/v1/volumes/$VOL" | jq -c .published)"
fi
record_guest_steps switchover/vm "$run" "$vmrc" "$vmlog"
if summary; then
  [ $AUTO_WORK = 1 ] && [ $KEEP = 0 ] && rm -rf "$WORK"
  exit 0
fi
echo "kept for diagnosis: $WORK (control.log, engine*.log, vm/results.log, vm/console.log)"
exit 1
