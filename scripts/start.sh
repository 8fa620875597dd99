#!/usr/bin/env bash
# Installs, builds and starts weft on this machine with its embedded default:
# a small cluster: weft-control (its store an SQLite file) and three engines
# as three storage nodes, each with its own 1 GiB pool file, all under
# ./weft-data. It makes a 3-replica volume of 256 MiB, publishes it to this
# machine's host NQN and prints the nvme connect line. Ctrl-C stops it all
# (the volume is unpublished cleanly first); the next start finds the same
# volume with its data.
#
#   scripts/start.sh                 the cluster
#   scripts/start.sh ENGINE-ARGS...  one weft-engine with these arguments
#                                    instead (e.g. --demo; see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ $# -gt 0 ]; then
  scripts/build.sh release weft-engine
  exec build/release/src/engine/weft-engine "$@"
fi
scripts/build.sh release weft-engine weft-control weft

bin=build/release/src
data=${WEFT_DATA:-weft-data}
mkdir -p "$data"
chmod 700 "$data"
control=127.0.0.1:10130
export WEFT_CONTROL=http://$control
volume_size=256MiB
ncpu=$(nproc)

pids=()
published=
stop() {
  trap - INT TERM EXIT
  echo
  if [ -n "$published" ]; then
    echo "unpublishing (the nexus closes cleanly)..."
    $bin/cli/weft volume unpublish "$published" >/dev/null || true
  fi
  echo "stopping weft..."
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit 0
}
trap stop INT TERM EXIT

wait_for() {  # SECONDS WHAT COMMAND...
  local secs=$1 what=$2
  shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "start: $what did not happen in ${secs}s; see $data/*.log" >&2
  exit 1
}

# Each in a session of its own: Ctrl-C in the terminal reaches this script
# only, which unpublishes first and then stops them in order.
setsid $bin/control/weft-control --listen $control --data-dir "$data/control" >"$data/control.log" 2>&1 &
pids+=($!)
wait_for 20 "weft-control answering on $control" curl -sf "$WEFT_CONTROL/v1/status"

for i in 1 2 3; do
  mkdir -p "$data/node$i"
  setsid $bin/engine/weft-engine --data-dir "$data/node$i" --cores $(((i - 1) % ncpu)) \
    --listen 127.0.0.1:$((4419 + i)) --api-listen 127.0.0.1:$((10130 + i)) \
    --metrics-listen 127.0.0.1:$((9501 + i)) --control "$WEFT_CONTROL" --node-id node$i \
    --node-label zone=zone$i \
    >"$data/node$i.log" 2>&1 &
  pids+=($!)
done
online() { [ "$($bin/cli/weft node list --json | jq '[.nodes[] | select(.state == "online")] | length')" = 3 ]; }
wait_for 30 "three nodes online" online
$bin/cli/weft node list

for i in 1 2 3; do
  $bin/cli/weft pool create pool$i --node node$i --disk "$(realpath "$data")/node$i/pool.img" --size 1GiB
done

# The volume's id is kept, so a second start finds the same volume.
[ -s "$data/volume-id" ] || cat /proc/sys/kernel/random/uuid >"$data/volume-id"
id=$(cat "$data/volume-id")
$bin/cli/weft volume create --id "$id" --size $volume_size --replicas 3 | head -1
host=$($bin/cli/weft nvme hostnqn)  # as nvme-cli finds it too
$bin/cli/weft volume publish "$id" --host-nqn "$host" --node node1 >/dev/null
published=$id
echo
$bin/cli/weft volume get "$id"
cat <<EOM

weft is running: weft-control on $WEFT_CONTROL, three engines (node1-3), logs in $data/.
Try: $bin/cli/weft volume list; $bin/cli/weft events
     $bin/cli/weft nvme verify -a 127.0.0.1 -s 4420 -n nqn.2026-11.io.weft:nexus:$id --blocks 1024
     $bin/cli/weft attach -a 127.0.0.1 -s 4420 -n nqn.2026-11.io.weft:nexus:$id
       (root: the volume as /dev/loopN without nvme-tcp; weft detach it before Ctrl-C)
Ctrl-C stops it all.
EOM
wait
