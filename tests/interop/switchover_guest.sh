# Guest half of tests/interop/switchover_test.sh: runs inside the initiator
# VM (busybox ash, Debian 6.1 kernel nvme-tcp host with native multipath,
# nvme-cli, fio), as `kernel-nvme-vm initiator --no-connect --script JOB`
# where JOB is a block of W_* assignments followed by this file.
#
# Steps (each prints WEFT-STEP <id> PASS|FAIL <seconds>s <note>):
#   switchover/connect  both paths of the volume's NQN: the nexus's (live,
#                       optimized, the namespace) and the standby's
#                       (inaccessible, no namespace yet)
#   switchover/fio      fio 4k random writes with crc32c verify; once its
#                       writes flow the guest prints WEFT-SWITCH-KILL and the
#                       host SIGKILLs the nexus's node; the control plane
#                       moves the nexus to the standby node; fio must end
#                       without an error and the kernel log no I/O error
#   switchover/paths    afterwards: the standby's path serves the namespace,
#                       optimized
#   switchover/disconnect
#
# Inputs: W_ADDR (the host as the guest sees it), W_NQN, W_PORT1 (the
# nexus's node), W_PORT2 (the standby's), W_HOSTNQN, W_HOSTID, W_MB (the
# volume's size), W_FIO_SIZE, W_FIO_IOPS (write rate cap: how long the
# writes last).
# The job holds guest_lib.sh (step, note, tmo, ...) before this file.
HEAD=

ctrl_state() { cat /sys/class/nvme/"$1"/state 2>/dev/null || echo gone; }
writes() { write_requests "$HEAD"; }

do_connect() {
  local p i c1= c2=
  for p in "$W_PORT1" "$W_PORT2"; do
    # Reconnect every second for a minute: the lost node's path keeps I/O
    # queued (multipath) until the other path serves the namespace.
    tmo 30 nvme connect -t tcp -a "$W_ADDR" -s "$p" -n "$W_NQN" --hostnqn="$W_HOSTNQN" \
      --hostid="$W_HOSTID" --nr-io-queues=2 --reconnect-delay=1 --ctrl-loss-tmo=60 \
      > /tmp/connect.out 2>&1 ||
      { note "connect to $W_ADDR:$p: $(tail -2 /tmp/connect.out | tr '\n' ' ')"; return 1; }
  done
  for i in $(seq 50); do
    c1=$(ctrl_at "$W_NQN" "$W_PORT1") && c2=$(ctrl_at "$W_NQN" "$W_PORT2") && HEAD=$(mpath_head "$W_NQN") &&
      [ -b "/dev/$HEAD" ] && [ "$(path_state "$c1")" = optimized ] && break
    sleep 0.2
  done
  C1=$c1 C2=$c2
  [ -n "$HEAD" ] && [ -b "/dev/$HEAD" ] || { note "no multipath namespace for $W_NQN: $(nvme list-subsys 2>&1 | tr '\n' ' ')"; return 1; }
  local have want=$((W_MB * 1048576))
  have=$(blockdev --getsize64 "/dev/$HEAD" 2>/dev/null || echo 0)
  [ "$have" = "$want" ] || { note "/dev/$HEAD has $have bytes, expected $want"; return 1; }
  [ "$(path_state "$c1")" = optimized ] && [ "$(path_state "$c2")" != optimized ] ||
    { note "paths: $c1 $(path_state "$c1"), $c2 $(path_state "$c2"); expected the nexus's optimized, the standby's not"; return 1; }
  note "/dev/$HEAD: $c1 (nexus, port $W_PORT1) $(path_state "$c1"); $c2 (standby, port $W_PORT2) $(ctrl_state "$c2"), namespace: $(path_state "$c2")"
}

do_fio() {
  local pid rc w0 i=0 d0 ioerr
  d0=$(dmesg | wc -l)
  w0=$(writes)
  (trap '' PIPE
   tmo 400 fio --filename="/dev/$HEAD" --ioengine=libaio --direct=1 --group_reporting \
      --eta=never --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
      --name=switchover --rw=randwrite --bs=4k --iodepth=16 --numjobs=1 --offset=0 \
      --size="$W_FIO_SIZE" --rate_iops=,"$W_FIO_IOPS" --verify=crc32c) > /tmp/fio.out 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    if [ $(( $(writes) - w0 )) -gt 200 ]; then echo "WEFT-SWITCH-KILL"; break; fi
    i=$((i + 1)); [ $i -lt 600 ] || break
    sleep 0.1
  done
  wait $pid; rc=$?
  echo "fio:"; tail -25 /tmp/fio.out
  dmesg | tail -n +$((d0 + 1)) | grep -E "nvme" > /tmp/dmesg.out
  echo "kernel messages during fio:"; tail -40 /tmp/dmesg.out
  [ $rc -eq 0 ] || { note "fio exit $rc: $(grep -m1 -iE 'err|fail' /tmp/fio.out)"; return 1; }
  grep -q 'err= 0' /tmp/fio.out || { note "fio reported errors: $(grep -m1 'err=' /tmp/fio.out)"; return 1; }
  ioerr=$(grep -c 'I/O error' /tmp/dmesg.out)
  [ "$ioerr" -eq 0 ] || { note "fio passed, but the kernel logged $ioerr I/O error(s): $(grep -m1 'I/O error' /tmp/dmesg.out)"; return 1; }
  note "fio wrote and verified $W_FIO_SIZE across the switchover, no error; $(grep -m1 -oE 'WRITE: bw=[^,]*' /tmp/fio.out)"
}

do_paths() {
  local s2
  s2=$(path_state "$C2")
  [ "$s2" = optimized ] || { note "the standby's path ($C2) is '$s2', not optimized"; return 1; }
  note "$C2 (port $W_PORT2) serves the namespace, optimized; $C1 (the lost node) $(ctrl_state "$C1")"
}

do_disconnect() {
  tmo 90 nvme disconnect -n "$W_NQN" > /tmp/disc.out 2>&1 ||
    { note "nvme disconnect: $(tail -1 /tmp/disc.out)"; return 1; }
}

echo "weft guest: switchover nqn=$W_NQN paths $W_ADDR:$W_PORT1 $W_ADDR:$W_PORT2 kernel=$(uname -r)"
echo "WEFT-PLAN switchover/connect switchover/fio switchover/paths switchover/disconnect"
if step switchover/connect do_connect; then
  step switchover/fio do_fio && step switchover/paths do_paths
fi
step switchover/disconnect do_disconnect
echo "WEFT-DONE failures=$FAILS"
[ $FAILS -eq 0 ]
