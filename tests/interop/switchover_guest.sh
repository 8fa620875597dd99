# Guest half of tests/interop/switchover_test.sh: runs inside the initiator
# VM (busybox ash, Debian 6.1 kernel nvme-tcp host with native multipath,
# fio), as `kernel-nvme-vm initiator --no-connect --add-bin weft-csi --script
# JOB` where JOB is a block of W_* assignments followed by this file. The
# volume is reached as a Kubernetes node reaches it: weft-csi's node plugin
# (kernel attach) stages and publishes it; `weft-csi call` plays the kubelet.
#
# Steps (each prints WEFT-STEP <id> PASS|FAIL <seconds>s <note>):
#   csi/node            the node plugin serves; NodeGetInfo
#   csi/xfs             a second volume (one path) staged as xfs with the
#                       mount flag noatime (mkfs.xfs, mounted with it),
#                       published, a file written, grown (WEFT-CSI-RESIZE:
#                       the host grows it; xfs_growfs online), unpublished,
#                       unstaged (disconnected), staged again: the file is
#                       there; unstaged
#   csi/stage           NodeStageVolume (ext4, ioTimeout 30): both paths of
#                       the volume's NQN connected with the plugin's timeouts
#                       (the nexus's: live, optimized, the namespace; the
#                       standby's: inaccessible, no namespace yet), ext4 made
#                       and mounted on the multipath head, the I/O timeout set
#   csi/publish         NodePublishVolume: the staging mount bound on a pod's
#                       volume path
#   csi/expand          prints WEFT-CSI-RESIZE (the host grows the volume);
#                       NodeExpandVolume until the device has the new size,
#                       then the file system is larger
#   switchover/fio      fio 4k random writes with crc32c verify on a file of
#                       the pod's mount; once its writes flow the guest prints
#                       WEFT-SWITCH-KILL and the host SIGKILLs the nexus's
#                       node; the control plane moves the nexus to the standby
#                       node; fio must end without an error and the kernel log
#                       no I/O error
#   switchover/paths    afterwards: the standby's path serves the namespace,
#                       optimized
#   csi/stats           NodeGetVolumeStats: bytes and inodes, condition normal
#   csi/unstage         NodeUnpublishVolume, NodeUnstageVolume: unmounted, no
#                       controller of the NQN left
#   csi/restage         NodeStageVolume again with the same publish context
#                       (its first path is dead now): mounted through the
#                       other path, the file written before is there; unstage
#   csi/block           the same volume as a raw block volume: staged,
#                       published on a file that is the device (blkid finds
#                       the ext4 on it), its stats, unpublished, unstaged
#
# Inputs: W_ADDR (the host as the guest sees it), W_NQN, W_PORT1 (the
# nexus's node), W_PORT2 (the standby's), W_HOSTNQN, W_MB (the
# volume's size), W_GROWN_MB (after csi/expand), W_FIO_SIZE, W_FIO_IOPS
# (write rate cap: how long the writes last), W_VOL (the volume's ID); the
# xfs volume's W_VOL2, W_NQN2, W_PORT3 (its nexus's node), W_MB2, W_GROWN_MB2.
# The job holds guest_lib.sh (step, note, tmo, ...) before this file.
HEAD= C1= C2=
CSI=/usr/local/bin/weft-csi
SOCK=/run/weft-csi.sock
STAGING=/var/lib/kubelet/plugins/staging/$W_VOL
TARGET=/var/lib/kubelet/pods/p1/volumes/$W_VOL
# The guest's weft-csi may be a sanitizer build: leaks are checked on the
# host (csi.plugin), not in the guest.
export ASAN_OPTIONS=detect_leaks=0

ctrl_state() { cat /sys/class/nvme/"$1"/state 2>/dev/null || echo gone; }
writes() { write_requests "$HEAD"; }
# call METHOD JSON: the answer in /tmp/call.out (stdout and stderr)
call() { tmo 120 "$CSI" call --endpoint "unix://$SOCK" --timeout 100 "$1" "$2" > /tmp/call.out 2>&1; }
called() { tr '\n' ' ' < /tmp/call.out | cut -c1-300; }
mount_of() { awk -v p="$1" '$2 == p {print $1, $3}' /proc/mounts; }  # PATH: "DEVICE FSTYPE"
ctrls_of() {  # NQN: the subsystem's controllers
  local c
  for c in /sys/class/nvme/nvme*; do
    [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$1" ] && basename "$c"
  done
}
# stage_json VOLUME STAGING KIND NQN PORT [STANDBY_PORT]: a NodeStageVolume
# request; KIND is the capability's access type ("mount":{...} or "block":{})
stage_json() {
  printf '{"volume_id":"%s","staging_target_path":"%s",' "$1" "$2"
  printf '"volume_capability":{%s,"access_mode":{"mode":"SINGLE_NODE_WRITER"}},' "$3"
  printf '"publish_context":{"nqn":"%s","address":"%s","port":"%s","hostNqn":"%s"' "$4" "$W_ADDR" "$5" "$W_HOSTNQN"
  [ -z "${6:-}" ] || printf ',"standbyAddress":"%s","standbyPort":"%s"' "$W_ADDR" "$6"
  printf '},"volume_context":{"ioTimeout":"30"}}'
}
stage_request() { stage_json "$W_VOL" "$STAGING" '"mount":{"fs_type":"ext4"}' "$W_NQN" "$W_PORT1" "$W_PORT2"; }
unstage_json() { printf '{"volume_id":"%s","staging_target_path":"%s"}' "$1" "$2"; }
publish_json() {  # VOLUME STAGING TARGET
  printf '{"volume_id":"%s","staging_target_path":"%s","target_path":"%s","volume_capability":{"mount":{},"access_mode":{"mode":"SINGLE_NODE_WRITER"}}}' "$1" "$2" "$3"
}
# expand VOLUME PATH MB: NodeExpandVolume until the device has MB MiB (the
# host grows the volume on the cue)
expand() {
  local i want=$(($3 * 1048576))
  for i in $(seq 120); do
    call NodeExpandVolume "$(printf '{"volume_id":"%s","volume_path":"%s","capacity_range":{"required_bytes":"%s"}}' "$1" "$2" "$want")" && break
    grep -q FAILED_PRECONDITION /tmp/call.out || break
    sleep 0.5
  done
  grep -q "\"capacity_bytes\":\"$want\"" /tmp/call.out
}
volume_request() {  # PATH: {volume_id, volume_path}
  printf '{"volume_id":"%s","volume_path":"%s"}' "$W_VOL" "$1"
}

do_node() {
  "$CSI" --mode node --node-id vm --endpoint "unix://$SOCK" --attach kernel \
    --reconnect-delay 1 --ctrl-loss-tmo 60 --state-dir /var/lib/weft/csi > /tmp/csi.log 2>&1 &
  local i
  for i in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
  call NodeGetInfo '{}' || { note "NodeGetInfo: $(called); plugin: $(tail -3 /tmp/csi.log | tr '\n' ' ')"; return 1; }
  grep -q '"node_id":"vm"' /tmp/call.out || { note "NodeGetInfo answered $(called)"; return 1; }
  note "weft-csi node plugin (kernel attach) serves $SOCK: $(called)"
}

do_xfs() {
  local st=/var/lib/kubelet/plugins/staging/$W_VOL2 tg=/var/lib/kubelet/pods/p2/volumes/$W_VOL2 m before after
  local req
  req=$(stage_json "$W_VOL2" "$st" '"mount":{"fs_type":"xfs","mount_flags":["noatime"]}' "$W_NQN2" "$W_PORT3")
  call NodeStageVolume "$req" || { note "NodeStageVolume (xfs): $(called)"; return 1; }
  m=$(awk -v p="$st" '$2 == p {print $1, $3, $4}' /proc/mounts)
  case $m in /dev/nvme*" xfs "*noatime*) ;; *) note "$st: mounted '$m', expected xfs with noatime"; return 1 ;; esac
  call NodePublishVolume "$(publish_json "$W_VOL2" "$st" "$tg")" || { note "NodePublishVolume (xfs): $(called)"; return 1; }
  echo "xfs data" > "$tg/marker" && sync || { note "cannot write $tg/marker"; return 1; }
  before=$(df -k "$tg" | awk 'NR==2 {print $2}')
  echo "WEFT-CSI-RESIZE xfs $W_VOL2 $W_GROWN_MB2"
  expand "$W_VOL2" "$tg" "$W_GROWN_MB2" || { note "NodeExpandVolume (xfs): $(called)"; return 1; }
  after=$(df -k "$tg" | awk 'NR==2 {print $2}')
  [ "$after" -gt "$before" ] || { note "xfs is $after KiB, was $before KiB"; return 1; }
  call NodeUnpublishVolume "$(printf '{"volume_id":"%s","target_path":"%s"}' "$W_VOL2" "$tg")" &&
    call NodeUnstageVolume "$(unstage_json "$W_VOL2" "$st")" || { note "unpublish/unstage (xfs): $(called)"; return 1; }
  [ -z "$(ctrls_of "$W_NQN2" | tr -d '\n')" ] || { note "controllers of $W_NQN2 left"; return 1; }
  call NodeStageVolume "$req" || { note "NodeStageVolume (xfs) again: $(called)"; return 1; }
  [ "$(cat "$st/marker" 2>/dev/null)" = "xfs data" ] || { note "$st/marker: '$(cat "$st/marker" 2>&1)'"; return 1; }
  call NodeUnstageVolume "$(unstage_json "$W_VOL2" "$st")" || { note "NodeUnstageVolume (xfs): $(called)"; return 1; }
  note "xfs (noatime) on ${m%% *}, grown online from $before to $after KiB; unstaged, staged again: the file is there"
}

do_stage() {
  local i have want=$((W_MB * 1048576)) m t
  call NodeStageVolume "$(stage_request)" || { note "NodeStageVolume: $(called)"; return 1; }
  for i in $(seq 50); do
    C1=$(ctrl_at "$W_NQN" "$W_PORT1") && C2=$(ctrl_at "$W_NQN" "$W_PORT2") && HEAD=$(mpath_head "$W_NQN") &&
      [ -b "/dev/$HEAD" ] && [ "$(path_state "$C1")" = optimized ] && break
    sleep 0.2
  done
  [ -n "$C1" ] && [ -n "$C2" ] || { note "not both paths connected: $(nvme list-subsys 2>&1 | tr '\n' ' ')"; return 1; }
  [ -n "$HEAD" ] && [ -b "/dev/$HEAD" ] || { note "no multipath namespace for $W_NQN"; return 1; }
  have=$(blockdev --getsize64 "/dev/$HEAD" 2>/dev/null || echo 0)
  [ "$have" = "$want" ] || { note "/dev/$HEAD has $have bytes, expected $want"; return 1; }
  [ "$(path_state "$C1")" = optimized ] && [ "$(path_state "$C2")" != optimized ] ||
    { note "paths: $C1 $(path_state "$C1"), $C2 $(path_state "$C2"); expected the nexus's optimized, the standby's not"; return 1; }
  for i in "$C1" "$C2"; do
    [ "$(cat /sys/class/nvme/"$i"/ctrl_loss_tmo)" = 60 ] && [ "$(cat /sys/class/nvme/"$i"/reconnect_delay)" = 1 ] ||
      { note "$i: ctrl_loss_tmo $(cat /sys/class/nvme/"$i"/ctrl_loss_tmo), reconnect_delay $(cat /sys/class/nvme/"$i"/reconnect_delay); expected 60 and 1"; return 1; }
  done
  t=$(cat /sys/class/nvme/"$C1"/nvme*c*n1/queue/io_timeout 2>/dev/null | head -1)
  [ "$t" = 30000 ] || { note "the path's io_timeout is '$t' ms, expected 30000 (ioTimeout 30)"; return 1; }
  m=$(mount_of "$STAGING")
  [ "$m" = "/dev/$HEAD ext4" ] || { note "$STAGING: mounted '$m', expected /dev/$HEAD ext4"; return 1; }
  # a retry of the same stage is a no-op
  call NodeStageVolume "$(stage_request)" || { note "NodeStageVolume again: $(called)"; return 1; }
  note "ext4 on /dev/$HEAD at $STAGING; $C1 (nexus, port $W_PORT1) $(path_state "$C1"), $C2 (standby, port $W_PORT2) $(ctrl_state "$C2"), namespace: $(path_state "$C2"); ctrl_loss_tmo 60, io_timeout 30000 ms"
}

do_publish() {
  local m
  call NodePublishVolume "$(publish_json "$W_VOL" "$STAGING" "$TARGET")" ||
    { note "NodePublishVolume: $(called)"; return 1; }
  m=$(mount_of "$TARGET")
  [ "$m" = "/dev/$HEAD ext4" ] || { note "$TARGET: mounted '$m', expected /dev/$HEAD ext4"; return 1; }
  echo "written before the switchover" > "$TARGET/marker" && sync || { note "cannot write $TARGET/marker"; return 1; }
  note "bound on $TARGET; marker written"
}

do_expand() {
  local before after
  before=$(df -k "$TARGET" | awk 'NR==2 {print $2}')
  echo "WEFT-CSI-RESIZE ext4 $W_VOL $W_GROWN_MB"
  expand "$W_VOL" "$TARGET" "$W_GROWN_MB" || { note "NodeExpandVolume: $(called)"; return 1; }
  after=$(df -k "$TARGET" | awk 'NR==2 {print $2}')
  [ "$after" -gt "$before" ] || { note "the file system is $after KiB, was $before KiB"; return 1; }
  note "/dev/$HEAD is $W_GROWN_MB MiB; ext4 grew online from $before to $after KiB"
}

do_fio() {
  local pid rc w0 i=0 d0 ioerr
  d0=$(dmesg | wc -l)
  w0=$(writes)
  (trap '' PIPE
   tmo 400 fio --filename="$TARGET/fio.dat" --ioengine=libaio --direct=1 --group_reporting \
      --eta=never --verify_fatal=1 --do_verify=1 --verify_state_save=0 \
      --name=switchover --rw=randwrite --bs=4k --iodepth=16 --numjobs=1 \
      --size="$W_FIO_SIZE" --rate_iops=,"$W_FIO_IOPS" --verify=crc32c) > /tmp/fio.out 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    if [ $(( $(writes) - w0 )) -gt 200 ]; then echo "WEFT-SWITCH-KILL"; break; fi
    i=$((i + 1)); [ $i -lt 600 ] || break
    sleep 0.1
  done
  wait $pid; rc=$?
  echo "fio:"; tail -25 /tmp/fio.out
  dmesg | tail -n +$((d0 + 1)) | grep -E "nvme|EXT4" > /tmp/dmesg.out
  echo "kernel messages during fio:"; tail -40 /tmp/dmesg.out
  [ $rc -eq 0 ] || { note "fio exit $rc: $(grep -m1 -iE 'err|fail' /tmp/fio.out)"; return 1; }
  grep -q 'err= 0' /tmp/fio.out || { note "fio reported errors: $(grep -m1 'err=' /tmp/fio.out)"; return 1; }
  ioerr=$(grep -ciE 'I/O error|EXT4-fs error' /tmp/dmesg.out)
  [ "$ioerr" -eq 0 ] || { note "fio passed, but the kernel logged $ioerr error(s): $(grep -m1 -iE 'I/O error|EXT4-fs error' /tmp/dmesg.out)"; return 1; }
  note "fio wrote and verified $W_FIO_SIZE in $TARGET/fio.dat across the switchover, no error; $(grep -m1 -oE 'WRITE: bw=[^,]*' /tmp/fio.out)"
}

do_paths() {
  local s2
  s2=$(path_state "$C2")
  [ "$s2" = optimized ] || { note "the standby's path ($C2) is '$s2', not optimized"; return 1; }
  note "$C2 (port $W_PORT2) serves the namespace, optimized; $C1 (the lost node) $(ctrl_state "$C1")"
}

do_stats() {
  call NodeGetVolumeStats "$(volume_request "$TARGET")" || { note "NodeGetVolumeStats: $(called)"; return 1; }
  grep -q '"unit":"INODES"' /tmp/call.out && grep -q '"message":"attached as /dev/' /tmp/call.out &&
    ! grep -q '"abnormal":true' /tmp/call.out || { note "NodeGetVolumeStats answered $(called)"; return 1; }
  note "$(called)"
}

do_unstage() {
  local left
  call NodeUnpublishVolume "$(printf '{"volume_id":"%s","target_path":"%s"}' "$W_VOL" "$TARGET")" ||
    { note "NodeUnpublishVolume: $(called)"; return 1; }
  call NodeUnstageVolume "$(unstage_json "$W_VOL" "$STAGING")" ||
    { note "NodeUnstageVolume: $(called)"; return 1; }
  [ -z "$(mount_of "$TARGET")$(mount_of "$STAGING")" ] || { note "still mounted: $(grep kubelet /proc/mounts | tr '\n' ' ')"; return 1; }
  left=$(ctrls_of "$W_NQN" | tr '\n' ' ')
  [ -z "$left" ] || { note "controllers of $W_NQN left: $left"; return 1; }
  # again: already undone is OK
  call NodeUnstageVolume "$(unstage_json "$W_VOL" "$STAGING")" ||
    { note "NodeUnstageVolume again: $(called)"; return 1; }
  note "unmounted, every controller of $W_NQN disconnected"
}

do_restage() {
  local m
  call NodeStageVolume "$(stage_request)" || { note "NodeStageVolume: $(called); plugin: $(tail -2 /tmp/csi.log | tr '\n' ' ')"; return 1; }
  m=$(mount_of "$STAGING")
  case $m in /dev/nvme*" ext4") ;; *) note "$STAGING: mounted '$m'"; return 1 ;; esac
  [ "$(cat "$STAGING/marker" 2>/dev/null)" = "written before the switchover" ] ||
    { note "$STAGING/marker: '$(cat "$STAGING/marker" 2>&1)'"; return 1; }
  call NodeUnstageVolume "$(unstage_json "$W_VOL" "$STAGING")" ||
    { note "NodeUnstageVolume: $(called)"; return 1; }
  note "staged again through port $W_PORT2 alone (port $W_PORT1's node is dead): ${m%% *}, the marker is there; unstaged"
}

do_block() {
  local blk=/var/lib/kubelet/plugins/volumeDevices/$W_VOL/dev cap='"volume_capability":{"block":{},"access_mode":{"mode":"SINGLE_NODE_WRITER"}}' t
  call NodeStageVolume "$(stage_json "$W_VOL" "$STAGING" '"block":{}' "$W_NQN" "$W_PORT1" "$W_PORT2")" ||
    { note "NodeStageVolume (block): $(called)"; return 1; }
  [ -z "$(mount_of "$STAGING")" ] || { note "a block volume's staging path is mounted: $(mount_of "$STAGING")"; return 1; }
  call NodePublishVolume "$(printf '{"volume_id":"%s","staging_target_path":"%s","target_path":"%s",%s}' "$W_VOL" "$STAGING" "$blk" "$cap")" ||
    { note "NodePublishVolume (block): $(called)"; return 1; }
  [ -b "$blk" ] || { note "$blk is not a block device: $(ls -l "$blk" 2>&1)"; return 1; }
  t=$(blkid -p -o value -s TYPE "$blk" 2>&1)
  [ "$t" = ext4 ] || { note "blkid on $blk: '$t', expected ext4"; return 1; }
  call NodeGetVolumeStats "$(volume_request "$blk")" || { note "NodeGetVolumeStats (block): $(called)"; return 1; }
  grep -q "\"total\":\"$((W_GROWN_MB * 1048576))\"" /tmp/call.out || { note "NodeGetVolumeStats (block) answered $(called)"; return 1; }
  call NodeUnpublishVolume "$(printf '{"volume_id":"%s","target_path":"%s"}' "$W_VOL" "$blk")" ||
    { note "NodeUnpublishVolume (block): $(called)"; return 1; }
  call NodeUnstageVolume "$(unstage_json "$W_VOL" "$STAGING")" ||
    { note "NodeUnstageVolume (block): $(called)"; return 1; }
  [ -z "$(ctrls_of "$W_NQN" | tr -d '\n')" ] || { note "controllers of $W_NQN left after the block unstage"; return 1; }
  note "published as a block device on $blk (blkid: ext4, $W_GROWN_MB MiB), unpublished, unstaged, disconnected"
}

echo "weft guest: switchover nqn=$W_NQN paths $W_ADDR:$W_PORT1 $W_ADDR:$W_PORT2 kernel=$(uname -r)"
echo "WEFT-PLAN csi/node csi/xfs csi/stage csi/publish csi/expand switchover/fio switchover/paths csi/stats csi/unstage csi/restage csi/block"
if step csi/node do_node && step csi/xfs do_xfs && step csi/stage do_stage && step csi/publish do_publish; then
  step csi/expand do_expand
  step switchover/fio do_fio && step switchover/paths do_paths
  step csi/stats do_stats
  step csi/unstage do_unstage && step csi/restage do_restage && step csi/block do_block
fi
echo "plugin log:"; tail -20 /tmp/csi.log
tmo 30 nvme disconnect -n "$W_NQN" > /dev/null 2>&1
echo "WEFT-DONE failures=$FAILS"
[ $FAILS -eq 0 ]
