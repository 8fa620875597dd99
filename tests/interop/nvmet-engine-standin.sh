#!/usr/bin/env bash
# nvmet-engine-standin.sh - a stand-in for weft-engine, with the command line
# kernel_host_test.sh assumes, that serves the Linux kernel's own NVMe/TCP
# target (nvmet, in a QEMU VM started by kernel-nvme-vm) instead. It exists only
# to validate kernel_host_test.sh itself end to end (engine start, NQN parsing,
# SIGTERM stop, restart on the same --data-dir, --allow-host) while weft's
# target is not there yet:
#
#   tests/interop/kernel_host_test.sh tests/interop/nvmet-engine-standin.sh
#
# Expected result: everything passes except the reservation steps (Debian's
# 6.1 nvmet has no reservations, and against an engine they are required).
#
#   nvmet-engine-standin.sh --demo --listen 127.0.0.1:PORT --data-dir DIR
#                           [--cores LIST] [--allow-host NQN]...
# The namespace is DIR/standin-ns.img (256 MiB, created once; a virtio-blk disk
# in the target VM, so data survives a restart). Prints the `nvme connect` line
# once nvmet listens; SIGTERM stops the VM and exits 0.
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KNVM=${WEFT_KNVM:-$HERE/kernel-nvme-vm}
NQN=nqn.2026-11.io.weft:demo
SIZE_MB=256

listen= dir= allow=() demo=0
while [ $# -gt 0 ]; do
  case $1 in
    --demo) demo=1 ;;
    --listen) listen=$2; shift ;;
    --data-dir) dir=$2; shift ;;
    --cores) shift ;;
    --allow-host) allow+=(--allow-host "$2"); shift ;;
    *) echo "standin: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ $demo = 1 ] && [ -n "$listen" ] && [ -n "$dir" ] || { echo "standin: needs --demo --listen ADDR:PORT --data-dir DIR" >&2; exit 2; }
addr=${listen%:*} port=${listen##*:}
[ "$addr" = 127.0.0.1 ] || { echo "standin: only 127.0.0.1 is supported" >&2; exit 2; }
mkdir -p "$dir" || exit 1
img=$dir/standin-ns.img
[ -f "$img" ] || truncate -s ${SIZE_MB}M "$img" || exit 1

ready=$(mktemp -u "${TMPDIR:-/tmp}/standin-ready.XXXXXX")
"$KNVM" target --port "$port" --nqn "$NQN" --backend disk --disk "$img" --smp 1 --timeout 1800 \
    --ready-file "$ready" "${allow[@]}" > "$dir/standin-target.log" 2>&1 < /dev/null &
tpid=$!
stop() { kill -TERM "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null; rm -f "$ready"; exit 0; }
trap stop TERM INT
while [ ! -s "$ready" ]; do
  if ! kill -0 "$tpid" 2>/dev/null; then
    wait "$tpid"; rc=$?
    echo "standin: target VM exited (rc=$rc) before it was ready:" >&2; tail -5 "$dir/standin-target.log" >&2
    [ $rc = 3 ] && grep -q 'already in use' "$dir/standin-target.log" && echo "standin: Address already in use" >&2
    exit 1
  fi
  sleep 0.5
done
echo "standin: kernel nvmet serving $img (log: $dir/standin-target.log)" >&2
echo "nvme connect -t tcp -a $addr -s $port -n $NQN"
wait "$tpid"
echo "standin: target VM ended on its own" >&2
exit 1
