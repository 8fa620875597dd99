#!/usr/bin/env bash
# shellcheck disable=SC1007,SC2034  # `A= B=` is meant; W_* are read via ${!v}
# kernel_host_test.sh - weft's NVMe/TCP target against the Linux kernel's own
# NVMe/TCP host (Debian's 6.1 kernel in QEMU, nvme-cli 2.3, fio 3.33, ext4).
#
#   kernel_host_test.sh [OPTIONS] [--cli WEFT_CLI] ENGINE_BINARY
#   kernel_host_test.sh [OPTIONS] --against-external-target PORT NQN \
#                                 [--external-allowed-host HOSTNQN]
#
# With ENGINE_BINARY it starts the engine on 127.0.0.1 (a free port) with a
# fresh --data-dir and boots an initiator VM (tests/interop/kernel-nvme-vm)
# whose guest script (kernel_host_guest.sh) runs, as separate steps: discover,
# connect (2 I/O queues, 2 vCPUs), list, id-ctrl, id-ns, fio 4k randrw with
# crc32c verify, fio 128k sequential write + verify, ext4 (mkfs, mount, write,
# umount, fsck, mount, compare), reservations (register/report/acquire/
# conflict/release/unregister), disconnect; then all of it again with header
# and data digests (with SQ flow control off, so reads end with the C2HData
# SUCCESS flag), and writes a raw pattern. The engine is then stopped with
# SIGTERM (must exit 0) and started again on the same --data-dir with
# --allow-host: a second VM checks that another host NQN is refused, that the
# allowed one connects, and that the pattern and the ext4 file read back
# identically.
#
# The same second VM then tests a nexus (with --cli, the `weft` CLI): before
# it boots, two more engines (replicas) each share a pool volume, and the
# restarted engine builds a nexus over a local volume and those two
# (nvmf://127.0.0.1:PORT/NQN children), shared to the VM's host NQN. The VM
# connects to it and runs fio 4k random writes with crc32c verify; when it
# prints WEFT-NEXUS-FIO-RUNNING this script SIGKILLs replica 1. fio must end
# without an error. Then: the nexus shows that child faulted and the others
# online; replica 1 starts again (same --data-dir) and the nexus must rebuild
# it by itself (partial rebuild, done, every child online, within 60 s); the
# two replicas' data areas (from 1 MiB) and the nexus read through its share
# (`weft nvme read`) must be identical. The replicas get SIGTERM at the end.
# Between the two, the VM connects to the nexus again (1 s keep-alive) and
# runs fio while this script, on the guest's cues, removes the nexus's share
# for 3 s and then the engine's listener for 3 s: the controller must leave
# "live" within 5 s and come back, and fio must see no error (blktests nvme/061).
# Before the nexus steps, the same VM checks ANA with native multipath: both
# replica engines serve one subsystem NQN (disjoint controller ID ranges),
# each from a small volume with its own marker, replica 1's path optimized
# and replica 2's inaccessible; the kernel must see one namespace over two
# paths with those states and read replica 1's marker, then, once this
# script swaps the states on the guest's cue, read replica 2's (rows ana/*).
# Without --cli the nexus steps are SKIPPED (which fails a run against an
# engine, where no step may be skipped).
#
# Exit 0 only if every step passed; a summary table is printed.
#
# --against-external-target skips the engine: the VMs run against a target
# already listening on 127.0.0.1:PORT (e.g. `kernel-nvme-vm target`, the
# kernel's nvmet), to validate the guest side. Reservations are then SKIPPED if
# the target does not advertise them, the deny-host check runs only with
# --external-allowed-host (the one host NQN the target allows), and there is
# no nexus (its guest steps are SKIPPED).
#
# Needs root (QEMU, apt for a first build) and tests/interop/setup.sh's
# packages. Everything talks to 127.0.0.1 only (QEMU user networking).
set -u -o pipefail

# ------------------------------------------------------------------------
# The engine's command line. If weft-engine's flags change, adapt here.
#   ENGINE --demo --listen 127.0.0.1:PORT --data-dir DIR --cores 0,1 [--allow-host NQN]...
#   (two reactors: the host's admin and I/O queues land on both)
# --demo serves one namespace from a file under --data-dir and prints, on
# stdout, the line to connect with, e.g.
#   nvme connect -t tcp -a 127.0.0.1 -s 4420 -n nqn.2026-11.io.weft:demo
# from which the subsystem NQN is taken.
ENGINE_LISTEN_ADDR=127.0.0.1
ENGINE_FLAGS_FIXED=(--demo --cores 0,1 --api-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0)
ENGINE_FLAG_LISTEN=--listen          # value: ADDR:PORT
ENGINE_FLAG_DATA_DIR=--data-dir      # value: directory (kept across the restart)
ENGINE_FLAG_ALLOW_HOST=--allow-host  # value: host NQN; repeatable
ENGINE_READY_TIMEOUT=${WEFT_INTEROP_ENGINE_READY_TIMEOUT:-30}  # s: connect line + listening
ENGINE_STOP_TIMEOUT=${WEFT_INTEROP_ENGINE_STOP_TIMEOUT:-20}    # s: SIGTERM -> exit
engine_command() {  # PORT DATA_DIR [ALLOWED_HOSTNQN...] -> ENGINE_CMD
  local port=$1 dir=$2 h; shift 2
  ENGINE_CMD=("$ENGINE" "${ENGINE_FLAGS_FIXED[@]}" "$ENGINE_FLAG_LISTEN" "$ENGINE_LISTEN_ADDR:$port"
              "$ENGINE_FLAG_DATA_DIR" "$dir")
  for h in "$@"; do ENGINE_CMD+=("$ENGINE_FLAG_ALLOW_HOST" "$h"); done
}
# The nexus's replicas: plain engines (no --demo) that the CLI gives a pool
# and a shared volume; they print "management API on ADDR:PORT" on stdout.
REPLICA_FLAGS_FIXED=(--api-listen 127.0.0.1:0 --metrics-listen none --cores 0 --poll-us 0)
# Replica I gives out controller IDs I*1000 to I*1000+999: the two serve the
# same subsystem NQN to the VM for the ANA step, and a host refuses a second
# controller with a CNTLID it already has.
replica_command() {  # PORT DATA_DIR I -> ENGINE_CMD
  ENGINE_CMD=("$ENGINE" "${REPLICA_FLAGS_FIXED[@]}" "$ENGINE_FLAG_LISTEN" "$ENGINE_LISTEN_ADDR:$1"
              "$ENGINE_FLAG_DATA_DIR" "$2" --cntlid-range "$(($3 * 1000))-$(($3 * 1000 + 999))")
}
# ------------------------------------------------------------------------

# Sizes (TCG emulation: keep them small). The namespace must hold at least
# PAT_OFF_MB + PAT_MB MiB: ext4 in [0, FS_MB), the raw pattern after it.
FIO_RAND_SIZE=${WEFT_INTEROP_FIO_RAND_SIZE:-32m}   # split over 2 jobs
FIO_SEQ_SIZE=${WEFT_INTEROP_FIO_SEQ_SIZE:-16m}
FS_MB=48
PAT_OFF_MB=56
PAT_MB=4
NR_IO_QUEUES=2
# The nexus: NEXUS_MB over a local volume and one on each replica engine
# (NEXUS_MB + 1 MiB each: label and bitmap), in pools of POOL_MB files. The
# VM's fio writes NEXUS_FIO_SIZE at most NEXUS_FIO_WRITE_IOPS (4k), ~16 s,
# then verifies; replica NEXUS_KILLED is killed during the writes.
NEXUS_MB=64
NEXUS_POOL_MB=256
NEXUS_IO_TIMEOUT_MS=2000
NEXUS_FIO_SIZE=${WEFT_INTEROP_NEXUS_FIO_SIZE:-32m}
NEXUS_FIO_WRITE_IOPS=${WEFT_INTEROP_NEXUS_FIO_WRITE_IOPS:-500}
NEXUS_KILLED=1
NEXUS_REBUILD_WAIT=60   # s: the killed replica is back -> rebuilt, every child online
CONNECT_EXTRA="--ctrl-loss-tmo=30 --reconnect-delay=2"   # bound hangs if the target dies

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KNVM=${WEFT_KNVM:-$HERE/kernel-nvme-vm}
GUEST_SCRIPT=$HERE/kernel_host_guest.sh
TOTAL_TIMEOUT=${WEFT_INTEROP_TIMEOUT:-600}
LOCK_WAIT=${WEFT_INTEROP_LOCK_WAIT:-600}
SMP=2
MAIN_VM_CAP=480
RESTART_VM_CAP=420   # its two nexus fio runs take 60-100 s under TCG

usage() { sed -n '3,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; cat <<'EOF'
Options:
  --cli PATH         the `weft` CLI (builds the nexus; without it the nexus steps
                     are SKIPPED, which fails a run against an engine)
  --against-external-target PORT NQN   no engine; use the target on 127.0.0.1:PORT
  --external-allowed-host HOSTNQN      (external) the only host NQN the target
                                       allows: enables the deny-host check
  --work-dir DIR     logs, job files, engine data (default: a new dir in $TMPDIR;
                     removed after success unless --keep)
  --keep             keep the work dir after success
  --timeout SEC      hard limit for the whole test (default 600; env WEFT_INTEROP_TIMEOUT)
  --smp N            vCPUs of the initiator VM (default 2)
  --verbose          stream the whole guest output (default: step lines only)
Environment: KNVM_CACHE (harness cache; default ~/.cache/weft/kernel-nvme-vm),
WEFT_INTEROP_FIO_RAND_SIZE (32m), WEFT_INTEROP_FIO_SEQ_SIZE (16m),
WEFT_INTEROP_NEXUS_FIO_SIZE (32m), WEFT_INTEROP_NEXUS_FIO_WRITE_IOPS (500),
WEFT_INTEROP_LOCK_WAIT (s to wait for another interop run, default 600).
Exit status: 0 all steps passed, 1 a step failed, 2 usage, 124 timed out.
EOF
}

die_usage() { echo "kernel_host_test: $*" >&2; echo "see: $0 --help" >&2; exit 2; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

MODE=weft ENGINE= EXT_PORT= EXT_NQN= EXT_ALLOWED= WORK= KEEP=0 VERBOSE=0 CLI=
while [ $# -gt 0 ]; do
  case $1 in
    --against-external-target)
      [ $# -ge 3 ] || die_usage "--against-external-target needs PORT NQN"
      MODE=external EXT_PORT=$2 EXT_NQN=$3; shift 3; continue ;;
    --external-allowed-host) [ $# -ge 2 ] || die_usage "$1 needs a value"; EXT_ALLOWED=$2; shift ;;
    --cli) [ $# -ge 2 ] || die_usage "$1 needs a value"; CLI=$2; shift ;;
    --work-dir) [ $# -ge 2 ] || die_usage "$1 needs a value"; WORK=$2; shift ;;
    --timeout) [ $# -ge 2 ] || die_usage "$1 needs a value"; TOTAL_TIMEOUT=$2; shift ;;
    --smp) [ $# -ge 2 ] || die_usage "$1 needs a value"; SMP=$2; shift ;;
    --keep) KEEP=1 ;;
    --verbose) VERBOSE=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) die_usage "unknown option $1" ;;
    *) [ -z "$ENGINE" ] || die_usage "unexpected argument $1"; ENGINE=$1 ;;
  esac
  shift
done
[[ $TOTAL_TIMEOUT =~ ^[0-9]+$ ]] && [ "$TOTAL_TIMEOUT" -ge 60 ] || die_usage "--timeout must be a number >= 60"
[[ $SMP =~ ^[0-9]+$ ]] && [ "$SMP" -ge 1 ] || die_usage "--smp must be a number >= 1"
if [ $MODE = external ]; then
  [ -z "$ENGINE" ] || die_usage "give either ENGINE_BINARY or --against-external-target, not both"
  [[ $EXT_PORT =~ ^[0-9]+$ ]] && [ "$EXT_PORT" -ge 1 ] && [ "$EXT_PORT" -le 65535 ] || die_usage "bad port $EXT_PORT"
  [ -n "$EXT_NQN" ] || die_usage "empty NQN"
else
  [ -n "$ENGINE" ] || die_usage "missing ENGINE_BINARY"
  [ -z "$EXT_ALLOWED" ] || die_usage "--external-allowed-host only goes with --against-external-target"
  [ -x "$ENGINE" ] || { echo "kernel_host_test: engine binary '$ENGINE' is not executable" >&2; exit 2; }
  ENGINE=$(readlink -f "$ENGINE")
fi
if [ $MODE = external ]; then
  CLI=   # no nexus on an external target
elif [ -n "$CLI" ]; then
  [ -x "$CLI" ] || { echo "kernel_host_test: weft CLI '$CLI' is not executable" >&2; exit 2; }
  CLI=$(readlink -f "$CLI")
fi
[ -x "$KNVM" ] || { echo "kernel_host_test: harness $KNVM missing" >&2; exit 2; }
[ -r "$GUEST_SCRIPT" ] || { echo "kernel_host_test: $GUEST_SCRIPT missing" >&2; exit 2; }
for t in flock ss setsid timeout; do
  command -v $t > /dev/null || { echo "kernel_host_test: '$t' not found (run tests/interop/setup.sh)" >&2; exit 2; }
done

# ------------------------------------------------------------ results ----
R_ID=() R_RES=() R_TIME=() R_NOTE=() QUIET_RECORD=0
record() {  # ID PASS|FAIL|SKIP TIME NOTE (printed now, unless streamed already)
  R_ID+=("$1") R_RES+=("$2") R_TIME+=("$3") R_NOTE+=("$4")
  [ $QUIET_RECORD = 1 ] || printf '  %-4s %-32s %7s  %s\n' "$2" "$1" "$3" "$4"
}
T0=$SECONDS
since() { echo "$((SECONDS - $1))s"; }
remaining() { echo $(( TOTAL_TIMEOUT - (SECONDS - T0) )); }

summary() {
  local i pass=0 fail=0 skip=0 ok=1
  echo
  echo "==== weft kernel-host interop: summary (mode=$MODE, total $((SECONDS - T0)) s) ===="
  printf '%-32s %-6s %7s  %s\n' STEP RESULT TIME NOTE
  for i in "${!R_ID[@]}"; do
    printf '%-32s %-6s %7s  %s\n' "${R_ID[$i]}" "${R_RES[$i]}" "${R_TIME[$i]}" "${R_NOTE[$i]}"
    case ${R_RES[$i]} in
      PASS) pass=$((pass+1)) ;;
      SKIP) skip=$((skip+1)); [ $MODE = external ] || ok=0 ;;
      *) fail=$((fail+1)); ok=0 ;;
    esac
  done
  [ ${#R_ID[@]} -gt 0 ] || ok=0
  echo "==== $([ $ok = 1 ] && echo PASSED || echo FAILED): $pass passed, $fail failed, $skip skipped$([ $MODE = weft ] && [ $skip -gt 0 ] && echo ' (no step may be skipped against weft)') ===="
  [ -n "$WORK" ] && echo "logs: $WORK"
  [ $ok = 1 ]
}

# --------------------------------------------------------------- cleanup ----
EPID= HPID= TPID= WDPID=
RP_PID=([1]='' [2]='') RP_PORT=([1]='' [2]='') RP_API=([1]='' [2]='') RP_NQN=([1]='' [2]='') RP_DIR=([1]='' [2]='')
kill_replicas() {  # the replica engines: SIGTERM, SIGKILL after 10 s
  local i
  for i in 1 2; do
    [ -n "${RP_PID[$i]}" ] || continue
    if kill -0 "${RP_PID[$i]}" 2>/dev/null; then
      kill -TERM "${RP_PID[$i]}" 2>/dev/null
      for _ in $(seq 1 20); do kill -0 "${RP_PID[$i]}" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "${RP_PID[$i]}" 2>/dev/null
    fi
    wait "${RP_PID[$i]}" 2>/dev/null
    RP_PID[i]=
  done
}
kill_engine() {
  [ -n "$EPID" ] || return 0
  if kill -0 "$EPID" 2>/dev/null; then
    kill -TERM "$EPID" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$EPID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$EPID" 2>/dev/null
  fi
  wait "$EPID" 2>/dev/null
  EPID=
}
stop_vm() {
  [ -n "$HPID" ] && kill -TERM "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null   # harness stops QEMU
  [ -n "$TPID" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
  HPID= TPID=
}
on_exit() {
  stop_vm; kill_engine; kill_replicas
  [ -n "$WDPID" ] && kill "$WDPID" 2>/dev/null
}
on_timeout() {
  trap - TERM
  echo "kernel_host_test: SIGTERM (hard timeout of ${TOTAL_TIMEOUT}s, or from outside): stopping everything" >&2
  stop_vm; kill_engine; kill_replicas
  record "test/timeout" FAIL "$(since "$T0")" "stopped by SIGTERM: the whole test took over ${TOTAL_TIMEOUT}s (--timeout), or was killed"
  summary
  exit 124
}
on_signal() { echo "kernel_host_test: interrupted" >&2; stop_vm; kill_engine; kill_replicas; exit 130; }
trap on_exit EXIT
trap on_signal INT HUP

# ---------------------------------------------------------------- setup ----
if [ -z "$WORK" ]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-interop.XXXXXX") || exit 2
  AUTO_WORK=1
else
  AUTO_WORK=0
  if [ -d "$WORK" ] && [ -n "$(ls -A "$WORK")" ] && [ ! -e "$WORK/.weft-interop-workdir" ]; then
    echo "kernel_host_test: --work-dir $WORK exists, is not empty and is not ours; refusing to clear it" >&2; exit 2
  fi
  rm -rf "$WORK"; mkdir -p "$WORK" || exit 2
fi
WORK=$(readlink -f "$WORK")
touch "$WORK/.weft-interop-workdir"

# one interop run at a time per machine (2 cores: two TCG VMs would starve each other)
KCACHE=${KNVM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/weft/kernel-nvme-vm}
mkdir -p "$KCACHE" || exit 2
exec 9>"$KCACHE/interop-run.lock"
if ! flock -n 9; then
  log "another kernel-interop run holds $KCACHE/interop-run.lock; waiting up to ${LOCK_WAIT}s"
  flock -w "$LOCK_WAIT" 9 || { echo "kernel_host_test: timed out waiting for the interop lock" >&2; exit 1; }
fi
T0=$SECONDS   # the time limit counts from here, not from the wait for the lock

# the hard limit: a watchdog that signals us (and we stop QEMU and the engine)
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep "$TOTAL_TIMEOUT" & sp=$!; wait $sp; kill -TERM $$ ) \
  > /dev/null 2>&1 9>&- &
WDPID=$!
trap on_timeout TERM

new_uuid() { cat /proc/sys/kernel/random/uuid; }
U=$(new_uuid); HOSTNQN="nqn.2014-08.org.nvmexpress:uuid:$U"; HOSTID=$U
U=$(new_uuid); DENIED_HOSTNQN="nqn.2014-08.org.nvmexpress:uuid:$U"; DENIED_HOSTID=$U
if [ $MODE = external ]; then
  if [ -n "$EXT_ALLOWED" ]; then
    HOSTNQN=$EXT_ALLOWED
    case $EXT_ALLOWED in *:uuid:*-*-*-*-*) HOSTID=${EXT_ALLOWED##*:uuid:} ;; *) HOSTID=$(new_uuid) ;; esac
  else
    DENIED_HOSTNQN= DENIED_HOSTID=
  fi
fi

log "weft kernel-host interop: mode=$MODE work=$WORK timeout=${TOTAL_TIMEOUT}s"
log "host identity $HOSTNQN (hostid $HOSTID)${DENIED_HOSTNQN:+; refused identity $DENIED_HOSTNQN}"

# harness build (idempotent; installs/downloads on a first run, as root)
t=$SECONDS
if "$KNVM" build > "$WORK/harness-build.log" 2>&1 9>&-; then
  record setup/harness-build PASS "$(since $t)" "$(tail -1 "$WORK/harness-build.log" | sed 's/^knvm: //')"
else
  record setup/harness-build FAIL "$(since $t)" "kernel-nvme-vm build failed (run tests/interop/setup.sh as root): $(tail -1 "$WORK/harness-build.log")"
  summary; exit 1
fi

# ---------------------------------------------------------------- engine ----
port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() {
  local p i
  for i in $(seq 1 50); do
    # Below Linux's ephemeral range (32768-60999): ports that other tests'
    # port-0 listeners and client sockets take meanwhile cannot clash.
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  return 1
}
nqn_from_line() {  # the -n/--nqn value of an "nvme connect" line
  awk '{ for (i = 1; i <= NF; i++) {
           if ($i == "-n" || $i == "--nqn") { print $(i+1); exit }
           if ($i ~ /^--nqn=/) { sub(/^--nqn=/, "", $i); print $i; exit } } }' <<< "$1"
}
port_from_line() {
  awk '{ for (i = 1; i <= NF; i++) {
           if ($i == "-s" || $i == "--trsvcid") { print $(i+1); exit }
           if ($i ~ /^--trsvcid=/) { sub(/^--trsvcid=/, "", $i); print $i; exit } } }' <<< "$1"
}

# start_engine NAME PORT|any [ALLOWED...]: sets EPID PORT NQN; records NAME/engine-start
start_engine() {
  local name=$1 want=$2 t=$SECONDS attempt line p out err note=; shift 2
  for attempt in 1 2 3; do
    if [ "$want" = any ]; then p=$(pick_port) || { record "$name/engine-start" FAIL "$(since $t)" "no free port found"; return 1; }
    else p=$want; fi
    engine_command "$p" "$DATA_DIR" "$@"
    out="$WORK/$name-engine.stdout" err="$WORK/$name-engine.stderr"
    printf '%q ' "${ENGINE_CMD[@]}" > "$WORK/$name-engine.cmd"; echo >> "$WORK/$name-engine.cmd"
    log "$name: starting $(cat "$WORK/$name-engine.cmd")"
    "${ENGINE_CMD[@]}" > "$out" 2> "$err" < /dev/null 9>&- &
    EPID=$!
    local deadline=$((SECONDS + ENGINE_READY_TIMEOUT)) ready=0
    line=
    while [ $SECONDS -lt $deadline ]; do
      if ! kill -0 "$EPID" 2>/dev/null; then break; fi
      [ -n "$line" ] || line=$(grep -m1 -E '(^|[[:space:]])nvme connect[[:space:]]' "$out" 2>/dev/null)
      if [ -n "$line" ] && port_in_use "$p"; then ready=1; break; fi
      sleep 0.2
    done
    if [ $ready = 1 ]; then break; fi
    if ! kill -0 "$EPID" 2>/dev/null; then
      wait "$EPID"; local rc=$?; EPID=
      if [ "$want" = any ] && cat "$out" "$err" | grep -qi 'address already in use\|EADDRINUSE' && [ $attempt -lt 3 ]; then
        log "$name: port $p was taken meanwhile; another one"; continue
      fi
      record "$name/engine-start" FAIL "$(since $t)" "engine exited with code $rc before it was ready: $(cat "$out" "$err" | tail -c 300 | tr '\n' ' ')"
      return 1
    fi
    kill_engine
    if [ -z "$line" ]; then
      note="no 'nvme connect ...' line on stdout within ${ENGINE_READY_TIMEOUT}s"
    else
      note="printed the connect line but nothing listens on $ENGINE_LISTEN_ADDR:$p within ${ENGINE_READY_TIMEOUT}s"
    fi
    record "$name/engine-start" FAIL "$(since $t)" "$note (logs: $out, $err)"
    return 1
  done
  PORT=$p
  NQN=$(nqn_from_line "$line")
  if [ -z "$NQN" ]; then
    record "$name/engine-start" FAIL "$(since $t)" "cannot find -n/--nqn in the engine's line: $line"
    kill_engine; return 1
  fi
  note="pid $EPID on $ENGINE_LISTEN_ADDR:$PORT, nqn $NQN"
  local lp; lp=$(port_from_line "$line")
  [ -z "$lp" ] || [ "$lp" = "$PORT" ] || note="$note (warning: its connect line says port $lp)"
  [ $# -eq 0 ] || note="$note, allowed hosts: $*"
  record "$name/engine-start" PASS "$(since $t)" "$note"
}

stop_engine() {  # NAME: SIGTERM, must exit 0 in time
  local name=$1 t=$SECONDS rc
  if [ -z "$EPID" ]; then record "$name/engine-stop" FAIL 0s "engine not running"; return 1; fi
  if ! kill -0 "$EPID" 2>/dev/null; then
    wait "$EPID"; rc=$?; EPID=
    record "$name/engine-stop" FAIL "$(since $t)" "engine had already exited (code $rc) during the run: $(tail -c 300 "$WORK/$name-engine.stderr" | tr '\n' ' ')"
    return 1
  fi
  kill -TERM "$EPID"
  local deadline=$((SECONDS + ENGINE_STOP_TIMEOUT))
  while kill -0 "$EPID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if kill -0 "$EPID" 2>/dev/null; then
    kill -KILL "$EPID"; wait "$EPID" 2>/dev/null; EPID=
    record "$name/engine-stop" FAIL "$(since $t)" "still running ${ENGINE_STOP_TIMEOUT}s after SIGTERM (killed)"
    return 1
  fi
  wait "$EPID"; rc=$?; EPID=
  if [ $rc -ne 0 ]; then
    record "$name/engine-stop" FAIL "$(since $t)" "SIGTERM: exit code $rc (expected 0): $(tail -c 300 "$WORK/$name-engine.stderr" | tr '\n' ' ')"
    return 1
  fi
  record "$name/engine-stop" PASS "$(since $t)" "SIGTERM: exit 0"
}

# -------------------------------------------------------------------- VM ----
declare -A VALUES=()
# run_vm PLAN CAP: boots the initiator VM with the guest script for PLAN;
# records PLAN/vm and one row per planned guest step.
run_vm() {
  local plan=$1 cap=$2 t=$SECONDS rem tmo rc job run log
  rem=$(remaining); tmo=$(( rem - 20 < cap ? rem - 20 : cap ))
  if [ "$tmo" -lt 20 ]; then record "$plan/vm" FAIL 0s "not enough time left (${rem}s)"; return 1; fi
  job="$WORK/$plan-job.sh" run="$WORK/$plan-vm" log="$WORK/$plan-vm.log"
  {
    echo "# generated by kernel_host_test.sh"
    for v in W_PLAN W_MODE W_ADDR W_PORT W_NQN W_HOSTNQN W_HOSTID W_DENIED_HOSTNQN W_DENIED_HOSTID \
             W_NR_IO_QUEUES W_FIO_RAND_SIZE W_FIO_SEQ_SIZE W_FS_MB W_PAT_OFF_MB W_PAT_MB \
             W_EXPECT_PAT_SHA W_EXPECT_FILE_SHA W_CONNECT_EXTRA \
             W_NEXUS_NQN W_NEXUS_MB W_NEXUS_FIO_SIZE W_NEXUS_FIO_WRITE_IOPS \
             W_ANA_NQN W_ANA_PORT1 W_ANA_PORT2 W_ANA_SUM1 W_ANA_SUM2; do
      printf "%s='%s'\n" "$v" "${!v//\'/}"
    done
    cat "$HERE/guest_lib.sh" "$GUEST_SCRIPT"
  } > "$job"
  log "$plan: booting the initiator VM (smp $SMP, timeout ${tmo}s) -> 10.0.2.2:$W_PORT ($W_NQN)"
  rm -rf "$run"
  "$KNVM" initiator --port "$W_PORT" --nqn "$W_NQN" --hostnqn "$W_HOSTNQN" --hostid "$W_HOSTID" \
      --no-connect --script "$job" --smp "$SMP" --timeout "$tmo" --run-dir "$run" \
      > "$log" 2>&1 < /dev/null 9>&- &
  HPID=$!
  if [ $VERBOSE = 1 ]; then
    tail -n +1 -f --pid="$HPID" "$log" 2>/dev/null | sed -u 's/^/    | /' &
  else
    tail -n +1 -f --pid="$HPID" "$log" 2>/dev/null | grep --line-buffered -E '^(WEFT-STEP|knvm:)' \
      | sed -u 's/^/    | /' &
  fi
  TPID=$!
  if [ $NX_WATCH = 1 ] || [ $FLAP_WATCH = 1 ] || [ $ANA_WATCH = 1 ]; then   # the guest's cues
    while kill -0 "$HPID" 2>/dev/null; do
      nexus_watch "$run/results.log"; flap_watch "$run/results.log"; ana_watch "$run/results.log"
      sleep 0.2
    done
    nexus_watch "$run/results.log"
  fi
  wait "$HPID"; rc=$?; HPID=
  sleep 0.3; kill "$TPID" 2>/dev/null; wait "$TPID" 2>/dev/null; TPID=

  local res="$run/results.log" planned id line r tm note done_line
  [ -f "$res" ] || res=/dev/null
  planned=$(tr -d '\r' < "$res" | grep -a -m1 '^WEFT-PLAN' | cut -d' ' -f2-)
  done_line=$(tr -d '\r' < "$res" | grep -a -m1 '^WEFT-DONE')
  case $rc in
    0|1) if [ -n "$done_line" ]; then record "$plan/vm" PASS "$(since $t)" "guest finished ($done_line)"
         else record "$plan/vm" FAIL "$(since $t)" "guest script did not finish (harness rc=$rc); see $run/console.log"; fi ;;
    124) record "$plan/vm" FAIL "$(since $t)" "VM timed out after ${tmo}s; see $run/console.log" ;;
    125) record "$plan/vm" FAIL "$(since $t)" "VM ended without a result (kernel panic?); see $run/console.log" ;;
    *)   record "$plan/vm" FAIL "$(since $t)" "harness failed (rc=$rc): $(grep -m1 'knvm: error' "$log")" ;;
  esac
  if [ -z "$planned" ]; then
    record "$plan/guest" FAIL 0s "the guest script never started (see $log)"
    return 1
  fi
  # every planned step, then any step the guest reported outside its plan
  local reported
  reported=$(tr -d '\r' < "$res" | grep -a '^WEFT-STEP ' | cut -d' ' -f2)
  for id in $(printf '%s\n' $planned $reported | awk '!seen[$0]++'); do
    line=$(tr -d '\r' < "$res" | grep -a "^WEFT-STEP $id " | tail -1)
    if [ -z "$line" ]; then record "$id" FAIL - "no result: the guest never got to this step"; continue; fi
    read -r _ _ r tm note <<< "$line"
    QUIET_RECORD=1; record "$id" "$r" "$tm" "$note"; QUIET_RECORD=0
    if [ "$r" = FAIL ]; then
      # the step's own output, for diagnosis
      echo "    --- output of $id (last 25 lines; all in $res):"
      tr -d '\r' < "$res" | awk -v id="$id" '$0 == "----- BEGIN " id {on=1; n=0; next}
          on && index($0, "WEFT-STEP " id " ") == 1 {on=0; next}
          on {b[n++ % 25] = $0}
          END {s = (n > 25 ? n - 25 : 0); for (i = s; i < n; i++) print "        " b[i % 25]}'
    fi
  done
  while read -r line; do
    line=${line#WEFT-VALUE }; VALUES[${line%%=*}]=${line#*=}
  done < <(tr -d '\r' < "$res" | grep -a '^WEFT-VALUE ')
  return 0
}

# ----------------------------------------------------------------- nexus ----
# The restarted engine's nexus over a local volume and one volume on each of
# two replica engines (RP_* by replica number, 1 and 2). Rows nexus/*.
NX_API= NX_UUID= NX_NQN= NX_WATCH=0 NX_KILL_AT= NX_KILL_NOTE= NX_CHILD=()
source "$(dirname "${BASH_SOURCE[0]}")/../engine_args.sh"
wcli() {  # ARGS...: the weft CLI, bounded; $out (stdout), $err (stderr, one line), $rc
  engine_args "$@"
  out=$(timeout 60 "$CLI" "${args[@]}" 2> "$WORK/cli.stderr" < /dev/null 9>&-); rc=$?
  err=$(tr '\n' ' ' < "$WORK/cli.stderr" | cut -c1-300)
}
api_from_log() {  # FILES...: the address of a "management API on ADDR:PORT" line
  cat "$@" 2>/dev/null | grep -o -m1 'management API on [0-9.]*:[0-9]*' | awk '{print $NF}'
}
# start_replica I any|PORT NAME: sets RP_PID[I] RP_PORT[I] RP_API[I]; RNOTE says
# what happened (logs $WORK/NAME-engine.std{out,err})
start_replica() {
  local i=$1 want=$2 name=$3 attempt p out err api deadline rc
  RNOTE=
  for attempt in 1 2 3; do
    if [ "$want" = any ]; then p=$(pick_port) || { RNOTE="no free port found"; return 1; }
    else p=$want; fi
    replica_command "$p" "${RP_DIR[$i]}" "$i"
    out="$WORK/$name-engine.stdout" err="$WORK/$name-engine.stderr"
    printf '%q ' "${ENGINE_CMD[@]}" > "$WORK/$name-engine.cmd"; echo >> "$WORK/$name-engine.cmd"
    log "$name: starting $(cat "$WORK/$name-engine.cmd")"
    "${ENGINE_CMD[@]}" > "$out" 2> "$err" < /dev/null 9>&- &
    RP_PID[i]=$!
    deadline=$((SECONDS + ENGINE_READY_TIMEOUT)) api=
    while [ $SECONDS -lt $deadline ] && kill -0 "${RP_PID[$i]}" 2>/dev/null; do
      [ -n "$api" ] || api=$(api_from_log "$out" "$err")
      [ -n "$api" ] && port_in_use "$p" && break
      sleep 0.2
    done
    if [ -n "$api" ] && port_in_use "$p" && kill -0 "${RP_PID[$i]}" 2>/dev/null; then
      RP_PORT[i]=$p RP_API[i]=$api
      RNOTE="pid ${RP_PID[$i]} on $ENGINE_LISTEN_ADDR:$p, API $api"
      return 0
    fi
    if ! kill -0 "${RP_PID[$i]}" 2>/dev/null; then
      wait "${RP_PID[$i]}"; rc=$?; RP_PID[i]=
      if [ "$want" = any ] && cat "$out" "$err" | grep -qi 'address already in use\|EADDRINUSE' && [ $attempt -lt 3 ]; then
        log "$name: port $p was taken meanwhile; another one"; continue
      fi
      RNOTE="exited with code $rc before it was ready: $(cat "$out" "$err" | tail -c 300 | tr '\n' ' ')"
      return 1
    fi
    kill -KILL "${RP_PID[$i]}"; wait "${RP_PID[$i]}" 2>/dev/null; RP_PID[i]=
    RNOTE="not ready within ${ENGINE_READY_TIMEOUT}s (API line: ${api:-none}, listening on $p: $(port_in_use "$p" && echo yes || echo no)); see $out"
    return 1
  done
}
# cli_or_fail ID T WHAT ARGS...: runs weft ARGS; on failure records ID FAIL
cli_or_fail() {
  local id=$1 t=$2 what=$3; shift 3
  wcli "$@"
  [ $rc -eq 0 ] && return 0
  record "$id" FAIL "$(since "$t")" "$what: weft $1 $2 ... exit $rc: $err$(head -c 200 <<< "$out" | tr '\n' ' ')"
  return 1
}
nexus_get() {  # -> $out: the nexus as JSON (0), or 1
  wcli nexus get "$NX_UUID" --json --api "$NX_API"
  [ $rc -eq 0 ] && jq -e .uuid <<< "$out" > /dev/null 2>&1
}
# nexus_setup: on the restarted engine (its API from its stdout); sets
# W_NEXUS_NQN for the VM when everything is in place.
nexus_setup() {
  local t=$SECONDS i pool
  if [ -z "$CLI" ]; then
    record nexus/setup SKIP 0s "no --cli WEFT_CLI: no nexus (the restart VM skips its nexus steps)"
    return 1
  fi
  command -v jq > /dev/null || { record nexus/setup FAIL 0s "'jq' not found (run tests/interop/setup.sh)"; return 1; }
  for _ in $(seq 1 50); do
    NX_API=$(api_from_log "$WORK/run2-engine.stdout" "$WORK/run2-engine.stderr")
    [ -n "$NX_API" ] && break; sleep 0.2
  done
  [ -n "$NX_API" ] || { record nexus/setup FAIL "$(since $t)" "no 'management API on ADDR:PORT' line from the run-2 engine (see $WORK/run2-engine.stdout)"; return 1; }
  for i in 1 2; do
    t=$SECONDS pool=r$i
    RP_DIR[i]="$WORK/replica$i-data"
    mkdir -p "${RP_DIR[$i]}"
    start_replica $i any replica$i || { record "nexus/replica$i-start" FAIL "$(since $t)" "$RNOTE"; return 1; }
    cli_or_fail "nexus/replica$i-start" $t "pool" pool create $pool "${RP_DIR[$i]}/pool.img" \
      --size ${NEXUS_POOL_MB}MiB --api "${RP_API[$i]}" || return 1
    cli_or_fail "nexus/replica$i-start" $t "volume" volume create $pool replica $((NEXUS_MB + 1))MiB \
      --api "${RP_API[$i]}" || return 1
    cli_or_fail "nexus/replica$i-start" $t "share" volume share $pool replica --any-host --json \
      --api "${RP_API[$i]}" || return 1
    RP_NQN[i]=$(jq -r '.nqn // empty' <<< "$out")
    [ -n "${RP_NQN[$i]}" ] || { record "nexus/replica$i-start" FAIL "$(since $t)" "no .nqn in the share's JSON: $out"; return 1; }
    record "nexus/replica$i-start" PASS "$(since $t)" "$RNOTE; $pool/replica ($((NEXUS_MB + 1)) MiB) shared to any host as ${RP_NQN[$i]}"
  done
  t=$SECONDS
  cli_or_fail nexus/create $t "pool" pool create nx "$DATA_DIR/nexus-pool.img" --size ${NEXUS_POOL_MB}MiB --api "$NX_API" || return 1
  cli_or_fail nexus/create $t "volume" volume create nx local $((NEXUS_MB + 1))MiB --api "$NX_API" || return 1
  NX_CHILD=(pool://nx/local "nvmf://127.0.0.1:${RP_PORT[1]}/${RP_NQN[1]}" "nvmf://127.0.0.1:${RP_PORT[2]}/${RP_NQN[2]}")
  cli_or_fail nexus/create $t "create" nexus create --size ${NEXUS_MB}MiB --io-timeout-ms $NEXUS_IO_TIMEOUT_MS \
    --child "${NX_CHILD[0]}" --child "${NX_CHILD[1]}" --child "${NX_CHILD[2]}" --json --api "$NX_API" || return 1
  NX_UUID=$(jq -r '.uuid // empty' <<< "$out")
  if ! jq -e --argjson c "$(printf '%s\n' "${NX_CHILD[@]}" | jq -R . | jq -s .)" \
       '.state == "online" and [.children[].uri] == $c and all(.children[]; .state == "online")' <<< "$out" > /dev/null; then
    record nexus/create FAIL "$(since $t)" "the new nexus is not online with its 3 children online: $(jq -c '{state, children: [.children[] | {uri, state, reason}]}' <<< "$out" 2>&1 | head -c 400)"
    return 1
  fi
  cli_or_fail nexus/create $t "share" nexus share "$NX_UUID" --allow-host "$HOSTNQN" --json --api "$NX_API" || return 1
  NX_NQN=$(jq -r '.nqn // empty' <<< "$out")
  [ -n "$NX_NQN" ] || { record nexus/create FAIL "$(since $t)" "no .nqn in the share's JSON: $out"; return 1; }
  record nexus/create PASS "$(since $t)" "nexus $NX_UUID ($NEXUS_MB MiB, I/O timeout $NEXUS_IO_TIMEOUT_MS ms) over ${NX_CHILD[*]}, online; shared as $NX_NQN to $HOSTNQN"
  W_NEXUS_NQN=$NX_NQN NX_WATCH=1 FLAP_WATCH=1
}
# nexus_watch RESULTS_LOG: while the restart VM runs; once the guest says
# fio is writing to the nexus, SIGKILL replica NEXUS_KILLED (once).
nexus_watch() {
  local k=$NEXUS_KILLED res=$1 done_line now
  [ $NX_WATCH = 1 ] || return 0
  done_line=$(grep -a -m1 '^WEFT-STEP nexus/fio-verify-replica-killed ' "$res" 2>/dev/null)
  if [ -z "$NX_KILL_AT" ]; then
    grep -aq '^WEFT-NEXUS-FIO-RUNNING' "$res" 2>/dev/null || { [ -z "$done_line" ] || NX_WATCH=0; return 0; }
    if [ -n "$done_line" ]; then
      NX_KILL_NOTE="fio had finished before the host saw its cue: no replica was killed during it"; NX_WATCH=0; return 0
    fi
    NX_KILL_AT=$(date +%s.%N)
    if [ -n "${RP_PID[$k]}" ] && kill -KILL "${RP_PID[$k]}" 2>/dev/null; then
      wait "${RP_PID[$k]}" 2>/dev/null
      log "nexus: the guest's fio is writing ($(tr -d '\r' < "$res" | grep -a -m1 '^WEFT-NEXUS-FIO-RUNNING' | cut -d' ' -f2-)): SIGKILL replica$k (pid ${RP_PID[$k]})"
      NX_KILL_NOTE="SIGKILL replica$k (pid ${RP_PID[$k]}) once fio wrote to the nexus"
    else
      NX_KILL_NOTE="replica$k (pid ${RP_PID[$k]:-none}) was not running when fio started"
      NX_KILL_AT=failed
    fi
    RP_PID[k]=
    return 0
  fi
  if [ -n "$done_line" ]; then
    now=$(date +%s.%N)
    [ "$NX_KILL_AT" = failed ] || NX_KILL_NOTE="$NX_KILL_NOTE; fio went on for $(awk -v a="$NX_KILL_AT" -v b="$now" 'BEGIN{printf "%.1f", b-a}')s after it"
    NX_WATCH=0
  fi
}
# nexus_after_vm: the kill, the faulted child, its restart and rebuild, the data
nexus_after_vm() {
  local k=$NEXUS_KILLED t=$SECONDS want kuri i f bad= sums=() note
  kuri=${NX_CHILD[$k]}
  case $NX_KILL_AT in
    ''|failed) record nexus/replica-kill FAIL 0s "${NX_KILL_NOTE:-the guest never printed WEFT-NEXUS-FIO-RUNNING: no replica was killed}"; return 1 ;;
  esac
  [ $NX_WATCH = 0 ] || NX_KILL_NOTE="$NX_KILL_NOTE; the VM ended before fio did"
  record nexus/replica-kill PASS 0s "$NX_KILL_NOTE"

  # the nexus retired the killed child; the other two are in sync
  t=$SECONDS
  if ! nexus_get; then
    record nexus/child-faulted FAIL "$(since $t)" "weft engine nexus get: exit $rc: $err"
  else
    note=$(jq -c '{state, children: [.children[] | [.uri, .state, .reason] | join(" ")]}' <<< "$out")
    if jq -e --argjson k "$k" '.children as $c | $c[$k].state == "faulted" and
         ([range(0; $c | length)] - [$k] | all(.[]; $c[.].state == "online"))' <<< "$out" > /dev/null; then
      record nexus/child-faulted PASS "$(since $t)" "$kuri faulted ($(jq -r --argjson k "$k" '.children[$k].reason' <<< "$out")), the other two online; nexus $(jq -r .state <<< "$out")"
    else
      record nexus/child-faulted FAIL "$(since $t)" "expected $kuri faulted and the others online: $note"
    fi
  fi

  # the killed replica comes back (same data dir: pool and share); the nexus
  # reconnects and rebuilds it by itself
  t=$SECONDS
  if ! start_replica $k "${RP_PORT[$k]}" replica$k-restart; then
    record nexus/replica-restart FAIL "$(since $t)" "$RNOTE"; return 1
  fi
  record nexus/replica-restart PASS "$(since $t)" "$RNOTE (same --data-dir)"
  t=$SECONDS
  local deadline=$((SECONDS + NEXUS_REBUILD_WAIT)) okr=0 rebuilt
  while :; do
    if nexus_get && jq -e --arg u "$kuri" 'all(.children[]; .state == "online") and
         any(.rebuild_history[]; .child == $u and .outcome == "done")' <<< "$out" > /dev/null; then okr=1; break; fi
    [ $SECONDS -lt $deadline ] || break
    sleep 1
  done
  if [ $okr = 0 ]; then
    record nexus/rebuild FAIL "$(since $t)" "after ${NEXUS_REBUILD_WAIT}s not every child online with a finished rebuild of $kuri: $(jq -c '{state, children: [.children[] | [.uri, .state, .reason] | join(" ")], rebuild_history}' <<< "$out" 2>/dev/null | head -c 600)"
  else
    rebuilt=$(jq -c --arg u "$kuri" '[.rebuild_history[] | select(.child == $u and .outcome == "done")] | last' <<< "$out")
    note="$(jq -r '"\(.kind) rebuild, done: \(.bytes) bytes in \(.end_unix_ms - .start_unix_ms) ms"' <<< "$rebuilt"); every child online, nexus $(jq -r .state <<< "$out")"
    if [ "$(jq -r .kind <<< "$rebuilt")" = partial ]; then
      record nexus/rebuild PASS "$(since $t)" "$note"
    else
      record nexus/rebuild FAIL "$(since $t)" "$note; expected a partial rebuild (the write-intent bitmap knows what it missed)"
    fi
  fi

  # the same bytes: each replica's data area (after its 1 MiB of label and
  # bitmap) and the nexus read through its share
  t=$SECONDS
  local blocks=$((NEXUS_MB * 2048)) names=(replica1 replica2 nexus)
  local reads=("-s ${RP_PORT[1]} -n ${RP_NQN[1]} --lba 2048" "-s ${RP_PORT[2]} -n ${RP_NQN[2]} --lba 2048"
               "-s $PORT -n $NX_NQN --lba 0 --hostnqn $HOSTNQN")
  for i in 0 1 2; do
    f="$WORK/nexus-data-${names[$i]}.bin"
    # shellcheck disable=SC2086  # the read's options
    wcli nvme read -a 127.0.0.1 ${reads[$i]} --blocks $blocks --timeout 30 -o "$f"
    if [ $rc -ne 0 ] || [ "$(stat -c %s "$f" 2>/dev/null)" != $((NEXUS_MB << 20)) ]; then
      bad="weft nvme read of ${names[$i]} ($((NEXUS_MB << 20)) bytes): exit $rc: $err"; break
    fi
    sums[i]=$(sha256sum < "$f" | cut -d' ' -f1)
    rm -f "$f"
  done
  if [ -z "$bad" ]; then
    local zero; zero=$(head -c $((NEXUS_MB << 20)) /dev/zero | sha256sum | cut -d' ' -f1)
    if [ "${sums[0]}" != "${sums[2]}" ] || [ "${sums[1]}" != "${sums[2]}" ]; then
      bad="they differ: replica1 ${sums[0]:0:12}, replica2 ${sums[1]:0:12}, nexus ${sums[2]:0:12}"
    elif [ "${sums[2]}" = "$zero" ]; then
      bad="all three are zeros: the guest's writes are not there"
    fi
  fi
  if [ -n "$bad" ]; then record nexus/data-compare FAIL "$(since $t)" "$bad"
  else record nexus/data-compare PASS "$(since $t)" "replica1, replica2 (from 1 MiB) and the nexus: $NEXUS_MB MiB identical (sha256 ${sums[2]:0:12}...)"; fi
}
# nexus_stop_replicas: SIGTERM, each must exit 0 (after the nexus's engine stopped)
nexus_stop_replicas() {
  local t=$SECONDS i rc bad=() deadline
  for i in 1 2; do
    [ -n "${RP_PID[$i]}" ] || { [ -z "${RP_DIR[$i]}" ] || bad+=("replica$i was not running"); continue; }
    if ! kill -0 "${RP_PID[$i]}" 2>/dev/null; then
      wait "${RP_PID[$i]}"; rc=$?; RP_PID[i]=; bad+=("replica$i had exited (code $rc)"); continue
    fi
    kill -TERM "${RP_PID[$i]}"
  done
  for i in 1 2; do
    [ -n "${RP_PID[$i]}" ] || continue
    deadline=$((SECONDS + ENGINE_STOP_TIMEOUT))
    while kill -0 "${RP_PID[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "${RP_PID[$i]}" 2>/dev/null; then
      kill -KILL "${RP_PID[$i]}"; wait "${RP_PID[$i]}" 2>/dev/null; bad+=("replica$i still running ${ENGINE_STOP_TIMEOUT}s after SIGTERM (killed)")
    else
      wait "${RP_PID[$i]}"; rc=$?; [ $rc = 0 ] || bad+=("replica$i: SIGTERM -> exit code $rc")
    fi
    RP_PID[i]=
  done
  if [ ${#bad[@]} -gt 0 ]; then record nexus/replicas-stop FAIL "$(since $t)" "$(IFS=';'; echo "${bad[*]}")"
  else record nexus/replicas-stop PASS "$(since $t)" "SIGTERM: both exit 0"; fi
}

# flap_watch RESULTS_LOG: while the restart VM runs; on each WEFT-NEXUS-FLAP
# share|listener cue, takes the nexus's share (or the engine's listener) away,
# waits FLAP_PAUSE s and brings it back (once each). Row nexus/path-flap-host.
flap_watch() {
  local res=$1 what t
  [ $FLAP_WATCH = 1 ] || return 0
  for what in share listener; do
    [ -z "${FLAP_DONE[$what]:-}" ] || continue
    grep -aq "^WEFT-NEXUS-FLAP $what" "$res" 2>/dev/null || return 0
    FLAP_DONE[$what]=1 t=$SECONDS
    case $what in
      share)
        wcli nexus unshare "$NX_UUID" --api "$NX_API"
        [ $rc -eq 0 ] || { FLAP_NOTE="$FLAP_NOTE; nexus unshare: exit $rc: $err"; FLAP_BAD=1; continue; }
        sleep $FLAP_PAUSE
        wcli nexus share "$NX_UUID" --allow-host "$HOSTNQN" --json --api "$NX_API"
        if [ $rc -ne 0 ] || [ "$(jq -r .nqn <<< "$out" 2>/dev/null)" != "$NX_NQN" ]; then
          FLAP_NOTE="$FLAP_NOTE; nexus share again: exit $rc: $err $(head -c 200 <<< "$out")"; FLAP_BAD=1; continue
        fi ;;
      listener)
        wcli listener remove "$ENGINE_LISTEN_ADDR:$PORT" --api "$NX_API"
        [ $rc -eq 0 ] || { FLAP_NOTE="$FLAP_NOTE; listener remove: exit $rc: $err"; FLAP_BAD=1; continue; }
        sleep $FLAP_PAUSE
        wcli listener add "$ENGINE_LISTEN_ADDR:$PORT" --api "$NX_API"
        [ $rc -eq 0 ] || { FLAP_NOTE="$FLAP_NOTE; listener add again: exit $rc: $err"; FLAP_BAD=1; continue; }
        ;;
    esac
    log "nexus: the $what taken away for ${FLAP_PAUSE}s and back (guest's cue)"
    FLAP_NOTE="$FLAP_NOTE; $what removed for ${FLAP_PAUSE}s, back after $(since $t)"
  done
}
flap_record() {
  if [ $FLAP_BAD = 1 ]; then record nexus/path-flap-host FAIL 0s "${FLAP_NOTE#; }"
  elif [ -z "${FLAP_DONE[listener]:-}" ]; then
    record nexus/path-flap-host FAIL 0s "the guest never asked for both flaps${FLAP_NOTE:+ (${FLAP_NOTE#; })}"
  else record nexus/path-flap-host PASS 0s "${FLAP_NOTE#; }"; fi
}
FLAP_WATCH=0 FLAP_BAD=0 FLAP_NOTE= FLAP_PAUSE=3
declare -A FLAP_DONE=()

# ------------------------------------------------------------------- ANA ----
# Both replica engines serve ANA_NQN, each from a small volume of its own
# whose first 4 KiB differ (so the guest can tell which path served a read):
# replica 1's path optimized, replica 2's inaccessible. On the guest's cue
# WEFT-ANA-FLIP this script swaps the two states (row ana/flip-host); the
# guest's multipath must follow (rows ana/*). Sets W_ANA_* for the VM.
ANA_NQN=nqn.2026-11.io.weft.test:ana ANA_WATCH=0 ANA_DONE=0 ANA_NOTE=
ana_setup() {
  local t=$SECONDS i
  for i in 1 2; do
    cli_or_fail ana/setup $t "volume" volume create r$i ana 4MiB --api "${RP_API[$i]}" || return 1
    cli_or_fail ana/setup $t "share" volume share r$i ana --nqn "$ANA_NQN" --any-host \
      --api "${RP_API[$i]}" || return 1
    head -c 4096 /dev/urandom > "$WORK/ana-marker$i"
    wcli nvme write -a 127.0.0.1 -s "${RP_PORT[$i]}" -n "$ANA_NQN" --lba 0 --blocks 8 \
      --input "$WORK/ana-marker$i"
    [ $rc -eq 0 ] || { record ana/setup FAIL "$(since $t)" "marking replica $i's volume: exit $rc: $err"; return 1; }
  done
  cli_or_fail ana/setup $t "ana" ana "$ANA_NQN" inaccessible --api "${RP_API[2]}" || return 1
  W_ANA_NQN=$ANA_NQN W_ANA_PORT1=${RP_PORT[1]} W_ANA_PORT2=${RP_PORT[2]}
  W_ANA_SUM1=$(md5sum < "$WORK/ana-marker1" | cut -d' ' -f1)
  W_ANA_SUM2=$(md5sum < "$WORK/ana-marker2" | cut -d' ' -f1)
  ANA_WATCH=1
  record ana/setup PASS "$(since $t)" "$ANA_NQN on replica 1 (port ${RP_PORT[1]}, optimized) and replica 2 (port ${RP_PORT[2]}, inaccessible), a 4 MiB volume each with its own marker"
}
ana_watch() {  # RESULTS_LOG: on WEFT-ANA-FLIP, replica 1 inaccessible, replica 2 optimized
  [ $ANA_WATCH = 1 ] && [ $ANA_DONE = 0 ] || return 0
  grep -aq '^WEFT-ANA-FLIP' "$1" 2>/dev/null || return 0
  ANA_DONE=1
  wcli ana "$ANA_NQN" inaccessible --api "${RP_API[1]}"
  [ $rc -eq 0 ] || { ANA_NOTE="replica 1 inaccessible: exit $rc: $err"; return 0; }
  wcli ana "$ANA_NQN" optimized --api "${RP_API[2]}"
  [ $rc -eq 0 ] || { ANA_NOTE="replica 2 optimized: exit $rc: $err"; return 0; }
  ANA_NOTE=ok
  log "ana: replica 1's path is inaccessible, replica 2's optimized (guest's cue)"
}
ana_record() {
  case $ANA_NOTE in
    ok) record ana/flip-host PASS 0s "replica 1's path set inaccessible, then replica 2's optimized, on the guest's cue" ;;
    '') record ana/flip-host FAIL 0s "the guest never asked for the flip" ;;
    *) record ana/flip-host FAIL 0s "$ANA_NOTE" ;;
  esac
}

# ----------------------------------------------------------------- run it ----
W_ADDR=10.0.2.2                      # the host's 127.0.0.1, as the guest sees it
W_HOSTNQN=$HOSTNQN W_HOSTID=$HOSTID
W_NR_IO_QUEUES=$NR_IO_QUEUES W_FIO_RAND_SIZE=$FIO_RAND_SIZE W_FIO_SEQ_SIZE=$FIO_SEQ_SIZE
W_FS_MB=$FS_MB W_PAT_OFF_MB=$PAT_OFF_MB W_PAT_MB=$PAT_MB W_CONNECT_EXTRA=$CONNECT_EXTRA
W_MODE=$MODE W_EXPECT_PAT_SHA= W_EXPECT_FILE_SHA= W_DENIED_HOSTNQN= W_DENIED_HOSTID=
W_NEXUS_NQN= W_NEXUS_MB=$NEXUS_MB W_NEXUS_FIO_SIZE=$NEXUS_FIO_SIZE W_NEXUS_FIO_WRITE_IOPS=$NEXUS_FIO_WRITE_IOPS
W_ANA_NQN= W_ANA_PORT1= W_ANA_PORT2= W_ANA_SUM1= W_ANA_SUM2=
DATA_DIR="$WORK/data"
mkdir -p "$DATA_DIR"

# run 1: the engine open to any host; the full sequence, plain and with digests
ok1=1
if [ $MODE = weft ]; then
  start_engine run1 any || ok1=0
else
  PORT=$EXT_PORT NQN=$EXT_NQN
  record run1/engine-start SKIP 0s "external target 127.0.0.1:$PORT, nqn $NQN"
fi
if [ $ok1 = 1 ]; then
  W_PLAN=main W_PORT=$PORT W_NQN=$NQN
  run_vm main $MAIN_VM_CAP
  FIRST_NQN=$NQN FIRST_PORT=$PORT
  if [ $MODE = weft ]; then stop_engine run1; else record run1/engine-stop SKIP 0s "external target: not stopped"; fi

  # run 2: same data dir, restricted to one host: refusal + persistence
  ok2=1
  if [ $MODE = weft ]; then
    # the same port first: a restarted target must be able to listen there again
    start_engine run2 "$FIRST_PORT" "$HOSTNQN" || ok2=0
    if [ $ok2 = 1 ] && [ "$NQN" != "$FIRST_NQN" ]; then
      record run2/same-nqn FAIL 0s "the restarted engine serves $NQN, the first run served $FIRST_NQN"
    fi
  else
    record run2/engine-start SKIP 0s "external target: not restarted, so persistence is only checked across VM boots"
  fi
  if [ $ok2 = 1 ]; then
    # the nexus (weft mode): replicas, nexus, share; the restart VM tests it
    nx=0
    if [ $MODE = weft ]; then nexus_setup && nx=1; fi
    [ $nx = 1 ] && ana_setup
    W_PLAN=restart W_PORT=$PORT W_NQN=$NQN
    W_DENIED_HOSTNQN=$DENIED_HOSTNQN W_DENIED_HOSTID=$DENIED_HOSTID
    W_EXPECT_PAT_SHA=${VALUES[digest.pattern_sha]:-} W_EXPECT_FILE_SHA=${VALUES[digest.file_sha]:-}
    run_vm restart $RESTART_VM_CAP
    NX_WATCH=0 FLAP_WATCH=0
    [ $nx = 0 ] || flap_record
    [ $ANA_WATCH = 0 ] || ana_record
    ANA_WATCH=0
    [ $nx = 0 ] || nexus_after_vm
    if [ $MODE = weft ]; then stop_engine run2; else record run2/engine-stop SKIP 0s "external target: not stopped"; fi
    # the replicas after the nexus's engine (it leaves a clean label on them)
    if [ $nx = 1 ]; then nexus_stop_replicas; else kill_replicas; fi
  fi
fi

if summary; then
  rc=0
  if [ $AUTO_WORK = 1 ] && [ $KEEP = 0 ]; then rm -rf "$WORK"; else rm -rf "$DATA_DIR" "$WORK"/replica*-data; fi
else
  rc=1
  echo "kept for diagnosis: $WORK (engine logs *-engine.std*, VM logs *-vm/, *-vm.log)"
fi
exit $rc
