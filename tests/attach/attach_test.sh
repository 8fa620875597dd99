#!/usr/bin/env bash
# Userspace attach (weft attach): a pool volume of a real weft-engine becomes
# /dev/loopN on this machine through FUSE, with no nvme-tcp in the kernel.
#   attach_test.sh WEFT ENGINE
# Checks: the device has the volume's size and block size; what is written
# to the device is what the target holds (read back with `weft nvme read`);
# ext4 and xfs are made, mounted, written, and read back after a detach and
# a new attach; detach is refused while mounted or open; the volume grows and
# `weft rescan` grows the device, then the mounted file system (xfs); a
# daemon killed with SIGKILL leaves nothing that stops the next attach.
# Needs root, /dev/fuse and loop devices: skipped (77) without them.
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
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ] || [ ! -c /dev/loop-control ]; then
  echo "SKIP: userspace attach needs root, /dev/fuse and /dev/loop-control"
  exit 77
fi
for tool in mkfs.ext4 mkfs.xfs xfs_growfs blockdev jq; do
  command -v $tool >/dev/null || { echo "FAIL: no $tool (scripts/setup.sh installs it)"; exit 1; }
done
source "$here/../cli/engine.sh"
run=$data/run
mnt=$data/mnt
mkdir -p "$mnt"
fail() {
  echo "FAIL: $*"
  for f in "$run"/*/log "$data/engine.log"; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
  exit 1
}
cleanup_attach() {
  mountpoint -q "$mnt" && umount "$mnt"
  for d in "$run"/*/; do
    [ -f "$d/state.json" ] || continue
    pid=$(jq -r .pid "$d/state.json")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    dev=$(jq -r .device "$d/state.json")
    losetup -d "$dev" 2>/dev/null
    umount -l "$d/mnt" 2>/dev/null
  done
  stop_engine
  rm -rf "$data"
}
trap cleanup_attach EXIT
step() { echo "--- $*"; }

MiB=$((1 << 20))
start_engine "$engine"
api=127.0.0.1:$api_port
"$weft" engine pool create p "$data/pool.img" --size 1GiB --api "$api" >/dev/null || fail "pool"
"$weft" engine volume create p v 320MiB --api "$api" >/dev/null || fail "volume"
share=$("$weft" engine volume share p v --any-host --json --api "$api") || fail "share: $share"
vnqn=$(jq -r .nqn <<<"$share")
conn=(-a 127.0.0.1 -s "$port" -n "$vnqn")

attach() {
  dev=$("$weft" attach "${conn[@]}" --run-dir "$run" 2>"$data/attach.err") ||
    fail "attach: $(cat "$data/attach.err")"
  [[ $dev == /dev/loop* ]] || fail "attach printed '$dev'"
}

step "attach"
attach
[ "$(blockdev --getsize64 "$dev")" = $((320 * MiB)) ] || fail "size $(blockdev --getsize64 "$dev")"
[ "$(blockdev --getss "$dev")" = 512 ] || fail "block size $(blockdev --getss "$dev")"
"$weft" attached --run-dir "$run" | grep -q "^$dev .*$vnqn@127.0.0.1:$port/1$" ||
  fail "not listed: $("$weft" attached --run-dir "$run")"
# Attaching again: the same device.
again=$("$weft" attach "${conn[@]}" --run-dir "$run") || fail "attach again"
[ "$again" = "$dev" ] || fail "attached twice: $again and $dev"

step "raw writes reach the target"
head -c $((4 * MiB)) /dev/urandom >"$data/pattern"
dd if="$data/pattern" of="$dev" bs=1M seek=8 oflag=direct conv=fsync status=none || fail "dd"
"$weft" nvme read "${conn[@]}" --lba $((8 * MiB / 512)) --blocks $((4 * MiB / 512)) \
  --output "$data/back" 2>"$data/read.err" || fail "nvme read: $(cat "$data/read.err")"
cmp -s "$data/pattern" "$data/back" || fail "the target does not hold what the device was given"
# And back through the device (direct I/O: from the target, not a cache).
dd if="$dev" bs=4096 skip=2048 count=1024 iflag=direct status=none | cmp -s - "$data/pattern" ||
  fail "reading the device back"

# The FUSE file itself, off block boundaries: a read and a read-patch-write.
file=$(echo "$run"/*/mnt/disk)
dd if="$file" bs=1 skip=$((8 * MiB + 100)) count=3000 status=none >"$data/odd" || fail "odd read"
cmp -s "$data/odd" <(tail -c +101 "$data/pattern" | head -c 3000) || fail "unaligned read"
head -c 1000 /dev/urandom >"$data/patch"
dd if="$data/patch" of="$file" bs=1000 seek=$(((8 * MiB + 700) / 1000)) conv=notrunc status=none ||
  fail "odd write"
off=$(((8 * MiB + 700) / 1000 * 1000))
"$weft" nvme read "${conn[@]}" --lba $((off / 512)) --blocks 3 --output "$data/blk" || fail "read"
cmp -s <(tail -c +$((off % 512 + 1)) "$data/blk" | head -c 1000) "$data/patch" ||
  fail "unaligned write did not land"
cmp -s <(head -c $((off % 512)) "$data/blk") \
  <(tail -c +$((off - 8 * MiB + 1 - off % 512)) "$data/pattern" | head -c $((off % 512))) ||
  fail "unaligned write changed the bytes before it"

for fs in ext4 xfs; do
  step "$fs: mkfs, mount, write, detach, attach, read"
  if [ $fs = ext4 ]; then mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4"
  else mkfs.xfs -q -f "$dev" || fail "mkfs.xfs"; fi
  mount "$dev" "$mnt" || fail "mount $fs"
  for i in 1 2 3; do head -c $((1 * MiB + i * 4097)) /dev/urandom >"$mnt/f$i"; done
  sync
  (cd "$mnt" && sha256sum f1 f2 f3) >"$data/sums.$fs"
  # Refused while mounted: nothing changes.
  if "$weft" detach "$dev" --run-dir "$run" 2>"$data/detach.err"; then fail "detached while mounted"; fi
  grep -q "in use" "$data/detach.err" || fail "no sentence: $(cat "$data/detach.err")"
  [ -e "$mnt/f1" ] || fail "the file system went"
  umount "$mnt" || fail "umount"
  # Refused while an application has it open (not exclusively), too.
  exec 7<"$dev"
  if "$weft" detach "$dev" --run-dir "$run" 2>"$data/detach.err"; then fail "detached while open"; fi
  grep -q "in use" "$data/detach.err" || fail "no sentence: $(cat "$data/detach.err")"
  exec 7<&-
  "$weft" detach "$dev" --run-dir "$run" || fail "detach"
  [ -z "$(ls "$run")" ] || fail "detach left $(ls "$run")"
  attach
  mount "$dev" "$mnt" || fail "mount $fs again"
  (cd "$mnt" && sha256sum -c --quiet "$data/sums.$fs") || fail "$fs files changed"
  umount "$mnt"
done

step "the volume grows online: rescan, then the file system"
# xfs grows mounted (xfs_growfs needs CAP_SYS_ADMIN); ext4's online resize
# needs CAP_SYS_RESOURCE as well, which some sandboxes do not give root.
mkfs.xfs -q -f "$dev" || fail "mkfs.xfs"
mount "$dev" "$mnt" || fail "mount"
echo kept >"$mnt/kept"
sync
before_kb=$(df -k --output=size "$mnt" | tail -1)
"$weft" engine volume resize p v 384MiB --api "$api" >/dev/null || fail "volume resize"
got=$("$weft" rescan "$dev" --run-dir "$run") || fail "rescan: $got"
[ "$got" = "$dev $((384 * MiB))" ] || fail "rescan said '$got'"
[ "$(blockdev --getsize64 "$dev")" = $((384 * MiB)) ] || fail "device size $(blockdev --getsize64 "$dev")"
xfs_growfs "$mnt" >"$data/grow.out" 2>&1 || fail "xfs_growfs: $(cat "$data/grow.out")"
size_kb=$(df -k --output=size "$mnt" | tail -1)
[ "$size_kb" -ge $((before_kb + 60 * 1024)) ] || fail "the file system went from $before_kb to $size_kb KiB"
[ "$(cat "$mnt/kept")" = kept ] || fail "a file changed while growing"
umount "$mnt"

step "a killed daemon does not stop the next attach"
pid=$(jq -r .pid "$run"/*/state.json)
kill -KILL "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
attach
[ "$(blockdev --getsize64 "$dev")" = $((384 * MiB)) ] || fail "size after a stale attach"
"$weft" detach "$dev" --run-dir "$run" || fail "detach"

step "NQN@ADDR:PORT"
d1=$("$weft" attach "$vnqn@127.0.0.1:$port" --run-dir "$run" 2>"$data/err") || fail "attach NQN@ADDR:PORT: $(cat "$data/err")"
[ "$(blockdev --getsize64 "$d1")" = $((384 * MiB)) ] || fail "size through NQN@ADDR:PORT"
"$weft" detach "$vnqn" --run-dir "$run" || fail "detach by NQN"

step "refusals"
for bad in "" "x@" "@127.0.0.1" "$vnqn@127.0.0.1:99999" "not-a-volume"; do
  rc=0
  "$weft" attach $bad --run-dir "$run" 2>"$data/err" || rc=$?
  [ "$rc" = 2 ] && [ -s "$data/err" ] || fail "attach '$bad': rc $rc, $(cat "$data/err")"
done
rc=0
"$weft" attach "$vnqn@127.0.0.1:$port" "${conn[@]}" --run-dir "$run" 2>"$data/err" || rc=$?
[ "$rc" = 2 ] && grep -q "not both" "$data/err" || fail "TARGET and -a/-n: rc $rc, $(cat "$data/err")"
if "$weft" attach -a 127.0.0.1 -s "$port" -n nqn.2026-11.io.weft:nothing --run-dir "$run" \
  2>"$data/err"; then fail "attached a subsystem that does not exist"; fi
[ -s "$data/err" ] || fail "no sentence for an unknown subsystem"
[ -z "$(ls "$run")" ] || fail "a refused attach left $(ls "$run")"
if "$weft" detach /dev/loop999 --run-dir "$run" 2>"$data/err"; then fail "detached nothing"; fi
grep -q "not attached" "$data/err" || fail "no sentence: $(cat "$data/err")"
echo "PASS: attach"
