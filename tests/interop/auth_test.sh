#!/usr/bin/env bash
# auth_test.sh - DH-HMAC-CHAP in-band authentication and NVMe/TCP TLS 1.3
# between weft and the Linux kernel, both ways, with Debian trixie's 6.12
# kernel in QEMU (the bookworm kernel has neither):
#
#   auth_test.sh WEFT_CLI WEFT_ENGINE [--work-dir DIR] [--keep]
#
# 1. The kernel host against weft-engine. The engine (127.0.0.1, a demo
#    namespace) is told over its API (`weft engine host-key set`) that the
#    VM's host NQN must authenticate, with a host secret and a controller
#    secret made by `weft key gen-dhchap`. The guest (auth_guest.sh) checks
#    discovery without a secret, refusals (no secret, a wrong one, a wrong
#    controller secret), unidirectional and bidirectional authentication
#    with fio verify over two I/O queues, re-authentication of a live
#    controller, and a secret rotated through the API on its cue
#    WEFT-AUTH-ROTATE (a secret made by nvme-cli, SHA-512 and ffdhe4096 only:
#    the new one connects with those, the old one is refused). The engine's
#    listener allows TLS (--tls allowed) and the host has a TLS key there
#    too (`weft key gen-tls`, inserted into the guest's keyring by nvme-cli,
#    identity v1; tlshd runs the handshake): the kernel connects over TLS
#    and DH-HMAC-CHAP at once, fio verify; discovery over TLS says TLS 1.3.
#    Last, reconnect/share-flap: a plain share (a second host NQN, no
#    secret) written with fio verify while this script, on the guest's cue
#    WEFT-SHARE-FLAP, unshares the volume and shares it again 3 s later: the
#    host must reconnect with no I/O error (6.10+ hosts delete a controller
#    whose Connect is refused with DNR: weft refuses it without; see
#    tests/interop/README.md).
#    Then secure channel concatenation, with trixie-backports' 7.x kernel
#    (6.15 and later have it) in a second VM: a host with a DH-HMAC-CHAP
#    secret and no TLS key connects with `nvme connect --concat`, fio
#    verify over the TLS queues the generated key runs, re-authentication
#    (the key replaced), a wrong secret refused; the engine's log shows
#    the keys it made and no authentication on the I/O queues.
# 2. weft's initiator (`weft nvme`) against the kernel's nvmet target with
#    per-host secrets (sha256, ffdhe2048, bidirectional): read and write
#    with the secrets, refused without one, with a wrong one, and with a
#    wrong controller secret. The nvmet port also allows TLS 1.3 with the
#    same TLS key (tlshd in that VM): `weft nvme --tls-key-file` writes and
#    reads over TLS. That VM runs trixie-backports' 7.x kernel, whose nvmet
#    also offers secure channel concatenation: `weft nvme --concat` with
#    the host secret alone writes and reads over TLS, a wrong one is refused.
# Host-side rows: the engine's log holds none of the secrets; its state
# file (which does) is mode 0600; nvme-cli accepts weft's key format.
#
# Needs root (QEMU) and tests/interop/setup.sh's packages; shares the
# per-machine interop lock with the other interop tests.
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KNVM=${WEFT_KNVM:-$HERE/kernel-nvme-vm}
WEFT=${1:?usage: auth_test.sh WEFT_CLI WEFT_ENGINE [--work-dir DIR] [--keep]}
ENGINE=${2:?engine}
shift 2
WORK= KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --work-dir) WORK=$2; shift ;;
    --keep) KEEP=1 ;;
    *) echo "auth_test: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
AUTO_WORK=0
[ -n "$WORK" ] || { WORK=$(mktemp -d); AUTO_WORK=1; }
rm -rf "$WORK"; mkdir -p "$WORK"
TOTAL_TIMEOUT=${WEFT_INTEROP_TIMEOUT:-420}
REL=(--release trixie)

SUMMARY_TITLE="DH-HMAC-CHAP between weft and the Linux kernel" SETUP_ROW=auth/setup
# shellcheck source=tests/interop/host_lib.sh
source "$HERE/host_lib.sh"
interop_lock auth_test
"$KNVM" "${REL[@]}" build > "$WORK/harness-build.log" 2>&1 9>&- ||
  fail_setup "kernel-nvme-vm --release trixie build failed: $(tail -1 "$WORK/harness-build.log")"

# ----------------------------------------------------------------- secrets ----
U=$(cat /proc/sys/kernel/random/uuid)
HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:$U HOSTID=$U
K=$WORK/keys
mkdir -m 700 "$K"
"$WEFT" key gen-dhchap --hmac sha256 -o "$K/host" > /dev/null &&
  "$WEFT" key gen-dhchap --hmac none -o "$K/ctrl" > /dev/null &&
  "$WEFT" key gen-dhchap --hmac sha384 -o "$K/wrong" > /dev/null || fail_setup "weft key gen-dhchap failed"
"$WEFT" key gen-tls -o "$K/tls" > /dev/null || fail_setup "weft key gen-tls failed"
if out=$("$KNVM" "${REL[@]}" nvme check-tls-key --hostnqn="$HOSTNQN" --subsysnqn=nqn.2014-08.io.knvm:target \
    --keydata="$(cat "$K/tls")" 2>&1); then
  record tls/key-format PASS "nvme-cli 2.13 accepts weft's TLS key ($(tr -d '\n' <<< "$out" | cut -c1-60))"
else
  record tls/key-format FAIL "nvme check-tls-key refused weft's TLS key: $out"
fi
# The rotated secret comes from nvme-cli: weft must read its format.
"$KNVM" "${REL[@]}" nvme gen-dhchap-key --hmac=3 --nqn="$HOSTNQN" 2>/dev/null | grep '^DHHC-1:' > "$K/new" &&
  chmod 600 "$K/new" || fail_setup "nvme gen-dhchap-key failed"
if out=$("$KNVM" "${REL[@]}" nvme check-dhchap-key --key="$(cat "$K/host")" 2>&1); then
  record auth/key-format PASS "nvme-cli 2.13 accepts weft's secret ($(tr -d '\n' <<< "$out" | cut -c1-60)); weft reads nvme-cli's (rotation below)"
else
  record auth/key-format FAIL "nvme check-dhchap-key refused weft's secret: $out"
fi

# ------------------------------------------------------- kernel host -> weft ----
elog=$WORK/engine.log
"$ENGINE" --demo --data-dir "$WORK/e" --cores 0 --poll-us 0 --listen 127.0.0.1:0 --tls allowed \
  --api-listen 127.0.0.1:0 --metrics-listen none > "$elog" 2>&1 9>&- &
PIDS+=($!)
for _ in $(seq 100); do
  grep -q 'management API on' "$elog" && grep -q 'nvme connect' "$elog" && break
  sleep 0.1
done
PORT=$(grep -o 'nvme connect -t tcp -a 127.0.0.1 -s [0-9]*' "$elog" | head -1 | awk '{print $NF}')
NQN=$(grep -o 'nvme connect .* -n [^ ]*' "$elog" | head -1 | awk '{print $NF}')
API=$(grep -o 'management API on 127.0.0.1:[0-9]*' "$elog" | head -1 | sed 's/.*on //')
[ -n "$PORT" ] && [ -n "$NQN" ] && [ -n "$API" ] || fail_setup "the engine did not start: $(tail -3 "$elog")"
out=$("$WEFT" engine host-key set "$HOSTNQN" --key-file "$K/host" --ctrl-key-file "$K/ctrl" \
  --tls-key-file "$K/tls" --api "$API" 2>&1) ||
  fail_setup "weft engine host-key set: $out"
record auth/setup PASS "engine on 127.0.0.1:$PORT ($NQN, TLS allowed); $(tr '\n' ' ' <<< "$out")"

# reconnect/share-flap: a plain share (no secret, no TLS: another host NQN)
# that the guest writes to while this script, on its cue WEFT-SHARE-FLAP,
# unshares the volume and shares it again FLAP_PAUSE s later. Row
# reconnect/share-flap-host; the refused Connects are counted in the log.
U2=$(cat /proc/sys/kernel/random/uuid)
FLAP_HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:$U2 FLAP_HOSTID=$U2
FLAP_NQN=nqn.2026-11.io.weft.test:share-flap FLAP_PAUSE=3 FLAP_DONE=0
flap_share() {
  "$WEFT" engine volume share flap v --nqn "$FLAP_NQN" --host "$FLAP_HOSTNQN" --api "$API" 2>&1
}
if ! out=$("$WEFT" engine pool create flap "$WORK/flap-pool.img" --size 128MiB --api "$API" 2>&1 &&
           "$WEFT" engine volume create flap v 32MiB --api "$API" 2>&1 && flap_share); then
  record reconnect/share-flap-host FAIL "the plain share for the flap: $(tr '\n' ' ' <<< "$out")"
  FLAP_NQN= FLAP_DONE=2
fi
# flap: on the guest's cue, unshare, wait, share again; the row's note has
# the timings (from when this script saw the cue).
flap() {
  local t0 t1 t2 out
  t0=$(date +%s%N)
  if ! out=$("$WEFT" engine volume unshare flap v --api "$API" 2>&1); then
    record reconnect/share-flap-host FAIL "weft engine volume unshare: $out"; return
  fi
  t1=$(date +%s%N)
  sleep "$FLAP_PAUSE"
  if ! out=$(flap_share); then
    record reconnect/share-flap-host FAIL "weft engine volume share (again): $out"; return
  fi
  t2=$(date +%s%N)
  log "reconnect: the share taken away for ${FLAP_PAUSE}s and back (guest's cue)"
  FLAP_NOTE="unshared $(( (t1 - t0) / 1000000 )) ms after the cue, shared again after $(( (t2 - t0) / 1000000 )) ms"
}

job=$WORK/job.sh run=$WORK/vm vmlog=$WORK/vm.log
{
  echo "# generated by auth_test.sh"
  printf "W_ADDR='10.0.2.2' W_PORT='%s' W_NQN='%s' W_HOSTNQN='%s' W_HOSTID='%s'\n" "$PORT" "$NQN" "$HOSTNQN" "$HOSTID"
  printf "W_KEY='%s' W_CTRL_KEY='%s' W_WRONG_KEY='%s' W_NEW_KEY='%s'\n" \
    "$(cat "$K/host")" "$(cat "$K/ctrl")" "$(cat "$K/wrong")" "$(cat "$K/new")"
  printf "W_FLAP_NQN='%s' W_FLAP_HOSTNQN='%s' W_FLAP_HOSTID='%s'\n" "$FLAP_NQN" "$FLAP_HOSTNQN" "$FLAP_HOSTID"
  cat "$HERE/guest_lib.sh" "$HERE/auth_guest.sh"
} > "$job"
chmod 600 "$job"
log "booting the initiator VM (trixie kernel) against $NQN on port $PORT"
"$KNVM" "${REL[@]}" initiator --port "$PORT" --nqn "$NQN" --hostnqn "$HOSTNQN" --hostid "$HOSTID" --no-connect \
  --tls --tls-key "$(cat "$K/tls")" --tls-identity 1 \
  --script "$job" --smp 2 --timeout "$TOTAL_TIMEOUT" --run-dir "$run" > "$vmlog" 2>&1 9>&- &
VMPID=$!
rotated=0
while kill -0 "$VMPID" 2>/dev/null; do
  if [ $rotated = 0 ] && grep -aq '^WEFT-AUTH-ROTATE' "$run/results.log" 2>/dev/null; then
    rotated=1
    if out=$("$WEFT" engine host-key set "$HOSTNQN" --key-file "$K/new" --digest sha512 --dhgroup ffdhe4096 \
        --api "$API" 2>&1); then
      record auth/rotate-host PASS "the host's secret replaced through the API (nvme-cli's, SHA-512, ffdhe4096 only)"
    else record auth/rotate-host FAIL "weft engine host-key set: $out"; fi
  fi
  if [ $FLAP_DONE = 0 ] && grep -aq '^WEFT-SHARE-FLAP' "$run/results.log" 2>/dev/null; then
    FLAP_DONE=1 FLAP_NOTE=
    flap
  fi
  sleep 0.2
done
wait "$VMPID"; vmrc=$?; VMPID=
[ $rotated = 1 ] || record auth/rotate-host FAIL "the guest never gave the cue (WEFT-AUTH-ROTATE)"
if [ $FLAP_DONE = 0 ]; then record reconnect/share-flap-host FAIL "the guest never gave the cue (WEFT-SHARE-FLAP)"
elif [ -n "${FLAP_NOTE:-}" ]; then
  nref=$(grep -c "connect from $FLAP_HOSTNQN: no subsystem $FLAP_NQN" "$elog")
  record reconnect/share-flap-host PASS "$FLAP_NOTE; meanwhile the engine refused $nref Connect(s) (no subsystem: Connect Invalid Parameters, SCT 1h SC 82h, without DNR)"
fi
record_guest_steps auth/vm "$run" "$vmrc" "$vmlog"
ntls=$(grep -c "connected to $NQN: .*TLS" "$elog")
if [ "$ntls" -ge 3 ]; then
  record tls/engine-log PASS "the engine logged $ntls queues connected over TLS"
else record tls/engine-log FAIL "the engine logged $ntls queues over TLS (want >= 3: admin + 2 I/O)"; fi
n=$(grep -c ' authenticated on queue 0' "$elog") re=$(grep -c 're-authenticated on queue 0' "$elog")
if [ "$n" -ge 3 ] && [ "$re" -ge 1 ]; then
  record auth/engine-log PASS "the engine logged $n admin-queue authentications and $re re-authentication(s)"
else record auth/engine-log FAIL "the engine logged $n admin-queue authentications (want >= 3) and $re re-authentications (want >= 1)"; fi
# ------------------------------- secure channel concatenation (Linux 7.x) ----
# A third host NQN with the host secret and no TLS key: trixie-backports'
# kernel connects with --concat (auth_guest.sh, W_MODE=concat).
U3=$(cat /proc/sys/kernel/random/uuid)
CC_HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:$U3 CC_HOSTID=$U3
if out=$("$WEFT" engine host-key set "$CC_HOSTNQN" --key-file "$K/host" --api "$API" 2>&1); then
  job=$WORK/concat-job.sh run=$WORK/concat-vm
  {
    echo "# generated by auth_test.sh"
    printf "W_MODE=concat W_ADDR='10.0.2.2' W_PORT='%s' W_NQN='%s' W_HOSTNQN='%s' W_HOSTID='%s'\n" \
      "$PORT" "$NQN" "$CC_HOSTNQN" "$CC_HOSTID"
    printf "W_KEY='%s' W_WRONG_KEY='%s'\n" "$(cat "$K/host")" "$(cat "$K/wrong")"
    cat "$HERE/guest_lib.sh" "$HERE/auth_guest.sh"
  } > "$job"
  chmod 600 "$job"
  log "booting the initiator VM (trixie-backports kernel) for secure channel concatenation"
  if ! "$KNVM" --release trixie-backports build > "$WORK/harness-build-bp.log" 2>&1 9>&-; then
    record concat/vm FAIL "kernel-nvme-vm --release trixie-backports build failed: $(tail -1 "$WORK/harness-build-bp.log")"
  else
    "$KNVM" --release trixie-backports initiator --port "$PORT" --nqn "$NQN" --hostnqn "$CC_HOSTNQN" \
      --hostid "$CC_HOSTID" --no-connect --concat --dhchap-secret "$(cat "$K/host")" \
      --script "$job" --smp 2 --timeout "$TOTAL_TIMEOUT" --run-dir "$run" > "$WORK/concat-vm.log" 2>&1 9>&-
    vmrc=$?
    record_guest_steps concat/vm "$run" "$vmrc" "$WORK/concat-vm.log"
    # The engine's side: keys made (the connect's and the re-authentication's),
    # every queue of the host over TLS with no DH-HMAC-CHAP of its own.
    nkeys=$(grep -c "$CC_HOSTNQN: secure channel concatenation: a TLS PSK made" "$elog")
    ntls=$(grep -c "$CC_HOSTNQN connected to $NQN: .*TLS" "$elog")
    nio=$(grep -c "$CC_HOSTNQN authenticated on queue [1-9]" "$elog")
    if [ "$nkeys" -ge 2 ] && [ "$ntls" -ge 3 ] && [ "$nio" = 0 ]; then
      record concat/engine-log PASS "the engine made $nkeys TLS PSKs for the host and logged $ntls queues connected over TLS with them"
    else
      record concat/engine-log FAIL "the engine made $nkeys TLS PSKs (want >= 2: connect, re-authentication), logged $ntls queues over TLS (want >= 3) and $nio I/O-queue authentications (want 0)"
    fi
  fi
else
  record concat/setup FAIL "weft engine host-key set for the concatenation host: $out"
fi

leaked=
for f in host ctrl wrong new tls; do
  b64=$(cut -d: -f3 < "$K/$f")
  grep -qF "$b64" "$elog" && leaked="$leaked $f"
done
st=$(stat -c %a "$WORK/e/engine-state.json" 2>/dev/null)
if [ -n "$leaked" ]; then record auth/secrets FAIL "the engine's log holds secret(s):$leaked"
elif [ "$st" != 600 ]; then record auth/secrets FAIL "engine-state.json (it holds the secrets) is mode $st, not 600"
elif ! grep -qF "$(cut -d: -f3 < "$K/new")" "$WORK/e/engine-state.json"; then
  record auth/secrets FAIL "the rotated secret is not in the saved state"
else record auth/secrets PASS "no secret in the engine's log; the state file holding them is mode 600"; fi
kill -TERM "${PIDS[0]}" 2>/dev/null; wait "${PIDS[0]}" 2>/dev/null; PIDS=()

# --------------------------------------------------- weft -> kernel nvmet ----
TPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TNQN=nqn.2014-08.io.knvm:target
ready=$WORK/target.ready
# trixie-backports' 7.x nvmet: secure channel concatenation too.
log "booting the kernel nvmet target VM (trixie-backports kernel, DH-HMAC-CHAP for $HOSTNQN)"
"$KNVM" --release trixie-backports target --port "$TPORT" --nqn "$TNQN" --size-mb 32 --allow-host "$HOSTNQN" \
  --dhchap-secret "$(cat "$K/host")" --dhchap-ctrl-secret "$(cat "$K/ctrl")" --concat \
  --tls --tls-optional --tls-key "$(cat "$K/tls")" --tls-identity 1 --ready-file "$ready" \
  --timeout "$TOTAL_TIMEOUT" --run-dir "$WORK/target-vm" > "$WORK/target-vm.log" 2>&1 9>&- &
VMPID=$!
for _ in $(seq 1200); do [ -e "$ready" ] && break; kill -0 "$VMPID" 2>/dev/null || break; sleep 0.25; done
if [ ! -e "$ready" ]; then
  record kernel-target/ready FAIL "the target VM never listened: $(tail -3 "$WORK/target-vm.log" | tr '\n' ' ')"
else
  nv() { "$WEFT" nvme "$@" -a 127.0.0.1 -s "$TPORT" -n "$TNQN" --hostnqn "$HOSTNQN" --timeout 20; }
  head -c $((1 << 20)) /dev/urandom > "$WORK/pattern"
  t=$SECONDS
  if out=$(nv write --lba 0 --blocks 2048 --input "$WORK/pattern" --dhchap-secret-file "$K/host" 2>&1) &&
     out=$(nv read --lba 0 --blocks 2048 --output "$WORK/back" --dhchap-secret-file "$K/host" \
           --dhchap-ctrl-secret-file "$K/ctrl" 2>&1) && cmp -s "$WORK/pattern" "$WORK/back"; then
    record kernel-target/authenticated PASS "1 MiB written (unidirectional) and read back (bidirectional) through the kernel's nvmet in $((SECONDS - t)) s"
  else record kernel-target/authenticated FAIL "weft nvme: $out"; fi
  for c in "none:" "wrong:--dhchap-secret-file $K/wrong" "wrong-ctrl:--dhchap-secret-file $K/host --dhchap-ctrl-secret-file $K/wrong"; do
    name=${c%%:*} args=${c#*:}
    # shellcheck disable=SC2086  # args is a list of options
    out=$(nv read --lba 0 --blocks 8 --output /dev/null $args 2>&1); rc=$?
    if [ $rc = 3 ]; then record "kernel-target/refused-$name" PASS "exit 3: ${out#weft: }"
    else record "kernel-target/refused-$name" FAIL "exit $rc (want 3, a refused connection): $out"; fi
  done
  # TLS 1.3 to nvmet (tlshd in that VM finds the PSK by the identity weft
  # offers), with DH-HMAC-CHAP where nvmet asks for it.
  head -c $((256 << 10)) /dev/urandom > "$WORK/pattern-tls"
  t=$SECONDS
  if out=$(nv write --lba 4096 --blocks 512 --input "$WORK/pattern-tls" --tls-key-file "$K/tls" \
           --dhchap-secret-file "$K/host" 2>&1) &&
     out=$(nv read --lba 4096 --blocks 512 --output "$WORK/back-tls" --tls-key-file "$K/tls" \
           --dhchap-secret-file "$K/host" 2>&1) &&
     cmp -s "$WORK/pattern-tls" "$WORK/back-tls"; then
    record kernel-target/tls PASS "256 KiB written and read back over TLS 1.3 through the kernel's nvmet in $((SECONDS - t)) s (its keyring's PSK, inserted by nvme-cli 2.13, has the older derivation)"
  else record kernel-target/tls FAIL "weft nvme --tls-key-file: $out (tlshd: $(grep -a 'tlshd' "$WORK/target-vm.log" | tail -2 | tr '\n' ' '))"; fi
  # Secure channel concatenation: no TLS key given; the DH-HMAC-CHAP secret
  # makes one on a plain admin queue, then every queue runs TLS with it (a
  # handshake that only succeeds if nvmet made the same key).
  head -c $((256 << 10)) /dev/urandom > "$WORK/pattern-concat"
  t=$SECONDS
  if out=$("$WEFT" -v nvme write -a 127.0.0.1 -s "$TPORT" -n "$TNQN" --hostnqn "$HOSTNQN" --timeout 20 \
           --lba 8192 --blocks 512 --input "$WORK/pattern-concat" --concat --dhchap-secret-file "$K/host" 2>&1) &&
     out2=$(nv read --lba 8192 --blocks 512 --output "$WORK/back-concat" --concat \
           --dhchap-secret-file "$K/host" 2>&1) &&
     cmp -s "$WORK/pattern-concat" "$WORK/back-concat"; then
    id=$(grep -o 'made TLS PSK NVMe1G0[12]' <<< "$out" | head -1)
    if [ -n "$id" ]; then
      record kernel-target/concat PASS "256 KiB written and read back with --concat through the kernel's nvmet in $((SECONDS - t)) s: weft's initiator made TLS PSK ${id#made TLS PSK }... and ran every queue over TLS with it"
    else record kernel-target/concat FAIL "data read back, but weft's log does not say a generated TLS PSK was used: $(tail -2 <<< "$out" | tr '\n' ' ')"; fi
  else record kernel-target/concat FAIL "weft nvme --concat: $(tail -2 <<< "$out" | tr '\n' ' ') ${out2:-} (tlshd: $(grep -a 'tlshd' "$WORK/target-vm.log" | tail -2 | tr '\n' ' '))"; fi
  out=$(nv read --lba 0 --blocks 8 --output /dev/null --concat --dhchap-secret-file "$K/wrong" 2>&1); rc=$?
  if [ $rc = 3 ]; then record kernel-target/concat-refused PASS "a wrong secret makes no key: exit 3: ${out#weft: }"
  else record kernel-target/concat-refused FAIL "exit $rc (want 3, a refused connection): $out"; fi
  out=$("$WEFT" nvme discover -a 127.0.0.1 -s "$TPORT" --hostnqn "$HOSTNQN" --timeout 20 \
    --tls-key-file "$K/tls" --json 2>&1); rc=$?
  sec=$(jq -r '[.records[] | .treq + "/" + .sectype] | unique | join(",")' <<< "$out" 2>/dev/null)
  if [ $rc = 0 ] && [ "$sec" = "not required/tls1.3" ]; then
    record kernel-target/tls-discovery PASS "discovery over TLS: nvmet's entries say TREQ not required, SECTYPE tls1.3"
  else record kernel-target/tls-discovery FAIL "rc $rc, TREQ/SECTYPE '$sec': $out"; fi
fi
kill -TERM "$VMPID" 2>/dev/null; wait "$VMPID" 2>/dev/null; VMPID=

if summary; then
  [ $AUTO_WORK = 1 ] && [ $KEEP = 0 ] && rm -rf "$WORK"
  exit 0
fi
echo "kept for diagnosis: $WORK (engine.log, vm/results.log, vm/console.log, target-vm/)"
exit 1
