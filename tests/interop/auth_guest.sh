# Guest half of tests/interop/auth_test.sh: runs inside the initiator VM
# (busybox ash, Debian trixie's 6.12 kernel nvme-tcp host, nvme-cli 2.13,
# fio), as `kernel-nvme-vm --release trixie initiator --no-connect --script
# JOB` where JOB is a block of W_* assignments, guest_lib.sh and this file.
# The engine requires host W_HOSTNQN to authenticate (DH-HMAC-CHAP) with
# secret W_KEY and holds controller secret W_CTRL_KEY; its listener allows
# TLS and it holds the host's TLS key, which the harness (--tls --tls-key)
# inserted into this guest's .nvme keyring (identity v1), with tlshd running.
#
# Steps (each prints WEFT-STEP <id> PASS|FAIL <seconds>s <note>):
#   auth/discover          discovery needs no secret: the subsystem is listed
#   auth/no-secret         connect without a secret: refused, no controller
#   auth/wrong-secret      connect with another secret: refused
#   auth/unidirectional    the right secret, 2 I/O queues: live (the kernel
#                          logs qid 0 authenticated), fio 4k random writes
#                          with crc32c verify through both queues
#   auth/bidirectional     with the controller secret too: the kernel checks
#                          the engine's response ("controller authenticated")
#   auth/reauth            the host secret written again to the controller's
#                          sysfs dhchap_secret: the kernel re-authenticates
#                          the live controller; I/O goes on
#   auth/wrong-ctrl-secret the host expects another controller secret: the
#                          kernel refuses the engine
#   tls/connect            nvme connect --tls with the DH-HMAC-CHAP secret:
#                          TLS 1.3 (tlshd's handshake, a PSK from the
#                          keyring) and authentication at once, 2 I/O
#                          queues, fio 4k random writes with crc32c verify
#   tls/discover           nvme discover --tls: the log says sectype tls1.3,
#                          treq not required
#   auth/rotate            prints WEFT-AUTH-ROTATE; the host script gives the
#                          host a new secret (made by nvme-cli, SHA-512,
#                          ffdhe4096 only) through the engine's API; the new
#                          secret connects (negotiated as asked), the old one
#                          is refused
#   reconnect/share-flap   no authentication: host W_FLAP_HOSTNQN connects to
#                          the plain share W_FLAP_NQN (keep-alive 1 s,
#                          reconnect delay 1 s, ctrl-loss-tmo 30 s) and runs
#                          fio 4k random writes with crc32c verify; it prints
#                          WEFT-SHARE-FLAP and the host script unshares the
#                          volume, waits 3 s and shares it again. The
#                          controller must leave live, keep reconnecting
#                          through the refused Connects (6.10+ hosts delete a
#                          controller whose Connect fails with DNR) and be
#                          live again; fio and the kernel see no I/O error
#   (W_MODE=concat, a Linux >= 6.15 guest, no TLS key; these steps only:)
#   concat/connect         nvme connect --concat: DH-HMAC-CHAP on a plain
#                          admin queue generates a TLS PSK (NVMe1G0x in the
#                          keyring), the controller comes back over TLS with
#                          it, 2 I/O queues, fio 4k random writes verified
#   concat/reauth          the secret written to sysfs: the TLS admin queue
#                          re-authenticates (REPLACETLSPSK); reads go on
#   concat/wrong-secret    --concat with another secret: refused
DEV=
hostargs() { echo "-t tcp -a $W_ADDR -s $W_PORT -n $W_NQN -q $W_HOSTNQN -I $W_HOSTID"; }
ctrl() {  # the controller of W_NQN, if any
  local c
  for c in /sys/class/nvme/nvme*; do
    [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$W_NQN" ] && { basename "$c"; return 0; }
  done
  return 1
}
gone() { local i=0; while ctrl > /dev/null && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done; ! ctrl > /dev/null; }
disc() { tmo 60 nvme disconnect -n "$W_NQN" > /dev/null 2>&1; gone; }
# conn ARGS...: connect; 0 when a live controller and its namespace's block
# device (DEV: the multipath head) result. A connection that does not get
# there is taken down again.
conn() {
  local rc i=0 c h
  DEV=
  # shellcheck disable=SC2046  # word splitting of hostargs is meant
  tmo 60 nvme connect $(hostargs) "$@" > /tmp/conn.out 2>&1; rc=$?
  [ $rc -eq 0 ] || return 1
  while [ $i -lt 40 ]; do
    if c=$(ctrl) && [ "$(cat /sys/class/nvme/"$c"/state)" = live ] && h=$(mpath_head "$W_NQN") &&
       [ -b "/dev/$h" ]; then
      DEV=/dev/$h
      return 0
    fi
    sleep 0.25; i=$((i+1))
  done
  echo "no live controller with a namespace device after connect" >> /tmp/conn.out
  disc
  return 1
}
refused() {  # refused ARGS...: the connect must fail and leave no controller
  if conn "$@"; then note "connected, but should have been refused"; disc; return 1; fi
  sleep 0.5
  if ctrl > /dev/null; then note "a controller was left: $(ctrl)"; disc; return 1; fi
  note "refused: $(tail -1 /tmp/conn.out)"
}
klog_count() { dmesg | grep -c "$1"; }

s_discover() {
  # shellcheck disable=SC2046
  tmo 60 nvme discover $(hostargs | sed 's/ -n [^ ]*//') > /tmp/disc.out 2>&1 ||
    { note "nvme discover failed: $(tail -1 /tmp/disc.out)"; return 1; }
  grep -q "subnqn: *$W_NQN" /tmp/disc.out || { note "$W_NQN not in the discovery log"; return 1; }
  note "listed without a secret"
}
s_unidirectional() {
  local before
  before=$(klog_count "qid 0: authenticated")
  conn --dhchap-secret="$W_KEY" --nr-io-queues=2 || { note "connect failed: $(tail -1 /tmp/conn.out)"; return 1; }
  [ "$(klog_count "qid 0: authenticated")" -gt "$before" ] || { note "the kernel did not log an authentication"; return 1; }
  tmo 180 fio --name=authv --filename="$DEV" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
    --iodepth=16 --numjobs=2 --size=8m --offset_increment=8m --verify=crc32c --verify_fatal=1 \
    --group_reporting > /tmp/fio.out 2>&1 || { note "fio failed: $(grep -i err /tmp/fio.out | head -2)"; return 1; }
  grep -q "err= 0" /tmp/fio.out || { note "fio reported errors"; return 1; }
  disc || { note "disconnect left the controller"; return 1; }
  note "$(dmesg | grep 'qid 0: authenticated with' | tail -1 | sed 's/.*: qid/qid/'); fio verify 2 jobs x 8 MiB, err=0"
}
s_bidirectional() {
  local before
  before=$(klog_count "controller authenticated")
  conn --dhchap-secret="$W_KEY" --dhchap-ctrl-secret="$W_CTRL_KEY" || { note "connect failed: $(tail -1 /tmp/conn.out)"; return 1; }
  [ "$(klog_count "controller authenticated")" -gt "$before" ] || { note "no controller authentication logged"; return 1; }
  dd if="$DEV" of=/dev/null bs=4k count=64 iflag=direct 2>/dev/null || { note "read failed"; return 1; }
  note "the engine proved the controller secret; reads ok"
}
s_reauth() {
  local c before
  c=$(ctrl) || { note "no controller from the previous step"; return 1; }
  before=$(klog_count "controller authenticated")
  echo "$W_KEY" > /sys/class/nvme/"$c"/dhchap_secret || { note "cannot write dhchap_secret"; return 1; }
  local i=0
  while [ "$(klog_count "controller authenticated")" -le "$before" ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done
  [ "$(klog_count "controller authenticated")" -gt "$before" ] || { note "no re-authentication seen: $(dmesg | grep nvme | tail -2 | tr '\n' ' ')"; return 1; }
  dmesg | grep -q "re-authenticating controller" || { note "the kernel did not re-authenticate"; return 1; }
  [ "$(cat /sys/class/nvme/"$c"/state)" = live ] || { note "controller not live after re-authentication"; return 1; }
  dd if="$DEV" of=/dev/null bs=4k count=64 iflag=direct 2>/dev/null || { note "read after re-authentication failed"; return 1; }
  disc || { note "disconnect left the controller"; return 1; }
  note "re-authenticated on the live controller; reads ok"
}
s_wrong_ctrl() {
  refused --dhchap-secret="$W_KEY" --dhchap-ctrl-secret="$W_WRONG_KEY" || return 1
  dmesg | grep -q "controller authentication failed" || { note "the kernel did not log a failed controller authentication"; return 1; }
}
s_tls_connect() {
  local c tk before
  before=$(klog_count "qid 0: authenticated")
  conn --tls --dhchap-secret="$W_KEY" --nr-io-queues=2 ||
    { note "connect failed: $(tail -1 /tmp/conn.out); tlshd: $(tail -2 /tmp/tlshd.log | tr '\n' ' ')"; return 1; }
  c=$(ctrl)
  tk=$(cat /sys/class/nvme/"$c"/tls_key 2>/dev/null)
  case $tk in ''|0|00000000) note "the controller has no TLS key (sysfs tls_key '$tk')"; disc; return 1 ;; esac
  [ "$(klog_count "qid 0: authenticated")" -gt "$before" ] || { note "no DH-HMAC-CHAP authentication logged"; disc; return 1; }
  tmo 180 fio --name=tlsv --filename="$DEV" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
    --iodepth=16 --numjobs=2 --size=8m --offset_increment=8m --verify=crc32c --verify_fatal=1 \
    --group_reporting > /tmp/fio.out 2>&1 || { note "fio failed: $(grep -i err /tmp/fio.out | head -2)"; disc; return 1; }
  grep -q "err= 0" /tmp/fio.out || { note "fio reported errors"; disc; return 1; }
  disc || { note "disconnect left the controller"; return 1; }
  note "TLS key $(grep -a -o "NVMe1R0[12] [^ ]* [^ ]*" /proc/keys 2>/dev/null | head -1 | cut -c1-8)... serial $tk, and DH-HMAC-CHAP; fio verify 2 jobs x 8 MiB, err=0"
}
s_tls_discover() {
  # shellcheck disable=SC2046
  tmo 60 nvme discover $(hostargs | sed 's/ -n [^ ]*//') --tls > /tmp/disc.out 2>&1 ||
    { note "nvme discover --tls failed: $(tail -1 /tmp/disc.out)"; return 1; }
  grep -q "subnqn: *$W_NQN" /tmp/disc.out || { note "$W_NQN not in the discovery log"; return 1; }
  grep -q "sectype: *tls13" /tmp/disc.out || { note "no sectype tls13: $(grep -E 'sectype|treq' /tmp/disc.out | head -2 | tr '\n' ' ')"; return 1; }
  grep -q "treq: *not required" /tmp/disc.out || { note "treq: $(grep treq /tmp/disc.out | head -1)"; return 1; }
  note "listed over TLS: $(grep -m1 sectype /tmp/disc.out | tr -s ' '), $(grep -m1 treq /tmp/disc.out | tr -s ' ')"
}
s_rotate() {
  local i=0
  echo "WEFT-AUTH-ROTATE"
  while [ $i -lt 30 ]; do
    conn --dhchap-secret="$W_NEW_KEY" && break
    sleep 1; i=$((i+1))
  done
  ctrl > /dev/null || { note "the new secret never connected: $(tail -1 /tmp/conn.out)"; return 1; }
  dmesg | grep 'qid 0: authenticated with' | tail -1 | grep -q 'hmac(sha512) dhgroup ffdhe4096' ||
    { note "not the hash and group asked for: $(dmesg | grep 'authenticated with' | tail -1)"; disc; return 1; }
  disc || return 1
  refused --dhchap-secret="$W_KEY" || { note "the old secret still connects"; return 1; }
  note "new secret: $(dmesg | grep 'qid 0: authenticated with' | tail -1 | sed 's/.*with //'); old secret refused"
}

# ------------------------------------ secure channel concatenation ----
# W_MODE=concat (Linux >= 6.15): no TLS key anywhere; DH-HMAC-CHAP on a plain
# admin queue generates it, and the host reconnects over TLS with it.
s_concat() {
  local c tk
  conn --concat --dhchap-secret="$W_KEY" --nr-io-queues=2 ||
    { note "connect failed: $(tail -1 /tmp/conn.out); tlshd: $(tail -2 /tmp/tlshd.log | tr '\n' ' ')"; return 1; }
  c=$(ctrl)
  tk=$(cat /sys/class/nvme/"$c"/tls_key 2>/dev/null)
  case $tk in ''|0|00000000) note "the controller has no TLS key (sysfs tls_key '$tk')"; return 1 ;; esac
  grep -aq "NVMe1G0[12] $W_HOSTNQN $W_NQN " /proc/keys ||
    { note "no generated PSK (NVMe1G) for this host in the keyring: $(grep -ao 'NVMe[^ ]*' /proc/keys | tr '\n' ' ')"; return 1; }
  tmo 180 fio --name=concatv --filename="$DEV" --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \
    --iodepth=16 --numjobs=2 --size=8m --offset_increment=8m --verify=crc32c --verify_fatal=1 \
    --group_reporting > /tmp/fio.out 2>&1 || { note "fio failed: $(grep -i err /tmp/fio.out | head -2)"; return 1; }
  grep -q "err= 0" /tmp/fio.out || { note "fio reported errors"; return 1; }
  note "TLS with the generated key $(grep -ao 'NVMe1G0[12]' /proc/keys | head -1) (serial $tk), 2 I/O queues; fio verify 2 jobs x 8 MiB, err=0"
}
s_concat_reauth() {
  # Re-authentication of a TLS admin queue replaces its key (REPLACETLSPSK).
  local c before i=0
  c=$(ctrl) || { note "no controller from the previous step"; return 1; }
  before=$(klog_count "qid 0: authenticated")
  echo "$W_KEY" > /sys/class/nvme/"$c"/dhchap_secret || { note "cannot write dhchap_secret"; disc; return 1; }
  while [ "$(klog_count "qid 0: authenticated")" -le "$before" ] && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done
  [ "$(klog_count "qid 0: authenticated")" -gt "$before" ] ||
    { note "no re-authentication seen: $(dmesg | grep nvme | tail -2 | tr '\n' ' ')"; disc; return 1; }
  [ "$(cat /sys/class/nvme/"$c"/state)" = live ] || { note "controller not live after re-authentication"; disc; return 1; }
  dd if="$DEV" of=/dev/null bs=4k count=64 iflag=direct 2>/dev/null || { note "read after re-authentication failed"; disc; return 1; }
  disc || { note "disconnect left the controller"; return 1; }
  note "re-authenticated over TLS ($(dmesg | grep 'qid 0: authenticated' | tail -1 | sed 's/.*authenticated //')); reads ok"
}

# ------------------------------------------------ a share taken away ----
# The state of the plain share's controller, sampled every 0.1 s from the
# cue WEFT-SHARE-FLAP: each change as "STATE@SECONDS" (gone = the controller
# was deleted), in FLAP_STATES; returns when it is live again after leaving
# live, gone, or 25 s after the cue.
flap_ctrl() {  # the controller of W_FLAP_NQN, if any
  local c
  for c in /sys/class/nvme/nvme*; do
    [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$W_FLAP_NQN" ] && { basename "$c"; return 0; }
  done
  return 1
}
cs() { local u; u=$(cut -d' ' -f1 /proc/uptime); echo "${u%.*}${u#*.}"; }  # uptime, 1/100 s
flap_states() {
  local c=$1 t0 e=0 st last=live left='' at
  t0=$(cs)
  FLAP_STATES="live@0.0" FLAP_DOWN='' FLAP_UP=''
  while [ $e -le 2500 ]; do
    st=$(cat "/sys/class/nvme/$c/state" 2>/dev/null || echo gone)
    e=$(( $(cs) - t0 ))
    if [ "$st" != "$last" ]; then
      at=$((e / 100)).$(( (e % 100) / 10 ))
      FLAP_STATES="$FLAP_STATES $st@$at"
      last=$st
      [ "$st" != live ] && [ -z "$left" ] && { left=1; FLAP_DOWN=$at; }
      [ "$st" = live ] && [ -n "$left" ] && { FLAP_UP=$at; return 0; }
      [ "$st" = gone ] && return 1
    fi
    sleep 0.1
  done
  return 1
}
s_share_flap() {
  local c h dev pid rc w0 w i=0 d0 ioerr gaveup refusedc ok=1 why=
  [ -n "${W_FLAP_NQN:-}" ] || { note "the host made no plain share"; return 1; }
  d0=$(dmesg | wc -l)
  tmo 60 nvme connect -t tcp -a "$W_ADDR" -s "$W_PORT" -n "$W_FLAP_NQN" -q "$W_FLAP_HOSTNQN" -I "$W_FLAP_HOSTID" \
    --nr-io-queues=2 --keep-alive-tmo=1 --reconnect-delay=1 --ctrl-loss-tmo=30 > /tmp/conn.out 2>&1 ||
    { note "connect failed: $(tail -1 /tmp/conn.out)"; return 1; }
  while [ $i -lt 40 ]; do
    c=$(flap_ctrl) && [ "$(cat /sys/class/nvme/"$c"/state)" = live ] && h=$(mpath_head "$W_FLAP_NQN") &&
      [ -b "/dev/$h" ] && break
    h=; sleep 0.25; i=$((i+1))
  done
  [ -n "$h" ] || { note "no live controller with a namespace after connect"; tmo 60 nvme disconnect -n "$W_FLAP_NQN" > /dev/null 2>&1; return 1; }
  dev=/dev/$h
  w0=$(write_requests "$h" "$c")
  # 8 MiB of 4k random writes at <= 250 IOPS (about 8 s), then verify.
  (trap '' PIPE
   tmo 40 fio --filename="$dev" --ioengine=libaio --direct=1 --group_reporting --eta=never \
      --verify_fatal=1 --do_verify=1 --verify_state_save=0 --name=weft-share-flap --rw=randwrite \
      --bs=4k --iodepth=16 --numjobs=1 --offset=0 --size=8m --rate_iops=,250 --verify=crc32c) > /tmp/fio.out 2>&1 &
  pid=$!
  i=0
  while kill -0 $pid 2>/dev/null && [ $i -lt 40 ]; do
    w=$(( $(write_requests "$h" "$c") - w0 ))
    [ $w -ge 128 ] && break
    i=$((i+1)); sleep 0.1
  done
  if ! kill -0 $pid 2>/dev/null; then
    wait $pid; cat /tmp/fio.out
    note "fio ended before the share could be taken away"; tmo 60 nvme disconnect -n "$W_FLAP_NQN" > /dev/null 2>&1; return 1
  fi
  echo "WEFT-SHARE-FLAP $c"
  flap_states "$c" || ok=0
  echo "$c over time (state@seconds after the cue): $FLAP_STATES"
  wait $pid; rc=$?
  dmesg | tail -n +$((d0 + 1)) | grep -E "$c|$h" > /tmp/flap-dmesg.out
  echo "kernel messages about $c/$h:"; cat /tmp/flap-dmesg.out
  cat /tmp/fio.out
  ioerr=$(grep -c 'I/O error' /tmp/flap-dmesg.out)
  gaveup=$(grep -m1 -E 'Removing controller|Removing ctrl|deleting controller' /tmp/flap-dmesg.out | sed 's/^\[[^]]*\] *//')
  refusedc=$(grep -m1 -iE 'connect (invalid|command failed)|failed to connect' /tmp/flap-dmesg.out | sed 's/^\[[^]]*\] *//')
  if [ $ok = 0 ]; then
    case $FLAP_STATES in
      *gone@*) why="the kernel deleted the controller instead of reconnecting" ;;
      live@0.0) why="$c still live 25 s after the cue" ;;
      *) why="$c not live again 25 s after the cue" ;;
    esac
  fi
  [ "$rc" -eq 0 ] && grep -q 'err= 0' /tmp/fio.out || why="${why:+$why; }fio failed (rc=$rc): $(grep -m1 -iE 'verify|error|bad' /tmp/fio.out)"
  [ "$ioerr" -eq 0 ] || why="${why:+$why; }the kernel logged $ioerr I/O error(s): $(grep -m1 'I/O error' /tmp/flap-dmesg.out | sed 's/^\[[^]]*\] *//')"
  if flap_ctrl > /dev/null; then tmo 60 nvme disconnect -n "$W_FLAP_NQN" > /dev/null 2>&1; fi
  if [ -n "$why" ]; then
    note "$why; states $FLAP_STATES${refusedc:+; Connect refused: $refusedc}${gaveup:+; $gaveup}"
    return 1
  fi
  note "$c: ${FLAP_STATES#live@0.0 } (s after the cue); left live after $FLAP_DOWN s, live again after $FLAP_UP s${refusedc:+ (refused Connects: $(grep -ciE 'connect (invalid|command failed)' /tmp/flap-dmesg.out) logged, e.g. $refusedc)}; fio 8 MiB verified, no I/O error"
}

if [ "${W_MODE:-}" = concat ]; then
  echo "WEFT-PLAN concat/connect concat/reauth concat/wrong-secret"
  if step concat/connect s_concat; then step concat/reauth s_concat_reauth
  else skip_step concat/reauth "no controller"; disc; fi
  step concat/wrong-secret refused --concat --dhchap-secret="$W_WRONG_KEY"
  echo "WEFT-DONE failures=$FAILS"
  [ $FAILS -eq 0 ]
  exit
fi
echo "WEFT-PLAN auth/discover auth/no-secret auth/wrong-secret auth/unidirectional auth/bidirectional auth/reauth auth/wrong-ctrl-secret tls/connect tls/discover auth/rotate reconnect/share-flap"
step auth/discover s_discover
step auth/no-secret refused
step auth/wrong-secret refused --dhchap-secret="$W_WRONG_KEY"
step auth/unidirectional s_unidirectional
if step auth/bidirectional s_bidirectional; then step auth/reauth s_reauth
else skip_step auth/reauth "no controller"; disc; fi
step auth/wrong-ctrl-secret s_wrong_ctrl
step tls/connect s_tls_connect
step tls/discover s_tls_discover
step auth/rotate s_rotate
step reconnect/share-flap s_share_flap
echo "WEFT-DONE failures=$FAILS"
[ $FAILS -eq 0 ]
