# Guest half of tests/interop/kernel_host_test.sh: runs inside the initiator
# VM (busybox ash, Debian 6.1 kernel nvme-tcp host, nvme-cli 2.3, fio 3.33,
# e2fsprogs), as `kernel-nvme-vm initiator --no-connect --script JOB` where JOB
# is a block of W_* assignments (written by the host script) followed by this
# file. Not meant to be run by hand on a real machine.
#
# The restart plan ends with the nexus steps (when W_NEXUS_NQN is set): the
# host has built a nexus on the engine over a local volume and the volumes of
# two more engines (replicas) and shared it to this host; the guest connects
# to it (nexus/connect), runs a 4k random write with crc32c verify
# (nexus/fio-verify-replica-killed) during which the host SIGKILLs one
# replica engine - the guest prints WEFT-NEXUS-FIO-RUNNING once fio's writes
# flow, which is the host's cue - and fio must end without an error, then
# disconnects (nexus/disconnect). Then it connects again with a 1 s keep-alive
# and runs fio while the host takes the nexus's share, then the engine's
# listener, away and back (nexus/path-flap, cue WEFT-NEXUS-FLAP; see
# nexus_flap) and disconnects (nexus/path-flap-disconnect).
#
# Every check is a step that prints one machine-readable line
#     WEFT-STEP <pass>/<name> PASS|FAIL|SKIP <seconds>s <note>
# The host script turns those into its summary table. Before the first step
# the whole plan is announced (WEFT-PLAN ...) so that the host can tell a step
# that never ran (VM crashed, timeout) from one that passed; WEFT-DONE ends it.
#
# Inputs (set by the host):
#   W_PLAN         main | restart
#   W_MODE         weft (everything required) | external (kernel nvmet etc.:
#                  reservations may be SKIPPED if the target does not
#                  advertise them)
#   W_ADDR W_PORT W_NQN                target as the guest sees it
#   W_HOSTNQN W_HOSTID                 the host identity that must be accepted
#   W_DENIED_HOSTNQN W_DENIED_HOSTID   (restart) an identity that must be
#                                      refused; empty = no negative test
#   W_NR_IO_QUEUES  --nr-io-queues for connect (and the queues expected)
#   W_FIO_RAND_SIZE W_FIO_SEQ_SIZE     fio job sizes (e.g. 32m, 16m)
#   W_FS_MB         ext4 size (MiB, from offset 0)
#   W_PAT_OFF_MB W_PAT_MB              raw persistence pattern (after the fs)
#   W_EXPECT_PAT_SHA W_EXPECT_FILE_SHA (restart) values printed by main
#   W_CONNECT_EXTRA                    extra `nvme connect` options
#   W_NEXUS_NQN    (restart) the nexus's subsystem on W_ADDR:W_PORT; empty =
#                  the nexus steps are SKIPPED (external target, no --cli)
#   W_NEXUS_MB     the nexus's size (MiB; the block device must have it)
#   W_NEXUS_FIO_SIZE W_NEXUS_FIO_WRITE_IOPS  the nexus fio job: bytes written
#                  (from offset 0) and its write rate cap (IOPS), which sets
#                  how long the writes last (the host kills a replica during them)
# The job holds guest_lib.sh (step, note, tmo, ...) before this file.
# shellcheck disable=SC1007  # `A= B=` assigns empty strings on purpose
CTRL=
NSDEV=
ONCS=
RESCAP=
MNT=/mnt/weft

# ------------------------------------------------------------- helpers ----

find_ctrl() {  # nvmeN of a live-or-not tcp controller for W_NQN at W_ADDR:W_PORT
  local c
  for c in /sys/class/nvme/nvme*; do
    [ -e "$c/subsysnqn" ] || continue
    [ "$(cat "$c/subsysnqn")" = "$W_NQN" ] || continue
    [ "$(cat "$c/transport")" = tcp ] || continue
    case "$(cat "$c/address")" in *traddr=$W_ADDR,trsvcid=$W_PORT*) basename "$c"; return 0 ;; esac
  done
  return 1
}
find_ns() {  # first namespace block device (multipath head or plain) of controller $1
  local s b
  for s in /sys/class/nvme-subsystem/*; do
    [ -e "$s/$1" ] || continue
    for b in "$s"/nvme*n*; do [ -e "$b/dev" ] && { basename "$b"; return 0; }; done
  done
  for b in /sys/class/nvme/"$1"/nvme*n*; do
    [ -e "$b/dev" ] || continue
    case $(basename "$b") in nvme*c*n*) ;; *) basename "$b"; return 0 ;; esac
  done
  return 1
}
field() {  # field NAME FILE: value of "NAME : value" lines (nvme-cli normal output)
  sed -n "s/^$1 *: *//p" "$2" | head -1 | tr -d ' \r'
}
jget() {  # jget KEY FILE [N]: Nth (default 1) scalar value of "KEY" in nvme-cli JSON
  tr -d ' \n\r\t' < "$2" | grep -o "\"$1\":[^,}]*" | sed -n "${3:-1}p" | cut -d: -f2 | tr -d '"'
}
dev_bytes() { blockdev --getsize64 "/dev/$NSDEV" 2>/dev/null || echo 0; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# ------------------------------------------------------------- checks -----

do_discover() {  # extra options...
  local rc
  tmo 60 nvme discover -t tcp -a "$W_ADDR" -s "$W_PORT" -q "$W_HOSTNQN" -I "$W_HOSTID" "$@" > /tmp/disc.out 2>&1
  rc=$?
  cat /tmp/disc.out
  [ $rc -eq 0 ] || { note "nvme discover failed (rc=$rc): $(tail -1 /tmp/disc.out)"; return 1; }
  # the log page must have an entry for the subsystem, on tcp
  awk -v nqn="$W_NQN" '
    /^=====Discovery Log Entry/ { if (sub_ok && tcp) found=1; sub_ok=0; tcp=0 }
    /^trtype:/ { tcp = ($2 == "tcp") }
    /^subnqn:/ { sub_ok = ($2 == nqn) }
    END { if (sub_ok && tcp) found=1; exit(found ? 0 : 1) }' /tmp/disc.out \
    || { note "discovery log has no tcp entry for $W_NQN"; return 1; }
  note "log has $(grep -c '^subnqn:' /tmp/disc.out) entries, incl. $W_NQN (tcp)"
}

connect_as() {  # HOSTNQN HOSTID extra options...: connect, find controller + namespace
  local h=$1 id=$2 rc i; shift 2
  CTRL= NSDEV=
  # shellcheck disable=SC2086  # W_CONNECT_EXTRA is a list of options
  tmo 90 nvme connect -t tcp -a "$W_ADDR" -s "$W_PORT" -n "$W_NQN" -q "$h" -I "$id" \
      $W_CONNECT_EXTRA "$@" > /tmp/conn.out 2>&1
  rc=$?
  cat /tmp/conn.out
  [ $rc -eq 0 ] || { note "nvme connect failed (rc=$rc): $(tail -1 /tmp/conn.out)"; return 1; }
  i=0
  while [ $i -lt 60 ]; do
    CTRL=$(find_ctrl) && NSDEV=$(find_ns "$CTRL") && [ -b "/dev/$NSDEV" ] && break
    i=$((i+1)); sleep 0.25
  done
  [ -n "$CTRL" ] || { note "connect returned 0 but no controller for $W_NQN in sysfs"; return 1; }
  [ -n "$NSDEV" ] && [ -b "/dev/$NSDEV" ] || { note "controller $CTRL has no namespace block device"; return 1; }
  local st; st=$(cat "/sys/class/nvme/$CTRL/state")
  [ "$st" = live ] || { note "controller $CTRL state is '$st', not live"; return 1; }
  note "/dev/$CTRL live, namespace /dev/$NSDEV ($(dev_bytes) bytes), opts: $W_CONNECT_EXTRA $*"
}

check_queues() {  # the kernel logs "nvmeN: mapped D/R/P default/read/poll queues."
  local line d
  line=$(dmesg | grep "$CTRL: mapped .* default/read/poll queues" | tail -1)
  echo "dmesg: $line"
  ls -d /sys/class/nvme/"$CTRL"/nvme*c*n*/mq/* 2>/dev/null
  [ -n "$line" ] || { note "no 'mapped .. queues' kernel message for $CTRL"; return 1; }
  d=$(echo "$line" | sed 's/.*mapped \([0-9]*\)\/.*/\1/')
  [ "$d" = "$W_NR_IO_QUEUES" ] || { note "kernel uses $d I/O queue(s), expected $W_NR_IO_QUEUES"; return 1; }
  note "$d I/O queues"
}

check_list() {
  local rc=0
  tmo 60 nvme list > /tmp/list.out 2>&1 || rc=$?
  tmo 60 nvme list-subsys > /tmp/subsys.out 2>&1 || rc=$?
  cat /tmp/list.out /tmp/subsys.out
  [ $rc -eq 0 ] || { note "nvme list/list-subsys failed (rc=$rc)"; return 1; }
  grep -q "/dev/$NSDEV" /tmp/list.out || { note "nvme list does not show /dev/$NSDEV"; return 1; }
  grep -q "$W_NQN" /tmp/subsys.out || { note "nvme list-subsys does not show $W_NQN"; return 1; }
  note "nvme list shows /dev/$NSDEV, list-subsys shows $W_NQN"
}

check_id_ctrl() {
  local rc sub nn
  tmo 60 nvme id-ctrl "/dev/$CTRL" > /tmp/idc.out 2>&1; rc=$?
  cat /tmp/idc.out
  [ $rc -eq 0 ] || { note "nvme id-ctrl failed (rc=$rc)"; return 1; }
  sub=$(field subnqn /tmp/idc.out); nn=$(field nn /tmp/idc.out); ONCS=$(field oncs /tmp/idc.out)
  [ "$sub" = "$W_NQN" ] || { note "id-ctrl subnqn '$sub' != '$W_NQN'"; return 1; }
  [ -n "$nn" ] && [ "$((nn))" -ge 1 ] || { note "id-ctrl nn='$nn' (no namespaces?)"; return 1; }
  [ -n "$ONCS" ] || ONCS=0
  note "mn='$(sed -n 's/^mn *: *//p' /tmp/idc.out | head -1 | sed 's/ *$//')' sn='$(field sn /tmp/idc.out)' nn=$nn oncs=$ONCS"
}

check_id_ns() {
  local rc nsze lbads bytes dev
  tmo 60 nvme id-ns "/dev/$NSDEV" > /tmp/idn.out 2>&1; rc=$?
  cat /tmp/idn.out
  [ $rc -eq 0 ] || { note "nvme id-ns failed (rc=$rc)"; return 1; }
  nsze=$(field nsze /tmp/idn.out); RESCAP=$(field rescap /tmp/idn.out)
  lbads=$(grep '(in use)' /tmp/idn.out | sed -n 's/.*lbads:\([0-9]*\).*/\1/p' | head -1)
  [ -n "$nsze" ] && [ -n "$lbads" ] || { note "cannot parse nsze/lbads from id-ns"; return 1; }
  bytes=$(( nsze << lbads )); dev=$(dev_bytes)
  [ "$bytes" -gt 0 ] || { note "nsze is 0"; return 1; }
  [ "$bytes" = "$dev" ] || { note "id-ns size $bytes (nsze=$nsze, lbads=$lbads) != block device size $dev"; return 1; }
  local need=$(( (W_PAT_OFF_MB + W_PAT_MB) * 1048576 ))
  [ "$bytes" -ge "$need" ] || { note "namespace is $bytes bytes; this test needs >= $need"; return 1; }
  note "nsze=$nsze lbads=$lbads ($bytes bytes) rescap=${RESCAP:-?}"
}

fio_job() {  # fio args...
  local rc
  tmo 300 fio --filename="/dev/$NSDEV" --ioengine=libaio --direct=1 --group_reporting \
      --eta=never --verify_fatal=1 --do_verify=1 --verify_state_save=0 "$@" > /tmp/fio.out 2>&1
  fio_check $?
}
fio_check() {  # RC: fio's exit code and /tmp/fio.out -> the step's result
  local rc=$1
  cat /tmp/fio.out
  [ "$rc" -eq 0 ] || { note "fio failed (rc=$rc): $(grep -m1 -iE 'verify|error|bad' /tmp/fio.out)"; return 1; }
  grep -q 'err= 0' /tmp/fio.out || { note "fio reported errors"; return 1; }
  note "$(grep -E '^ *(read|write) *:' /tmp/fio.out | sed 's/^ *//; s/ *(.*//; s/,.*BW=/ BW=/' | tr '\n' ' ')"
}
fio_randrw() {  # 4k random read/write, 2 jobs (both I/O queues), crc32c verify
  local half=$(( $(echo "$W_FIO_RAND_SIZE" | tr -d 'mM') / 2 ))m
  fio_job --name=weft-randrw --rw=randrw --bs=4k --iodepth=16 --numjobs=2 \
      --offset=0 --size="$half" --offset_increment="$half" --verify=crc32c
}
fio_seq() {  # 128k sequential write, then read back and verify
  fio_job --name=weft-seq128k --rw=write --bs=128k --iodepth=8 --numjobs=1 \
      --offset=0 --size="$W_FIO_SEQ_SIZE" --verify=md5
}

check_ext4() {  # mkfs.ext4, mount, write, sync, umount, fsck, mount, compare
  local dev=/dev/$NSDEV sum1 sum2 rc i
  tmo 180 mkfs.ext4 -F -q -b 4096 -L weft-interop "$dev" $((W_FS_MB * 256)) || { note "mkfs.ext4 failed"; return 1; }
  mkdir -p $MNT
  tmo 60 mount -t ext4 "$dev" $MNT || { note "mount (after mkfs) failed"; return 1; }
  head -c 4194304 /dev/urandom > /tmp/data.bin
  cp /tmp/data.bin $MNT/data.bin || { note "writing the file failed"; umount $MNT; return 1; }
  mkdir $MNT/small && i=1 && while [ $i -le 64 ]; do echo "weft $i" > $MNT/small/f$i; i=$((i+1)); done
  sync
  sum1=$(sha256sum < /tmp/data.bin | cut -d' ' -f1)
  tmo 60 umount $MNT || { note "umount failed"; return 1; }
  drop_caches
  tmo 120 fsck.ext4 -fn "$dev"; rc=$?
  [ $rc -eq 0 ] || { note "fsck.ext4 -fn found problems (rc=$rc)"; return 1; }
  tmo 60 mount -t ext4 "$dev" $MNT || { note "second mount failed"; return 1; }
  sum2=$(sha256sum < $MNT/data.bin | cut -d' ' -f1)
  i=1; while [ $i -le 64 ] && [ "$(cat $MNT/small/f$i 2>/dev/null)" = "weft $i" ]; do i=$((i+1)); done
  df -k $MNT; tmo 60 umount $MNT || { note "final umount failed"; return 1; }
  [ "$sum1" = "$sum2" ] || { note "file read back differs: wrote $sum1, read $sum2"; return 1; }
  [ $i -gt 64 ] || { note "small file f$i read back wrong"; return 1; }
  echo "WEFT-VALUE $CUR_PASS.file_sha=$sum1"
  note "4 MiB file + 64 small files survive umount/fsck/mount (sha256 ${sum1%"${sum1#????????????}"}...)"
}

resv() {  # resv nvme-args...: one reservation command; RESV_ERR = its last line
  tmo 30 nvme "$@" "/dev/$NSDEV" > /tmp/resv.out 2>&1; local rc=$?
  echo "# nvme $*  -> rc=$rc"; cat /tmp/resv.out
  RESV_ERR=$(tail -1 /tmp/resv.out | cut -c1-120)
  return $rc
}
resv_report() {  # -> /tmp/rr.json
  tmo 30 nvme resv-report "/dev/$NSDEV" --namespace-id=1 --numd=255 --eds -o json > /tmp/rr.json 2>&1; local rc=$?
  echo "# nvme resv-report --eds -o json -> rc=$rc"; cat /tmp/rr.json
  return $rc
}
check_resv() {
  local k1 k2 regctl rtype rkey rcsts hid want_hid
  if [ $(( ONCS & 0x20 )) -eq 0 ]; then
    if [ "$W_MODE" = external ]; then
      note "target does not advertise reservations (id-ctrl oncs=$ONCS, bit 5 clear; rescap=${RESCAP:-?})"
      return $SKIP_RC
    fi
    echo "target does not advertise reservations (oncs=$ONCS); trying anyway: weft must support them"
  fi
  k1=$(( 0x00C0FFEE00000000 + $$ )); k2=$(( k1 + 1 ))
  want_hid=$(echo "$W_HOSTID" | tr -d '-' | tr 'A-F' 'a-f')
  resv resv-register --namespace-id=1 --nrkey=$k1 --rrega=0 || { note "resv-register (rrega=0 register) failed: $RESV_ERR"; return 1; }
  resv_report || { note "resv-report --eds failed: $(tail -1 /tmp/rr.json | cut -c1-120)"; return 1; }
  regctl=$(jget regctl /tmp/rr.json); rkey=$(jget rkey /tmp/rr.json); hid=$(jget hostid /tmp/rr.json)
  [ "$regctl" = 1 ] && [ "$rkey" = "$k1" ] || { note "after register: regctl=$regctl rkey=$rkey (expected 1, $k1)"; return 1; }
  [ "$hid" = "$want_hid" ] || { note "after register: hostid=$hid, expected $want_hid"; return 1; }
  resv resv-acquire --namespace-id=1 --crkey=$k1 --rtype=1 --racqa=0 || { note "resv-acquire (write exclusive) failed: $RESV_ERR"; return 1; }
  resv_report || { note "resv-report failed: $(tail -1 /tmp/rr.json | cut -c1-120)"; return 1; }
  rtype=$(jget rtype /tmp/rr.json); rcsts=$(jget rcsts /tmp/rr.json)
  [ "$rtype" = 1 ] && [ $(( ${rcsts:-0} & 1 )) -eq 1 ] || { note "after acquire: rtype=$rtype rcsts=$rcsts (expected 1, holder bit set)"; return 1; }
  if resv resv-acquire --namespace-id=1 --crkey=$k2 --rtype=1 --racqa=0; then
    note "resv-acquire with a wrong key (crkey=$k2) succeeded; expected Reservation Conflict"; return 1
  fi
  grep -qi 'reservation conflict' /tmp/resv.out \
    || { note "resv-acquire with a wrong key failed, but not with Reservation Conflict: $RESV_ERR"; return 1; }
  # the holder may still write
  dd if=/dev/zero of="/dev/$NSDEV" bs=4096 count=1 seek=$(( (W_FS_MB + 1) * 256 )) oflag=direct conv=fsync 2>&1 \
    || { note "holder's write under its own write-exclusive reservation failed"; return 1; }
  resv resv-release --namespace-id=1 --crkey=$k1 --rtype=1 --rrela=0 || { note "resv-release failed: $RESV_ERR"; return 1; }
  resv_report || { note "resv-report failed: $(tail -1 /tmp/rr.json | cut -c1-120)"; return 1; }
  rtype=$(jget rtype /tmp/rr.json)
  [ "$rtype" = 0 ] || { note "after release: rtype=$rtype (expected 0)"; return 1; }
  resv resv-register --namespace-id=1 --crkey=$k1 --rrega=1 || { note "resv-register (rrega=1 unregister) failed: $RESV_ERR"; return 1; }
  resv_report || { note "resv-report failed: $(tail -1 /tmp/rr.json | cut -c1-120)"; return 1; }
  regctl=$(jget regctl /tmp/rr.json)
  [ "$regctl" = 0 ] || { note "after unregister: regctl=$regctl (expected 0)"; return 1; }
  note "register, report (key+hostid), acquire WE, wrong-key conflict, release, unregister"
}

persist_write() {  # random pattern after the fs; print its checksum for the next run
  local dev=/dev/$NSDEV s1 s2
  head -c $((W_PAT_MB * 1048576)) /dev/urandom > /tmp/pat.bin
  s1=$(sha256sum < /tmp/pat.bin | cut -d' ' -f1)
  tmo 120 dd if=/tmp/pat.bin of="$dev" bs=1M seek="$W_PAT_OFF_MB" oflag=direct conv=fsync 2>&1 \
    || { note "dd write of the pattern failed"; return 1; }
  s2=$(tmo 120 dd if="$dev" bs=1M skip="$W_PAT_OFF_MB" count="$W_PAT_MB" iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
  [ "$s1" = "$s2" ] || { note "pattern read back differs right after writing"; return 1; }
  echo "WEFT-VALUE $CUR_PASS.pattern_sha=$s1"
  note "$W_PAT_MB MiB at $W_PAT_OFF_MB MiB, sha256 ${s1%"${s1#????????????}"}..."
}

persist_raw() {
  local s
  [ -n "$W_EXPECT_PAT_SHA" ] || { note "no checksum from the first run (its persist-write failed?)"; return 1; }
  s=$(tmo 120 dd if="/dev/$NSDEV" bs=1M skip="$W_PAT_OFF_MB" count="$W_PAT_MB" iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
  [ "$s" = "$W_EXPECT_PAT_SHA" ] || { note "raw pattern differs after restart: $s != $W_EXPECT_PAT_SHA"; return 1; }
  note "raw pattern identical (sha256 ${s%"${s#????????????}"}...)"
}

persist_ext4() {
  local s
  [ -n "$W_EXPECT_FILE_SHA" ] || { note "no checksum from the first run (its ext4 step failed?)"; return 1; }
  tmo 120 fsck.ext4 -fn "/dev/$NSDEV" || { note "fsck.ext4 -fn reports problems after restart"; return 1; }
  mkdir -p $MNT
  tmo 60 mount -t ext4 -o ro "/dev/$NSDEV" $MNT || { note "mount -o ro after restart failed"; return 1; }
  s=$(sha256sum < $MNT/data.bin | cut -d' ' -f1)
  tmo 60 umount $MNT
  [ "$s" = "$W_EXPECT_FILE_SHA" ] || { note "ext4 file differs after restart: $s != $W_EXPECT_FILE_SHA"; return 1; }
  note "fsck clean, ext4 file identical"
}

do_disconnect() {
  local rc i
  tmo 60 nvme disconnect -n "$W_NQN" > /tmp/disc.out 2>&1; rc=$?
  cat /tmp/disc.out
  [ $rc -eq 0 ] || { note "nvme disconnect failed (rc=$rc)"; return 1; }
  i=0; while find_ctrl > /dev/null && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done
  if find_ctrl > /dev/null; then note "controller still present after disconnect"; return 1; fi
  grep -q 'disconnected 1 controller' /tmp/disc.out || { note "nvme disconnect did not disconnect exactly 1 controller"; return 1; }
  note "controller gone"
}

deny_connect() {  # a host that is not allowed must be refused
  local rc
  tmo 90 nvme connect -t tcp -a "$W_ADDR" -s "$W_PORT" -n "$W_NQN" -q "$W_DENIED_HOSTNQN" \
      -I "$W_DENIED_HOSTID" $W_CONNECT_EXTRA > /tmp/deny.out 2>&1
  rc=$?
  cat /tmp/deny.out
  sleep 1
  if find_ctrl > /dev/null; then
    note "host $W_DENIED_HOSTNQN was NOT refused (rc=$rc, controller $(find_ctrl) exists)"
    nvme disconnect -n "$W_NQN"
    return 1
  fi
  [ $rc -ne 0 ] || { note "nvme connect returned 0 for a refused host but made no controller"; return 1; }
  note "refused as expected: $(tail -1 /tmp/deny.out)"
}

# ------------------------------------------------------------------ ANA ----
# Two engines serve W_ANA_NQN, each from a volume of its own whose first
# 4 KiB are a different marker: engine 1's path optimized, engine 2's
# inaccessible. Native multipath must take both controllers as paths of one
# namespace and read engine 1's marker; on the cue WEFT-ANA-FLIP the host
# swaps the states, and the kernel must follow (ANA change event, ANA log)
# and read engine 2's marker, with no I/O error.
ana_ctrl() { ctrl_at "$W_ANA_NQN" "$1"; }  # PORT
ana_read_sum() {  # the md5 of the head's first 4 KiB, read around the page cache
  tmo 30 dd if=/dev/"$1" bs=4096 count=1 iflag=direct status=none | md5sum | cut -d' ' -f1
}
ana_connect() {
  local p
  for p in "$W_ANA_PORT1" "$W_ANA_PORT2"; do
    tmo 30 nvme connect -t tcp -a "$W_ADDR" -s "$p" -n "$W_ANA_NQN" --hostnqn="$W_HOSTNQN" \
      --hostid="$W_HOSTID" --nr-io-queues=1 > /tmp/ana-connect.out 2>&1 ||
      { note "connect to $W_ADDR:$p: $(tail -2 /tmp/ana-connect.out | tr '\n' ' ')"; return 1; }
  done
  local i c1 c2 s1 s2
  for i in $(seq 50); do
    c1=$(ana_ctrl "$W_ANA_PORT1") && c2=$(ana_ctrl "$W_ANA_PORT2") && ANA_HEAD=$(mpath_head "$W_ANA_NQN") &&
      s1=$(path_state "$c1") && s2=$(path_state "$c2") && [ "$s1" != none ] && [ "$s2" != none ] && break
    sleep 0.2
  done
  [ -n "${ANA_HEAD:-}" ] || { note "no multipath head for $W_ANA_NQN: $(nvme list-subsys 2>&1 | tr '\n' ' ')"; return 1; }
  [ "$s1" = optimized ] && [ "$s2" = inaccessible ] ||
    { note "paths $c1: '$s1', $c2: '$s2'; expected optimized and inaccessible"; return 1; }
  ANA_C1=$c1 ANA_C2=$c2
  note "one namespace /dev/$ANA_HEAD over two controllers: $c1 ($W_ANA_PORT1) optimized, $c2 ($W_ANA_PORT2) inaccessible"
}
ana_read_optimized() {
  local s
  s=$(ana_read_sum "$ANA_HEAD")
  [ "$s" = "$W_ANA_SUM1" ] || { note "read $s; engine 1's marker is $W_ANA_SUM1 (engine 2's $W_ANA_SUM2)"; return 1; }
  note "read engine 1's marker through the optimized path"
}
ana_flip() {
  local d0 i s1 s2 s t0
  d0=$(dmesg | wc -l)
  t0=$(now)
  echo "WEFT-ANA-FLIP"
  for i in $(seq 100); do
    s1=$(path_state "$ANA_C1") s2=$(path_state "$ANA_C2")
    [ "$s1" = inaccessible ] && [ "$s2" = optimized ] && break
    sleep 0.2
  done
  [ "$s1" = inaccessible ] && [ "$s2" = optimized ] ||
    { note "after 20 s: $ANA_C1 '$s1', $ANA_C2 '$s2'; expected inaccessible and optimized"; return 1; }
  s=$(ana_read_sum "$ANA_HEAD")
  [ "$s" = "$W_ANA_SUM2" ] || { note "read $s; engine 2's marker is $W_ANA_SUM2 (engine 1's $W_ANA_SUM1)"; return 1; }
  if dmesg | tail -n +$((d0 + 1)) | grep -q 'I/O error'; then
    note "the kernel logged an I/O error: $(dmesg | tail -n +$((d0 + 1)) | grep -m1 'I/O error')"; return 1
  fi
  note "the paths swapped within $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}') s; read engine 2's marker"
}
ana_disconnect() {
  tmo 60 nvme disconnect -n "$W_ANA_NQN" > /tmp/ana-disc.out 2>&1 ||
    { note "nvme disconnect: $(tail -1 /tmp/ana-disc.out)"; return 1; }
  ! ana_ctrl "$W_ANA_PORT1" > /dev/null && ! ana_ctrl "$W_ANA_PORT2" > /dev/null ||
    { note "a controller is left after disconnect"; return 1; }
}

# ------------------------------------------------------------ the nexus ----

nexus_connect() {  # the nexus's subsystem (W_NQN is W_NEXUS_NQN by now)
  local want=$((W_NEXUS_MB * 1048576)) have
  connect_as "$W_HOSTNQN" "$W_HOSTID" --nr-io-queues="$W_NR_IO_QUEUES" || return 1
  have=$(dev_bytes)
  [ "$have" = "$want" ] || { note "the nexus's /dev/$NSDEV has $have bytes, expected $want ($W_NEXUS_MB MiB)"; return 1; }
  note "/dev/$CTRL live, the nexus is /dev/$NSDEV ($W_NEXUS_MB MiB)"
}

nexus_writes() { write_requests "$NSDEV" "$CTRL"; }

# nexus_fio_start NAME: fio 4k random writes (W_NEXUS_FIO_SIZE at most
# W_NEXUS_FIO_WRITE_IOPS), then crc32c verify, in the background ($pid).
# SIGPIPE is ignored for it: once, fio died of one right after a share came
# back (its output is a file; where the signal came from is not known yet).
nexus_fio_start() {
  (trap '' PIPE
   tmo 300 fio --filename="/dev/$NSDEV" --ioengine=libaio --direct=1 --group_reporting \
      --eta=never --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
      --name="$1" --rw=randwrite --bs=4k --iodepth=16 --numjobs=1 --offset=0 \
      --size="$W_NEXUS_FIO_SIZE" --rate_iops=,"$W_NEXUS_FIO_WRITE_IOPS" --verify=crc32c) \
      > /tmp/fio.out 2>&1 &
  pid=$!
}

# fio 4k random writes with crc32c verify on the nexus; once its writes flow
# the WEFT-NEXUS-FIO-RUNNING line tells the host to SIGKILL a replica engine.
# The nexus retires that child and goes on: fio must see no error and read
# back every block it wrote; the kernel must log no I/O error on the nexus.
nexus_fio() {
  local pid rc w0 w i=0 how= d0 new ioerr other n
  d0=$(dmesg | wc -l)
  w0=$(nexus_writes)
  nexus_fio_start weft-nexus
  # 1024 writes (4 MiB) done; or 4 s without any write counted (no block
  # layer statistics for this device), or 15 s whatever the count
  while kill -0 $pid 2>/dev/null; do
    w=$(( $(nexus_writes) - w0 ))
    if [ $w -ge 1024 ]; then how="$w writes done"; break; fi
    if [ $i -ge 40 ] && [ $w -eq 0 ]; then how="fio running for 4 s (no write counted in sysfs)"; break; fi
    if [ $i -ge 150 ]; then how="fio running for 15 s ($w writes counted)"; break; fi
    i=$((i+1)); sleep 0.1
  done
  if [ -n "$how" ]; then echo "WEFT-NEXUS-FIO-RUNNING $how"
  else echo "fio ended before its writes got going"; fi
  wait $pid; rc=$?
  new=$(dmesg | wc -l)
  dmesg | tail -n +$((d0 + 1)) | grep -E "$CTRL|$NSDEV" > /tmp/nexus-dmesg.out
  n=$((new - d0))
  echo "kernel messages about $CTRL/$NSDEV during fio (of $n new lines):"; cat /tmp/nexus-dmesg.out
  fio_check $rc || return 1
  ioerr=$(grep -c 'I/O error' /tmp/nexus-dmesg.out)
  other=$(grep -vc 'I/O error' /tmp/nexus-dmesg.out)
  [ "$ioerr" -eq 0 ] || { note "fio passed, but the kernel logged $ioerr I/O error(s) on $NSDEV: $(grep -m1 'I/O error' /tmp/nexus-dmesg.out)"; return 1; }
  [ -n "$how" ] || { note "fio ended before the replica could be killed ($NOTE)"; return 1; }
  note "${NOTE% }; $W_NEXUS_FIO_SIZE at <= $W_NEXUS_FIO_WRITE_IOPS write IOPS, verified; no I/O error in dmesg$([ "$other" -eq 0 ] || echo " ($other other line(s) about $CTRL: $(head -1 /tmp/nexus-dmesg.out | cut -c1-80))")"
}

# The nexus's path taken away twice during fio 4k random writes with crc32c
# verify: first its share (the subsystem), then the engine's listener. Each
# time the guest prints WEFT-NEXUS-FLAP share|listener; the host removes it,
# waits 3 s and brings it back. With a 1 s keep-alive the controller must
# leave "live" within 5 s of the cue (the target closes its connections, as
# Linux nvmet does; blktests nvme/061) and be live again within 30 s, and the
# application must see a pause, never an error: fio verifies every block and
# the kernel logs no I/O error.
nexus_flap() {
  local pid rc w0 w i what st first down up d0 ioerr res=''
  connect_as "$W_HOSTNQN" "$W_HOSTID" --nr-io-queues="$W_NR_IO_QUEUES" \
      --keep-alive-tmo=1 --reconnect-delay=1 --ctrl-loss-tmo=120 || return 1
  d0=$(dmesg | wc -l)
  w0=$(nexus_writes)
  nexus_fio_start weft-flap
  i=0
  while kill -0 $pid 2>/dev/null && [ $i -lt 40 ]; do
    w=$(( $(nexus_writes) - w0 ))
    [ $w -ge 256 ] && break
    i=$((i+1)); sleep 0.1
  done
  for what in share listener; do
    if ! kill -0 $pid 2>/dev/null; then
      res="$res; fio ended before the $what was taken away"; break
    fi
    echo "WEFT-NEXUS-FLAP $what"
    i=0 first=
    while [ $i -lt 100 ]; do
      st=$(cat "/sys/class/nvme/$CTRL/state" 2>/dev/null || echo gone)
      [ "$st" != live ] && { first=$st; break; }
      i=$((i+1)); sleep 0.1
    done
    if [ -z "$first" ]; then res="$res; $what removed: $CTRL still live after 10 s"; break; fi
    down=$i
    while [ $i -lt 400 ]; do
      st=$(cat "/sys/class/nvme/$CTRL/state" 2>/dev/null || echo gone)
      [ "$st" = live ] && break
      i=$((i+1)); sleep 0.1
    done
    if [ "$st" != live ]; then res="$res; $what removed: $CTRL not live again 40 s after the cue ($st)"; break; fi
    up=$i
    echo "the $what: $CTRL $first $((down / 10)).$((down % 10)) s after the cue, live again after $((up / 10)).$((up % 10)) s"
    [ $down -le 50 ] || res="$res; $what removed: $CTRL left live only $((down / 10)).$((down % 10)) s after the cue (> 5 s)"
    res="$res; $what: $first after $((down / 10)).$((down % 10)) s, live after $((up / 10)).$((up % 10)) s"
  done
  wait $pid; rc=$?
  dmesg | tail -n +$((d0 + 1)) | grep -E "$CTRL|$NSDEV" > /tmp/flap-dmesg.out
  echo "kernel messages about $CTRL/$NSDEV during fio:"; cat /tmp/flap-dmesg.out
  fio_check $rc || { note "${NOTE}${res}"; return 1; }
  ioerr=$(grep -c 'I/O error' /tmp/flap-dmesg.out)
  [ "$ioerr" -eq 0 ] || { note "fio passed, but the kernel logged $ioerr I/O error(s) on $NSDEV: $(grep -m1 'I/O error' /tmp/flap-dmesg.out)$res"; return 1; }
  case $res in *removed:*|*ended\ before*) note "${res#; }"; return 1 ;; esac
  note "${res#; }; fio verified, no I/O error"
}

# ----------------------------------------------------------- the passes ----

PASS_STEPS="discover connect io-queues list id-ctrl id-ns fio-randrw-4k fio-seq-128k ext4 reservations disconnect"

run_pass() {  # run_pass NAME [connect/discover options...]
  local p=$1 s; shift
  CUR_PASS=$p
  step "$p/discover" do_discover "$@"
  if ! step "$p/connect" connect_as "$W_HOSTNQN" "$W_HOSTID" --nr-io-queues="$W_NR_IO_QUEUES" "$@"; then
    for s in $PASS_STEPS; do
      case $s in discover|connect) ;; *) skip_step "$p/$s" "connect failed" ;; esac
    done
    [ "$p" = digest ] && skip_step "$p/persist-write" "connect failed"
    CTRL=$(find_ctrl) && nvme disconnect -n "$W_NQN"
    return 1
  fi
  step "$p/io-queues" check_queues
  step "$p/list" check_list
  step "$p/id-ctrl" check_id_ctrl
  if step "$p/id-ns" check_id_ns; then
    step "$p/fio-randrw-4k" fio_randrw
    step "$p/fio-seq-128k" fio_seq
    step "$p/ext4" check_ext4
    step "$p/reservations" check_resv
    [ "$p" = digest ] && step "$p/persist-write" persist_write
  else
    for s in fio-randrw-4k fio-seq-128k ext4 reservations; do skip_step "$p/$s" "id-ns failed"; done
    [ "$p" = digest ] && skip_step "$p/persist-write" "id-ns failed"
  fi
  step "$p/disconnect" do_disconnect
}

plan() {  # announce every step id of this plan, in order
  local out='' p s
  case $W_PLAN in
    main)
      for p in plain digest; do
        for s in $PASS_STEPS; do
          [ "$p/$s" = digest/disconnect ] && out="$out digest/persist-write"
          out="$out $p/$s"
        done
      done ;;
    restart)
      out=" restart/deny-host restart/connect restart/persist-raw restart/persist-ext4 restart/disconnect"
      out="$out ana/connect ana/read-optimized ana/flip ana/disconnect"
      out="$out nexus/connect nexus/fio-verify-replica-killed nexus/disconnect"
      out="$out nexus/path-flap nexus/path-flap-disconnect" ;;
  esac
  echo "WEFT-PLAN$out"
}

echo "weft guest: plan=$W_PLAN mode=$W_MODE target=$W_ADDR:$W_PORT nqn=$W_NQN host=$W_HOSTNQN ($W_HOSTID) kernel=$(uname -r) cpus=$(nproc)"
CUR_PASS=
plan
case $W_PLAN in
  main)
    run_pass plain
    # Digests, and SQ flow control off: reads then complete by the C2HData
    # SUCCESS flag, without a CapsuleResp.
    run_pass digest --hdr-digest --data-digest --disable-sqflow
    ;;
  restart)
    if [ -n "$W_DENIED_HOSTNQN" ]; then step restart/deny-host deny_connect
    else skip_step restart/deny-host "no restricted host list on this target (external target without --external-allowed-host)"; fi
    if step restart/connect connect_as "$W_HOSTNQN" "$W_HOSTID" --nr-io-queues="$W_NR_IO_QUEUES"; then
      step restart/persist-raw persist_raw
      step restart/persist-ext4 persist_ext4
      step restart/disconnect do_disconnect
    else
      for s in persist-raw persist-ext4 disconnect; do skip_step "restart/$s" "connect failed"; done
    fi
    # ANA across the two replica engines
    if [ -z "${W_ANA_NQN:-}" ]; then
      for s in connect read-optimized flip disconnect; do skip_step "ana/$s" "no ANA pair (external target, no --cli, or the host could not set it up)"; done
    elif step ana/connect ana_connect; then
      if step ana/read-optimized ana_read_optimized; then step ana/flip ana_flip
      else skip_step ana/flip "the first read failed"; fi
      step ana/disconnect ana_disconnect
    else
      for s in read-optimized flip; do skip_step "ana/$s" "connect failed"; done
      step ana/disconnect ana_disconnect
    fi
    # the nexus on the same engine (address, port and host identity)
    if [ -z "${W_NEXUS_NQN:-}" ]; then
      for s in connect fio-verify-replica-killed disconnect path-flap path-flap-disconnect; do
        skip_step "nexus/$s" "no nexus to test (external target, no --cli, or the host could not build it)"
      done
    else
      W_NQN=$W_NEXUS_NQN CTRL= NSDEV=
      if step nexus/connect nexus_connect; then
        step nexus/fio-verify-replica-killed nexus_fio
        step nexus/disconnect do_disconnect
      else
        for s in fio-verify-replica-killed disconnect; do skip_step "nexus/$s" "connect failed"; done
        CTRL=$(find_ctrl) && nvme disconnect -n "$W_NQN"
      fi
      if step nexus/path-flap nexus_flap; then
        step nexus/path-flap-disconnect do_disconnect
      else
        CTRL=$(find_ctrl) && tmo 60 nvme disconnect -n "$W_NQN"
        skip_step nexus/path-flap-disconnect "the flap step failed; disconnected without checks"
      fi
    fi
    ;;
  *) echo "unknown W_PLAN=$W_PLAN"; FAILS=1 ;;
esac
echo "WEFT-DONE plan=$W_PLAN failures=$FAILS"
[ $FAILS -eq 0 ]
