# The nexus's fault-tolerance tests on the cluster rig: what every case of
# nexus_test.sh shares (sourced by it after rig.sh).
#
# The common set-up (nx_setup): three nodes (engines with --poll-us 0), each
# with a pool p (a file in its data dir) and a volume v<i> of the nexus size
# + 1 MiB; node 2's and node 3's volumes shared to any host; on node 1 a
# nexus over pool://p/v1 (local) + nvmf://10.77.0.2:4420/<nqn2> +
# nvmf://10.77.0.3:4420/<nqn3> with --io-timeout-ms 2000, shared to any host.
# fio runs in the client namespace with libweft_fio.so against a nexus share
# (fio_start / fio_wait / fio_run), and every job verifies what it wrote
# (crc32c, fatal on the first mismatch). A case passes only when every fio
# job that claims its data exits 0 with err=0 and no verify error, and the
# children's data areas hash equal at the end (nx_final_check).
#
# Every command that talks to an engine is bounded (`timeout`): a fault must
# never hang the test. Failures print what step failed, what was expected and
# what happened, then the nexus as the engines see it and the engines' logs.

nx_mib=$((1 << 20))
nx_size_mib=${NX_SIZE_MIB:-128}
nx_size=$((nx_size_mib * nx_mib))
nx_bs=512                              # the pool volumes' block size
nx_data_lba=$((nx_mib / nx_bs))        # nexus LBA 0 is child byte 1 MiB
nx_io_timeout_ms=${NX_IO_TIMEOUT_MS:-2000}
nx_uuid=
nx_nqn=
nx_node=1                              # the node whose nexus the helpers ask
nqn_of=()                              # nqn_of[i]: node i's volume share
uri_of=()                              # uri_of[i]: node i's child URI on node 1's nexus
nx_start=$SECONDS
nx_case=${nx_case:-?}

# step TEXT: a progress line with the seconds since the start.
step() { echo "[$((SECONDS - nx_start))s] $*"; }

# wrong TEXT: records a wrong answer of the engine where the case can go on
# (so that one such bug does not hide the checks after it); the case fails
# at its end (nx_pass).
nx_wrongs=()
wrong() {
  echo "WRONG ($nx_case) at $((SECONDS - nx_start))s: $*"
  nx_wrongs+=("$*")
}

# nx_pass: the end of a case: PASS, or FAIL for every wrong answer recorded.
nx_pass() {
  nx_keep_logs
  if [ "${#nx_wrongs[@]}" -gt 0 ]; then
    local w
    for w in "${nx_wrongs[@]}"; do echo "FAIL ($nx_case): $w"; done
    rig_dump 30
    exit 1
  fi
  step "PASS ($nx_case)"
}

# fail TEXT: the case failed: TEXT, the nexus as the engines see it, the
# fio logs' tails and the engines' logs; exit 1.
fail() {
  echo "FAIL ($nx_case) at $((SECONDS - nx_start))s: $*"
  local w
  for w in "${nx_wrongs[@]}"; do echo "FAIL ($nx_case): $w"; done
  local i
  if [ -n "$nx_uuid" ] && [ -n "${rig_id:-}" ]; then
    for i in $(seq "$rig_n"); do
      rig_alive "$i" 2>/dev/null || continue
      echo "--- node $i: weft engine nexus get $nx_uuid"
      CLI_LIMIT=10 cli "$i" nexus get "$nx_uuid" --timeout 5
      echo "$out$err" | head -40
    done
  fi
  for i in "${!rig_pids[@]}"; do
    rig_alive "$i" 2>/dev/null || echo "--- node $i's engine (pid ${rig_pids[i]}) is not running"
  done
  local f
  for f in "${rig_dir:-/nonexistent}"/fio.*.log; do
    [ -f "$f" ] || continue
    echo "--- $f (last 15 lines)"
    tail -n 15 "$f"
  done
  rig_dump 60
  nx_keep_logs
  exit 1
}

# cli I ARGS...: weft ARGS against node I's API, bounded; $out its stdout,
# $err its stderr, $rc its exit code.
cli() {
  local i=$1
  shift
  engine_args "$@"
  out=$(rig_client timeout -k 2 "${CLI_LIMIT:-40}" env WEFT_API="$(rig_ip "$i"):10124" \
    "$WEFT_CLI" "${args[@]}" 2>"$rig_dir/cli.err")
  rc=$?
  err=$(<"$rig_dir/cli.err")
}

# ok I ARGS...: weft ARGS against node I must succeed.
ok() {
  cli "$@"
  [ "$rc" -eq 0 ] || fail "weft $* (node $1's API) exited $rc: $err $out"
}

# jqe WHAT FILTER [jq args...]: $out (JSON) must satisfy FILTER.
jqe() {
  local what=$1 filter=$2
  shift 2
  jq -e "$@" "$filter" <<<"$out" >/dev/null || fail "$what: want $filter; got: $out"
}

# nx_get [I]: the nexus as node I (default $nx_node) sees it, JSON in $out.
nx_get() {
  ok "${1:-$nx_node}" nexus get "$nx_uuid" --json
}

# nx_is FILTER [I]: the nexus (JSON) on node I satisfies FILTER (no failure).
nx_is() {
  cli "${2:-$nx_node}" nexus get "$nx_uuid" --json
  [ "$rc" -eq 0 ] && jq -e "$1" <<<"$out" >/dev/null
}

# nx_wait SECS WHAT FILTER [I]: waits until the nexus satisfies FILTER.
nx_wait() {
  local secs=$1 what=$2 filter=$3 node=${4:-$nx_node}
  rig_wait "$secs" nx_is "$filter" "$node" ||
    fail "$what: after $secs s the nexus on node $node is still not $filter; last: $out $err"
}

# The filter "every child online (in sync) and not reconnecting".
nx_all_online='.state == "online" and all(.children[]; .state == "online" and (.reconnecting | not))'

# nx_wait_all_online SECS WHAT: waits until every child is online again.
nx_wait_all_online() {
  nx_wait "$1" "$2" "$nx_all_online"
}

# nx_setup [CREATE ARGS...]: the three nodes, pools, volumes and shares,
# and the nexus on node 1 over the volumes of the nodes in $nx_children
# (default 1 2 3; node 1's is local), with the extra `nexus create` flags
# ARGS, shared. Sets $nx_uuid, $nx_nqn, $nqn_of[2..3], $uri_of[...].
nx_children=(${NX_CHILDREN:-1 2 3})
nx_setup() {
  rig_init 3 || fail "rig_init"
  local i
  for i in 1 2 3; do
    rig_start_engine "$i" --poll-us 0 || fail "start node $i's engine"
  done
  step "3 nodes up (rig $rig_id, $rig_dir)"
  for i in 1 2 3; do
    ok "$i" pool create p "$rig_dir/n$i/p.img" --size $((nx_size_mib + 64))MiB --cluster-size 1MiB
    ok "$i" volume create p "v$i" $((nx_size_mib + 1))MiB ${NX_THICK:+--thick}
  done
  for i in 2 3; do
    ok "$i" volume share p "v$i" --any-host --json
    nqn_of[i]=$(jq -r .nqn <<<"$out")
    [ -n "${nqn_of[i]}" ] && [ "${nqn_of[i]}" != null ] || fail "no NQN in node $i's share: $out"
    uri_of[i]=nvmf://$(rig_ip "$i"):4420/${nqn_of[i]}
  done
  uri_of[1]=pool://p/v1
  local args=()
  for i in "${nx_children[@]}"; do args+=(--child "${uri_of[i]}"); done
  ok 1 nexus create --size "${nx_size_mib}MiB" "${args[@]}" --io-timeout-ms "$nx_io_timeout_ms" \
    "$@" --json
  nx_uuid=$(jq -r .uuid <<<"$out")
  jqe "nexus create" '.state == "online" and (.children | length) == $n and
    all(.children[]; .state == "online")' --argjson n "${#nx_children[@]}"
  ok 1 nexus share "$nx_uuid" --any-host --json
  nx_nqn=$(jq -r .nqn <<<"$out")
  [ "$nx_nqn" = "nqn.2026-11.io.weft:nexus:$nx_uuid" ] || fail "nexus share: $out"
  step "nexus $nx_uuid on node 1 over $(printf "%s " "${args[@]}" | sed "s/--child //g"), shared"
}

# ---- fio ------------------------------------------------------------------------

# fio_start NAME NODE NQN [JOB ARGS...]: starts fio (run NAME) in the client
# namespace against NQN on node NODE, in the background, bounded by
# FIO_LIMIT seconds (default 120; then SIGKILLed); log $rig_dir/fio.NAME.log.
# Every job: 4k blocks (unless it says), iodepth 16, verify crc32c of what
# it wrote, fatal on the first mismatch. JOB ARGS may define several jobs
# (each from a --name=...); without one they are job NAME's. $fio_pid: its
# pid (timeout's, the leader of the run's process group).
fio_start() {
  local name=$1 node=$2 nqn=$3
  shift 3
  local log=$rig_dir/fio.$name.log
  [ "${1:-}" != "${1#--name=}" ] || set -- --name="$name" "$@"
  echo "fio $name -> node $node $nqn: $*" >"$log"
  # From $rig_dir: nothing fio may leave behind lands elsewhere.
  (cd "$rig_dir" && exec ip netns exec "$(rig_ns c)" timeout -s KILL "${FIO_LIMIT:-120}" \
    fio --ioengine="external:$WEFT_FIO" --addr="$(rig_ip "$node")" --port=4420 \
    --nqn="$nqn" --nsid=1 --filename=weft0 --hostnqn="nqn.2014-08.io.weft:rig:client" \
    --weft_timeout_ms="${FIO_CMD_TIMEOUT_MS:-30000}" \
    --thread=1 --bs=4k --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --verify_state_save=0 --group_reporting=1 "$@" >>"$log" 2>&1) &
  fio_pid=$!
}

# fio_wait NAME PID: waits for a job and checks it: fio exits 0, err=0, no
# verify error. Prints its summary line.
fio_wait() {
  local name=$1 pid=$2 log=$rig_dir/fio.$1.log
  wait "$pid"
  local rc=$?
  fio_check "$name" "$rc"
}

# fio_check NAME RC: job NAME's log says it passed (RC its exit code).
fio_check() {
  local name=$1 rc=$2 log=$rig_dir/fio.$1.log
  local summary
  summary=$(grep -E '^ *(write|read): IOPS=' "$log" | tr -s ' ' | paste -sd';' -)
  if [ "$rc" -ne 0 ] || ! grep -q 'err= 0' "$log" || grep -q 'err= *[1-9]' "$log" ||
    grep -qiE 'verify: bad|verify failed|bad magic|crc32c.*(fail|mismatch)|fio: io_u error' "$log"; then
    [ "$rc" -ne 137 ] || rc="137 (killed after ${FIO_LIMIT:-120} s)"
    fail "fio job $name must exit 0 with err=0 and no verify error: exit $rc; fio says: $(
      grep -E 'err=|error|verify|fio:|weft' "$log" | grep -v '^fio [a-zA-Z0-9-]* ->' | head -8)"
  fi
  step "  fio $name passed: ${summary:-?}"
}

# fio_run NAME NODE NQN [FIO ARGS...]: fio_start and fio_wait.
fio_run() {
  fio_start "$@"
  fio_wait "$1" "$fio_pid"
}

# fio_stop PID: SIGKILLs a job that is expected to hang; returns once it is
# gone. (timeout, which fio_start runs fio under, leads its own process
# group: the group is the job.)
fio_stop() {
  kill -KILL -- "-$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

# The job shapes.
# fill: writes the whole nexus once (1 MiB blocks), then verifies it.
fio_fill_args=(--rw=write --bs=1m --size="${nx_size_mib}m")
# fio_hot_args SECS: two jobs in the nexus's first NX_HOT_MIB (16) MiB, for
# about SECS seconds each: "once" writes every 4k block of the first half
# once, in random order, paced to last SECS (fio checks each block's
# sequence number as well: a write lost by every child shows), and "churn"
# overwrites the second half at random as fast as it can for SECS. Both
# verify as they go (verify_backlog) and again at the end.
nx_hot_mib=${NX_HOT_MIB:-16}
fio_hot_args() {
  local half=$((nx_hot_mib / 2))
  echo --name=once --offset=0 --size="${half}m" --rw=randwrite \
    --rate_iops=$((half * 256 / $1)) --verify_backlog=64 \
    --name=churn --offset="${half}m" --size="${half}m" --rw=randwrite --time_based=1 \
    --runtime="$1" --verify_backlog=512
}

# ---- the bitmap and rebuilds ---------------------------------------------------------

# nx_wait_bitmap_quiet SECS MAX: waits until the nexus's dirty regions are at
# most MAX (its clear pass runs every 5 s once every child is in sync: a
# region written before is clear 5-10 s after its last write).
nx_wait_bitmap_quiet() {
  nx_wait "$1" "the write-intent bitmap clears regions not written any more" \
    "(.dirty_regions // 0) <= $2"
}

# nx_hot_regions: $hot_regions, how many regions fio's hot area spans.
nx_hot_regions() {
  nx_get
  local rs
  rs=$(jq -r .region_size <<<"$out")
  hot_regions=$(((nx_hot_mib * nx_mib + rs - 1) / rs))
}

# nx_hot_start SECS [nofill]: the fill job (unless "nofill": the whole area
# was written already), then the hot jobs for SECS seconds in the
# background ($hot_pid); returns once the nexus's bitmap holds at most the
# hot area's regions (so that a child leaving now is owed those only).
nx_hot_start() {
  [ "${2:-}" = nofill ] || fio_run fill 1 "$nx_nqn" "${fio_fill_args[@]}"
  nx_hot_regions
  fio_start hot 1 "$nx_nqn" $(fio_hot_args "$1")
  hot_pid=$fio_pid
  nx_wait_bitmap_quiet 15 "$hot_regions"
  step "fio writes its hot area only: at most $hot_regions dirty regions"
}

# nx_hot_finish I: node I's child came back: every child online within 30
# s, node I's child rebuilt partially (at most twice the hot area), fio's
# hot jobs pass, and the final check.
nx_hot_finish() {
  nx_wait_all_online 30 "node $1's child coming back"
  step "every child online"
  nx_check_rebuild "${uri_of[$1]}" partial $((2 * nx_hot_mib * nx_mib))
  grep -q "partial rebuild of ${uri_of[$1]}: done" "$rig_dir/n1.log" ||
    fail "node 1's log shows no partial rebuild of ${uri_of[$1]}"
  fio_wait hot "$hot_pid"
  nx_final_check
}

# nx_wait_child_out I SECS: waits until node I's child is faulted; prints
# its reason and whether it is being reconnected; $reason is the reason.
nx_wait_child_out() {
  nx_wait "$2" "node $1's child failing" \
    "any(.children[]; .uri == \"${uri_of[$1]}\" and .state == \"faulted\")"
  reason=$(jq -r --arg u "${uri_of[$1]}" '.children[] | select(.uri == $u) | .reason' <<<"$out")
  local others
  others=$(jq -c --arg u "${uri_of[$1]}" '[.children[] | select(.uri != $u) | .state]' <<<"$out")
  step "node $1's child: faulted ($reason)$(jq -r --arg u "${uri_of[$1]}" \
    '.children[] | select(.uri == $u) | if .reconnecting then ", reconnecting" else "" end' \
    <<<"$out"); nexus $(jq -r .state <<<"$out"), the others $others"
}

# nx_check_rebuild URI KIND MAX_BYTES: the latest rebuild of URI in the
# history is a KIND rebuild that is done and copied at most MAX_BYTES (and
# more than 0). Prints it.
nx_check_rebuild() {
  local uri=$1 kind=$2 max=$3
  nx_get
  local rec
  rec=$(jq -c --arg u "$uri" '[.rebuild_history[] | select(.child == $u)] | last' <<<"$out")
  [ -n "$rec" ] && [ "$rec" != null ] || fail "no rebuild of $uri in the history: $out"
  jq -e --arg k "$kind" --argjson m "$max" \
    '.kind == $k and .outcome == "done" and .bytes > 0 and .bytes <= $m' <<<"$rec" >/dev/null ||
    fail "the last rebuild of $uri should be a $kind rebuild, done, of 1..$max bytes; history: $(jq -c .rebuild_history <<<"$out")"
  step "  rebuild of $uri: $(jq -r '"\(.kind), \(.outcome), \(.bytes) bytes in \(.end_unix_ms - .start_unix_ms) ms"' <<<"$rec")"
}

# ---- the children's data ---------------------------------------------------------------

# hash_share I NQN: $hash, the sha256 of the nexus's data area (NX_SIZE
# bytes from byte 1 MiB) of node I's volume shared as NQN, read over
# NVMe/TCP from the client.
hash_share() {
  local i=$1 nqn=$2 f=$rig_dir/hash.$1.bin
  rig_client timeout -k 2 90 "$WEFT_CLI" nvme read -a "$(rig_ip "$i")" -s 4420 -n "$nqn" \
    --hostnqn nqn.2014-08.io.weft:rig:hasher --timeout 20 \
    --lba "$nx_data_lba" --blocks $((nx_size / nx_bs)) -o "$f" >"$rig_dir/hash.err" 2>&1 ||
    fail "reading node $i's child ($nqn) over NVMe/TCP: $(cat "$rig_dir/hash.err")"
  hash=$(sha256sum "$f" | cut -d' ' -f1)
  rm -f "$f"
}

# nx_final_check [NODE]: the end of every case. The nexus on NODE (default
# $nx_node) is unshared and destroyed (cleanly: its children keep their
# data and a clean label); node 1's volume v1 is shared; then the data areas
# of the children (the volumes of $nx_children) must hash equal, and each
# label says: this nexus, clean, every member in sync, one generation.
nx_final_check() {
  local node=${1:-$nx_node} i n=${#nx_children[@]}
  ok "$node" nexus unshare "$nx_uuid"
  ok "$node" nexus destroy "$nx_uuid"
  ok 1 volume share p v1 --any-host --json
  nqn_of[1]=$(jq -r .nqn <<<"$out")
  local h=() gens=() first= line=
  for i in "${nx_children[@]}"; do
    hash_share "$i" "${nqn_of[i]}"
    h[i]=$hash
    line+=" v$i ${h[i]:0:16}"
  done
  step "data areas:$line"
  for i in "${nx_children[@]}"; do
    [ -n "$first" ] || first=${h[i]}
    [ "${h[i]}" = "$first" ] || fail "the children's data areas differ:$line"
  done
  first=
  for i in "${nx_children[@]}"; do
    ok "$node" nexus label "nvmf://$(rig_ip "$i"):4420/${nqn_of[i]}" --json
    jqe "the label of node $i's child after the nexus was destroyed" \
      '.present and .nexus_uuid == $u and .clean and (.members | length) == $n and
       all(.members[]; .state == "in-sync")' --arg u "$nx_uuid" --argjson n "$n"
    gens[i]=$(jq -r .generation <<<"$out")
    [ -n "$first" ] || first=${gens[i]}
    [ "${gens[i]}" = "$first" ] || fail "the children's labels are at generations ${gens[*]}, want one"
  done
  step "labels: clean, $n members in sync, generation $first on every child"
}

# nx_keep_logs: with NX_KEEP=DIR, copies the rig's logs to DIR/CASE.
nx_keep_logs() {
  [ -n "${NX_KEEP:-}" ] && [ -n "${rig_dir:-}" ] && [ -d "$rig_dir" ] || return 0
  mkdir -p "$NX_KEEP/$nx_case"
  cp "$rig_dir"/*.log "$NX_KEEP/$nx_case/" 2>/dev/null
  return 0
}
