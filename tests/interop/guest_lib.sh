# Helpers of the guest scripts (kernel_host_guest.sh, switchover_guest.sh):
# the host scripts put this file into the VM's job before the guest script.
# Busybox ash inside the initiator VM. Every check is a step that prints one
# machine-readable line
#     WEFT-STEP <id> PASS|FAIL|SKIP <seconds>s <note>
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
FAILS=0
NOTE=
SKIP_RC=77

now() { cut -d' ' -f1 /proc/uptime; }
note() { NOTE="$*"; echo "  -> $*"; }
# tmo SECS CMD...: bound one external command (a process stuck in the kernel
# cannot be killed; the host side bounds the whole VM as well)
tmo() { local s=$1; shift; timeout -s KILL "$s" "$@"; }

# step ID FUNC ARGS...: run one check, print its result line
step() {
  local id=$1 t0 rc dt res; shift
  NOTE=
  t0=$(now)
  echo "----- BEGIN $id"
  "$@"
  rc=$?
  dt=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')
  if [ $rc -eq 0 ]; then res=PASS
  elif [ $rc -eq $SKIP_RC ]; then res=SKIP
  else res=FAIL; FAILS=$((FAILS+1)); [ -n "$NOTE" ] || NOTE="rc=$rc"; fi
  echo "WEFT-STEP $id $res ${dt}s ${NOTE:-ok}"
  return $rc
}
skip_step() { echo "WEFT-STEP $1 SKIP 0.0s $2"; }

# write_requests DEV [CTRL]: write requests completed on block device DEV (a
# multipath head) or on the paths of controller CTRL (or of any controller):
# Debian's 6.1 counts a head's I/O on its paths.
write_requests() {
  local f w max=0
  # (unquoted: the default, nvme*, is a glob)
  for f in /sys/block/"$1"/stat /sys/class/nvme/${2:-nvme*}/nvme*c*n*/stat; do
    [ -r "$f" ] || continue
    w=$(awk '{print $5}' "$f")
    [ "${w:-0}" -gt "$max" ] && max=$w
  done
  echo "$max"
}

# Native multipath: a subsystem's controllers, paths and head.
ctrl_at() {  # NQN PORT: nvmeN of the subsystem's controller at W_ADDR:PORT
  local c
  for c in /sys/class/nvme/nvme*; do
    [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$1" ] || continue
    case "$(cat "$c/address")" in *traddr=$W_ADDR,trsvcid=$2*) basename "$c"; return 0 ;; esac
  done
  return 1
}
path_state() {  # CTRL: the ANA state of its path to namespace 1, or "none" (no namespace)
  local s
  s=$(cat /sys/class/nvme/"$1"/nvme*c*n1/ana_state 2>/dev/null | head -1)
  echo "${s:-none}"
}
mpath_head() {  # NQN: the subsystem's multipath head block device (nvmeXnY)
  local s d
  for s in /sys/class/nvme-subsystem/nvme-subsys*; do
    [ "$(cat "$s/subsysnqn" 2>/dev/null)" = "$1" ] || continue
    for d in "$s"/nvme*n*; do [ -e "$d" ] && { basename "$d"; return 0; }; done
  done
  return 1
}
