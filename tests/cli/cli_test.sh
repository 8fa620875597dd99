#!/usr/bin/env bash
# The `weft` binary against a real weft-engine process, one case per run:
#   cli_test.sh WEFT ENGINE CASE
# Cases: discover identify write_read verify perf reservation host_not_allowed
#        wrong_nqn closed_port bad_range tls
set -u
weft=$1
engine=$2
case_name=$3
source "$(dirname "$0")/engine.sh"

fail() {
  echo "FAIL ($case_name): $*"
  [ -f "$data/engine.log" ] && { echo "--- engine log"; tail -20 "$data/engine.log"; }
  exit 1
}
# run CMD...: sets $out (stdout+stderr) and $rc.
run() {
  out=$("$@" 2>&1)
  rc=$?
}
conn() { echo -a 127.0.0.1 -s "$port" -n "$nqn" --timeout 5; }

case "$case_name" in
  discover)
    start_engine "$engine"
    run "$weft" nvme discover -a 127.0.0.1 -s "$disc_port"
    [ "$rc" -eq 0 ] || fail "rc=$rc: $out"
    grep -q "nvme .*$nqn" <<<"$out" || fail "no $nqn record: $out"
    run "$weft" nvme discover -a 127.0.0.1 -s "$disc_port" --json
    [ "$(jq -r '.records[] | select(.subtype == "nvme") | .subnqn' <<<"$out" | head -1)" = "$nqn" ] ||
      fail "JSON: $out"
    ;;
  identify)
    start_engine "$engine"
    run "$weft" nvme identify $(conn) --json
    [ "$rc" -eq 0 ] || fail "rc=$rc: $out"
    [ "$(jq -r .controller.subnqn <<<"$out")" = "$nqn" ] || fail "subnqn: $out"
    [ "$(jq -r '.namespaces[0].size_bytes' <<<"$out")" = $((64 << 20)) ] || fail "size: $out"
    [ "$(jq -r '.namespaces[0].block_size' <<<"$out")" = 512 ] || fail "block size: $out"
    run "$weft" nvme identify $(conn)
    [ "$rc" -eq 0 ] && grep -q "64.00 MiB" <<<"$out" || fail "table: $out"
    ;;
  write_read)
    start_engine "$engine"
    head -c 3000 /dev/urandom >"$data/in.bin"
    run "$weft" nvme write $(conn) --lba 77 --blocks 6 -i "$data/in.bin"
    [ "$rc" -eq 0 ] || fail "write rc=$rc: $out"
    run "$weft" nvme read $(conn) --lba 77 --blocks 6 -o "$data/out.bin"
    [ "$rc" -eq 0 ] || fail "read rc=$rc: $out"
    cmp -n 3000 "$data/in.bin" "$data/out.bin" || fail "read back differs"
    [ "$(tail -c 72 "$data/out.bin" | tr -d '\0' | wc -c)" -eq 0 ] || fail "padding not zero"
    run "$weft" nvme write $(conn) --lba 5 --blocks 1 --pattern 0xa5
    [ "$rc" -eq 0 ] || fail "pattern write rc=$rc: $out"
    run "$weft" nvme read $(conn) --lba 5 --blocks 1
    [ "$rc" -eq 0 ] && grep -q "^00000a00  a5 a5 a5" <<<"$out" || fail "hex dump: $out"
    ;;
  verify)
    start_engine "$engine"
    run "$weft" nvme verify $(conn) --lba 100 --blocks 5000 --seed 9
    [ "$rc" -eq 0 ] && grep -q "verified 5000 block" <<<"$out" || fail "rc=$rc: $out"
    run "$weft" nvme verify $(conn) --lba 0 --blocks 8 --hdr-digest --data-digest
    [ "$rc" -eq 0 ] || fail "with digests rc=$rc: $out"
    ;;
  perf)
    start_engine "$engine"
    run "$weft" nvme perf $(conn) --seconds 2 --qd 16 --rw randrw --io-size 4k --json
    [ "$rc" -eq 0 ] || fail "rc=$rc: $out"
    jq -e '.iops > 0 and .errors == 0 and .latency_us.p99 >= .latency_us.p50' <<<"$out" >/dev/null ||
      fail "bad summary: $out"
    run "$weft" nvme perf $(conn) --seconds 1 --rw read --io-size 128k --queues 2
    [ "$rc" -eq 0 ] && grep -q "IOPS" <<<"$out" && grep -q "p99.9" <<<"$out" || fail "table: $out"
    ;;
  reservation)
    start_engine "$engine"
    h1=nqn.2014-08.io.weft.test:host1
    h2=nqn.2014-08.io.weft.test:host2
    run "$weft" nvme reservation register $(conn) --hostnqn $h1 -k 0x1234
    [ "$rc" -eq 0 ] || fail "register rc=$rc: $out"
    run "$weft" nvme reservation acquire $(conn) --hostnqn $h1 -k 0x1234 -t write-exclusive
    [ "$rc" -eq 0 ] || fail "acquire rc=$rc: $out"
    run "$weft" nvme reservation report $(conn) --json
    [ "$rc" -eq 0 ] || fail "report rc=$rc: $out"
    jq -e '.type == "write-exclusive" and (.registrants | length) == 1 and
           .registrants[0].key == 4660 and .registrants[0].holds_reservation' <<<"$out" >/dev/null ||
      fail "report: $out"
    # Another host may not write while host1 holds write-exclusive.
    run "$weft" nvme write $(conn) --hostnqn $h2 --lba 0 --pattern 1
    [ "$rc" -ne 0 ] && grep -q "reservation conflict" <<<"$out" || fail "conflict: rc=$rc: $out"
    run "$weft" nvme reservation release $(conn) --hostnqn $h1 -k 0x1234 -t write-exclusive
    [ "$rc" -eq 0 ] || fail "release rc=$rc: $out"
    run "$weft" nvme reservation register $(conn) --hostnqn $h1 -k 0x1234 --action unregister
    [ "$rc" -eq 0 ] || fail "unregister rc=$rc: $out"
    run "$weft" nvme reservation report $(conn)
    [ "$rc" -eq 0 ] && grep -q "reservation none, 0 registrant" <<<"$out" || fail "after: $out"
    ;;
  host_not_allowed)
    start_engine "$engine" --allow-host nqn.2014-08.io.weft.test:only
    run "$weft" nvme identify $(conn) --hostnqn nqn.2014-08.io.weft.test:intruder
    [ "$rc" -ne 0 ] || fail "connected anyway: $out"
    grep -q "does not allow host NQN nqn.2014-08.io.weft.test:intruder to connect to $nqn" <<<"$out" ||
      fail "sentence: $out"
    run "$weft" nvme identify $(conn) --hostnqn nqn.2014-08.io.weft.test:only
    [ "$rc" -eq 0 ] || fail "allowed host refused: $out"
    ;;
  wrong_nqn)
    start_engine "$engine"
    run "$weft" nvme identify -a 127.0.0.1 -s "$port" -n nqn.2026-11.io.weft:nope
    [ "$rc" -ne 0 ] && grep -q "no subsystem nqn.2026-11.io.weft:nope on 127.0.0.1:$port" <<<"$out" ||
      fail "rc=$rc: $out"
    ;;
  closed_port)
    # The port of an engine that just stopped: nothing listens there now.
    start_engine "$engine"
    free=$port
    stop_engine
    run "$weft" nvme read -a 127.0.0.1 -s "$free" -n "$nqn"
    [ "$rc" -ne 0 ] && grep -q "nothing listens on 127.0.0.1:$free" <<<"$out" || fail "rc=$rc: $out"
    ;;
  bad_range)
    start_engine "$engine"
    run "$weft" nvme read $(conn) --lba $(((64 << 20) / 512 - 2)) --blocks 4
    [ "$rc" -ne 0 ] && grep -q "invalid LBA range" <<<"$out" || fail "rc=$rc: $out"
    run "$weft" nvme read $(conn) --nsid 9
    [ "$rc" -ne 0 ] && grep -q "namespace 9 does not exist" <<<"$out" || fail "nsid: rc=$rc: $out"
    run "$weft" nvme perf $(conn) --rw sideways
    [ "$rc" -ne 0 ] || fail "bad --rw accepted"
    ;;
  tls)
    # Listeners that require TLS 1.3; the host's key set through the API.
    start_engine "$engine" --tls required
    export WEFT_API=127.0.0.1:$api_port
    h=nqn.2014-08.io.weft.test:tlshost
    "$weft" key gen-tls -o "$data/tls.key" >/dev/null || fail "gen-tls"
    "$weft" key gen-tls --hash sha384 -o "$data/other.key" >/dev/null || fail "gen-tls sha384"
    grep -q '^NVMeTLSkey-1:01:' "$data/tls.key" || fail "key format: $(head -c 16 "$data/tls.key")"
    [ "$(stat -c %a "$data/tls.key")" = 600 ] || fail "key file mode"
    tls() { echo $(conn) --hostnqn "$h" --tls-key-file "$1"; }
    # No key for this host on the engine yet.
    run "$weft" nvme write $(tls "$data/tls.key") --lba 3 --blocks 1 --pattern 0x5c
    [ "$rc" -ne 0 ] && grep -q "refused this host's TLS key" <<<"$out" || fail "no key: rc=$rc: $out"
    run "$weft" engine host-key set "$h" --tls-key-file "$data/tls.key"
    [ "$rc" -eq 0 ] && grep -q "over TLS 1.3 (sha256 PSK)" <<<"$out" || fail "set: rc=$rc: $out"
    run "$weft" nvme write $(tls "$data/tls.key") --lba 3 --blocks 1 --pattern 0x5c
    [ "$rc" -eq 0 ] || fail "write over TLS: rc=$rc: $out"
    run "$weft" nvme read $(tls "$data/tls.key") --lba 3 --blocks 1 --tls-identity 0
    [ "$rc" -eq 0 ] && grep -q "^00000600  5c 5c 5c" <<<"$out" || fail "read over TLS (v0): $out"
    grep -q "connected to $nqn: .*TLS" "$data/engine.log" || fail "the engine's log says no TLS"
    # Plain, or another key: refused.
    run "$weft" nvme read $(conn) --hostnqn "$h" --lba 3 --blocks 1
    [ "$rc" -ne 0 ] && grep -q "requires TLS, give this host's key with --tls-key-file" <<<"$out" ||
      fail "a plain connection: rc=$rc: $out"
    run "$weft" nvme read $(tls "$data/other.key") --lba 3 --blocks 1
    [ "$rc" -ne 0 ] && grep -q "refused this host's TLS key" <<<"$out" || fail "other key: $out"
    # Discovery over TLS says TLS is required.
    run "$weft" nvme discover -a 127.0.0.1 -s "$disc_port" --hostnqn "$h" --tls-key-file "$data/tls.key" --json
    [ "$rc" -eq 0 ] || fail "discover: $out"
    [ "$(jq -r '[.records[] | .treq + "/" + .sectype] | unique | join(",")' <<<"$out")" = "required/tls1.3" ] ||
      fail "discovery TREQ/SECTYPE: $out"
    run "$weft" engine host-key list
    [ "$rc" -eq 0 ] && grep -q "$h .*sha256" <<<"$out" || fail "list: $out"
    # A bad key file is refused before anything is sent.
    printf 'NVMeTLSkey-1:01:nope:\n' >"$data/bad.key"
    chmod 600 "$data/bad.key"
    run "$weft" engine host-key set "$h" --tls-key-file "$data/bad.key"
    [ "$rc" -ne 0 ] && grep -q "the TLS key in $data/bad.key" <<<"$out" || fail "bad key: $out"
    # The engine's log never holds a key.
    key_body=$(cut -d: -f3 "$data/tls.key")
    ! grep -qF "$key_body" "$data/engine.log" || fail "the engine logged the key"
    ;;
  *)
    echo "unknown case $case_name"
    exit 2
    ;;
esac
echo "PASS ($case_name)"
