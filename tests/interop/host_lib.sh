# host_lib.sh - what the interop tests' host halves share (switchover_test.sh,
# auth_test.sh source it): result rows and the summary, stopping what they
# started, and the per-machine interop lock.
#
# Before use: WORK (the work directory), SUMMARY_TITLE (the summary's
# heading) and SETUP_ROW (the row fail_setup records).

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

R_ID=() R_RES=() R_NOTE=()
# record ID PASS|FAIL|SKIP NOTE
record() {
  R_ID+=("$1") R_RES+=("$2") R_NOTE+=("$3")
  printf '  %-4s %-28s %s\n' "$2" "$1" "$3"
}
# summary: the table; 0 only if there are rows and every one passed
# record_guest_steps VM_ROW RUN_DIR VM_RC VM_LOG: a row per step the guest
# script planned (WEFT-PLAN) from its WEFT-STEP lines in RUN_DIR/results.log;
# a step never reported fails, and VM_ROW fails when the script never started.
record_guest_steps() {
  local row=$1 run=$2 rc=$3 vmlog=$4 res planned id line r note
  res=$run/results.log
  planned=$(tr -d '\r' < "$res" 2>/dev/null | grep -a -m1 '^WEFT-PLAN' | cut -d' ' -f2-)
  [ -n "$planned" ] || record "$row" FAIL "the guest script never started (rc $rc; see $vmlog)"
  for id in $planned; do
    line=$(tr -d '\r' < "$res" | grep -a "^WEFT-STEP $id " | tail -1)
    if [ -z "$line" ]; then record "$id" FAIL "never reported (VM rc $rc; see $run/console.log)"; continue; fi
    read -r _ _ r _ note <<< "$line"
    record "$id" "$r" "$note"
  done
}
summary() {
  local i ok=1
  echo
  echo "==== $SUMMARY_TITLE: summary ===="
  for i in "${!R_ID[@]}"; do
    printf '%-28s %-5s %s\n' "${R_ID[$i]}" "${R_RES[$i]}" "${R_NOTE[$i]}"
    [ "${R_RES[$i]}" = PASS ] || ok=0
  done
  [ ${#R_ID[@]} -gt 0 ] || ok=0
  echo "==== $([ $ok = 1 ] && echo PASSED || echo FAILED) ===="
  [ $ok = 1 ]
}

# Processes to stop on exit: PIDS (SIGTERM), VMPID (a kernel-nvme-vm run).
PIDS=() VMPID=
cleanup() {
  [ -z "$VMPID" ] || { kill -TERM "$VMPID" 2>/dev/null; wait "$VMPID" 2>/dev/null; }
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

fail_setup() {
  record "$SETUP_ROW" FAIL "$*"
  summary
  echo "logs: $WORK"
  exit 1
}

# interop_lock NAME: one interop run at a time per machine (2 cores: two
# TCG VMs would starve); held on fd 9 until exit (give children 9>&-).
interop_lock() {
  KCACHE=${KNVM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/weft/kernel-nvme-vm}
  mkdir -p "$KCACHE" || exit 2
  exec 9>"$KCACHE/interop-run.lock"
  flock -w "${WEFT_INTEROP_LOCK_WAIT:-600}" 9 || { echo "$1: timed out waiting for the interop lock" >&2; exit 1; }
}
