#!/usr/bin/env bash
# weft's initiator (through the `weft` CLI) against the Linux kernel's own
# NVMe/TCP target: Debian's kernel booted in QEMU runs nvmet-tcp with a brd
# namespace (tests/interop/kernel-nvme-vm target mode), reached on
# 127.0.0.1:PORT. Steps: discover, identify (--json, checked), a write/read
# pass compared byte for byte, verify with header and data digests, a second
# namespace, and reservations, which Debian 12's 6.1 nvmet does not offer:
# the CLI must refuse them with a clear error, not crash or hang.
#   kernel_target_test.sh WEFT_CLI [--work-dir DIR]
set -u
WEFT=$1; shift
WORK=${WORK:-$(mktemp -d)}
[ "${1:-}" = --work-dir ] && { WORK=$2; mkdir -p "$WORK"; }
HERE=$(cd "$(dirname "$0")" && pwd)
NQN=nqn.2014-08.io.weft.interop:nvmet
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
READY=$WORK/target.ready
LOG=$WORK/target.log
FAILS=0 PASSES=0

"$HERE/kernel-nvme-vm" target --port "$PORT" --nqn "$NQN" --size-mb 64 --ns-count 2 --smp 1 \
  --timeout 600 --ready-file "$READY" >"$LOG" 2>&1 &
VM=$!
cleanup() { kill -TERM "$VM" 2>/dev/null; wait "$VM" 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 300); do [ -e "$READY" ] && break; kill -0 "$VM" 2>/dev/null || break; sleep 0.5; done
if [ ! -e "$READY" ]; then echo "kernel target did not start:"; tail -30 "$LOG"; exit 1; fi

step() {  # step NAME COMMAND...
  local name=$1; shift
  if out=$("$@" 2>&1); then PASSES=$((PASSES + 1)); echo "PASS $name"
  else FAILS=$((FAILS + 1)); echo "FAIL $name"; echo "$out" | tail -15 | sed 's/^/    /'; fi
}
C=(-a 127.0.0.1 -s "$PORT" -n "$NQN" --timeout 20)

step discover bash -c "'$WEFT' nvme discover -a 127.0.0.1 -s $PORT | grep -q '$NQN'"
step identify bash -c "'$WEFT' nvme identify ${C[*]} --json > '$WORK/id.json' &&
  jq -e '.controller.subnqn == \"$NQN\"' '$WORK/id.json' >/dev/null &&
  jq -e '[.namespaces[]] | length == 2' '$WORK/id.json' >/dev/null"
head -c 1048576 /dev/urandom > "$WORK/pattern"
step write-read bash -c "'$WEFT' nvme write ${C[*]} --lba 2048 --blocks 2048 --input '$WORK/pattern' &&
  '$WEFT' nvme read ${C[*]} --lba 2048 --blocks 2048 --output '$WORK/back' && cmp '$WORK/pattern' '$WORK/back'"
step verify-digests "$WEFT" nvme verify "${C[@]}" --hdr-digest --data-digest --lba 8192 --blocks 1024
step verify-ns2 "$WEFT" nvme verify "${C[@]}" --nsid 2 --lba 0 --blocks 256
# 6.1 nvmet has no reservations: a clear refusal, a non-zero exit, no hang.
step reservation-refused bash -c "out=\$(timeout 60 '$WEFT' nvme reservation register ${C[*]} --key 1 2>&1); rc=\$?;
  echo \"\$out\"; [ \$rc -ne 0 ] && [ \$rc -ne 124 ] && ! echo \"\$out\" | grep -qi 'timed out'"
echo "kernel_target: $PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
