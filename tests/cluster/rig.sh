# A multi-node test rig on one machine, sourced by the cluster tests: N
# weft-engine "nodes", each in its own network namespace, on one Linux
# bridge, plus a client namespace, with faults to inject (kill, stop, link
# down, packet drops, a slow link). Needs root, iproute2 and nftables.
#
#   WEFT_ENGINE=path/to/weft-engine WEFT_CLI=path/to/weft
#   source tests/cluster/rig.sh
#   rig_init 3 || exit 1             # namespaces, bridge, veths, $rig_dir, EXIT trap
#   rig_start_engine 1 || exit 1     # node 1's engine on $(rig_ip 1):4420
#   rig_cli 1 pool list              # weft against node 1's API, from the client netns
#   rig_drop 1; ...; rig_undrop 1
#
# Layout of a rig with run id ID (5 hex digits, unique among the rigs
# running at once): netns wrIDh holds the bridge br0 and one port per
# namespace (n1..nN, c); netns wrIDn1..wrIDnN are the nodes and wrIDc the
# client, each with lo and eth0 (a veth whose peer is that port). Node i is
# 10.77.0.i/24, the client 10.77.0.100/24: every rig has its own bridge, so
# concurrent rigs reuse the subnet. Nothing is created in the caller's
# namespace: no interface, route or firewall rule there changes.
#
# Node i's engine: --data-dir $rig_dir/n<i>, NVMe/TCP on IP:4420, the API on
# IP:10124, metrics on IP:9502, log $rig_dir/n<i>.log (appended to on
# restarts). Wherever a function takes a node I, "c" names the client.
#
# Cleanup: rig_init installs an EXIT trap running rig_cleanup and then
# whatever EXIT trap was set before (set your own trap before rig_init, or
# call rig_cleanup from it). rig_cleanup stops the engines the rig started,
# kills anything still running inside the rig's namespaces, deletes those
# namespaces (which deletes the veths and the bridge) and removes $rig_dir;
# it touches nothing else and may be called more than once. A SIGKILLed test
# cannot clean up: `ip netns list | grep '^wr'` shows what it left.
#
# Functions return non-zero and say why on stderr ("rig: ...") when they
# fail; the test decides what to do (typically `|| fail ...`).

rig_subnet=10.77.0
rig_nft_table=weft_rig
rig_id=
rig_n=0
rig_dir=
rig_pids=()
_rig_flags=()
_rig_nss=()
_rig_cleaned=0
_rig_prev_exit_trap=
_rig_help=
_rig_help_of=

# _rig_err MSG...: prints "rig: MSG" on stderr, returns 1.
_rig_err() {
  echo "rig: $*" >&2
  return 1
}

# _rig_check_node I: I must be a node 1..N, or "c" when $2 is "c-ok".
_rig_check_node() {
  [ -n "$rig_id" ] || _rig_err "rig_init first" || return 1
  if [ "$1" = c ] && [ "${2:-}" = c-ok ]; then return 0; fi
  [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$rig_n" ] ||
    _rig_err "no node '$1' (nodes are 1..$rig_n)"
}

# rig_ns I: the name of node I's namespace (I = c: the client's).
rig_ns() {
  if [ "$1" = c ]; then echo "wr${rig_id}c"; else echo "wr${rig_id}n$1"; fi
}

# rig_ip I: node I's address (I = c: the client's).
rig_ip() {
  if [ "$1" = c ]; then echo "$rig_subnet.100"; else echo "$rig_subnet.$1"; fi
}

# rig_client_ip: the client namespace's address.
rig_client_ip() { rig_ip c; }

# _rig_port I: the name of I's port on the bridge (in the hub namespace).
_rig_port() {
  if [ "$1" = c ]; then echo c; else echo "n$1"; fi
}

# _rig_alive PID: the process exists and is not a zombie.
_rig_alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# _rig_is_engine I PID: PID is node I's engine of this rig (not a reused pid).
_rig_is_engine() {
  _rig_alive "$2" && tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null |
    grep -qF -- "--data-dir $rig_dir/n$1 "
}

# _rig_reap PID SECS: waits up to SECS for PID to exit (reaps it if it is
# our child); returns 1 if it is still there.
_rig_reap() {
  local pid=$1 deadline=$((SECONDS + $2))
  while _rig_alive "$pid"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
  wait "$pid" 2>/dev/null
  return 0
}

# _rig_add_ns NAME: creates netns NAME with lo up; fails if it exists.
_rig_add_ns() {
  local try
  for try in 1 2 3; do
    if ip netns add "$1" 2>/dev/null; then
      _rig_nss+=("$1")
      ip -n "$1" link set lo up
      return 0
    fi
    # Taken: fail. Otherwise a transient error (concurrent first use of
    # /run/netns): try again.
    ip netns list | grep -q "^$1\( \|$\)" && return 1
    sleep 0.1
  done
  return 1
}

# rig_init N: creates the rig's namespaces, bridge and links, $rig_dir with
# n1..nN, and the EXIT trap; sets $rig_id and $rig_n.
rig_init() {
  local n=${1:-}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 99 ] ||
    _rig_err "rig_init N: N from 1 to 99" || return 1
  [ -z "$rig_id" ] || _rig_err "rig_init: this shell already has rig $rig_id" || return 1
  [ "$(id -u)" = 0 ] || _rig_err "rig_init: needs root (network namespaces)" || return 1
  local tool
  for tool in ip tc nft; do
    command -v $tool >/dev/null || _rig_err "rig_init: no '$tool' (scripts/setup.sh installs it)" ||
      return 1
  done
  # The EXIT trap first, so that a failure half way still cleans up.
  local prev mine='rig_cleanup; eval "$_rig_prev_exit_trap"'
  prev=$(trap -p EXIT)
  if [ -n "$prev" ]; then
    eval "set -- $prev"
    # Ours already (a second rig after rig_cleanup): keep what it chains.
    [ "$3" = "$mine" ] || _rig_prev_exit_trap=$3
  fi
  trap "$mine" EXIT
  _rig_cleaned=0
  # A run id: a hub namespace name nobody holds.
  local try
  for try in $(seq 20); do
    rig_id=$(printf '%05x' $(((($$ << 15) ^ RANDOM ^ (try << 7)) & 0xfffff)))
    _rig_add_ns "wr${rig_id}h" && break
    rig_id=
  done
  [ -n "$rig_id" ] || _rig_err "rig_init: could not create a hub namespace" || return 1
  rig_n=$n
  rig_dir=$(mktemp -d -t "weft-rig-$rig_id.XXXXXX") || _rig_err "rig_init: mktemp" || return 1
  rig_pids=()
  _rig_flags=()
  local hub=wr${rig_id}h i ns
  ip -n "$hub" link add br0 type bridge &&
    ip -n "$hub" link set br0 up || _rig_err "rig_init: bridge in $hub" || return 1
  for i in $(seq "$n") c; do
    ns=$(rig_ns "$i")
    _rig_add_ns "$ns" || _rig_err "rig_init: could not create netns $ns" || return 1
    # Created in the hub and its peer moved at once: the caller's namespace
    # never sees the veth.
    ip -n "$hub" link add "$(_rig_port "$i")" type veth peer name eth0 netns "$ns" &&
      ip -n "$hub" link set "$(_rig_port "$i")" master br0 up &&
      ip -n "$ns" addr add "$(rig_ip "$i")/24" dev eth0 &&
      ip -n "$ns" link set eth0 up || _rig_err "rig_init: link of $ns" || return 1
    [ "$i" = c ] || mkdir -p "$rig_dir/n$i"
  done
  # Every link is up and every bridge port forwards before the test starts.
  for i in $(seq "$n") c; do
    rig_wait 10 _rig_link_ready "$i" || _rig_err "rig_init: the link of $(rig_ns "$i") is not up" ||
      return 1
  done
}

# _rig_link_ready I: I's eth0 is up and its bridge port forwards.
_rig_link_ready() {
  ip -n "$(rig_ns "$1")" link show dev eth0 2>/dev/null | grep -q 'state UP' &&
    ip -n "wr${rig_id}h" -d link show dev "$(_rig_port "$1")" 2>/dev/null | grep -q 'state forwarding'
}

# rig_wait SECS CMD...: runs CMD until it succeeds, for at most SECS seconds.
rig_wait() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# rig_node I CMD...: runs CMD in node I's namespace (I = c: the client's).
rig_node() {
  _rig_check_node "$1" c-ok || return 1
  local ns
  ns=$(rig_ns "$1")
  shift
  ip netns exec "$ns" "$@"
}

# rig_client CMD...: runs CMD in the client namespace.
rig_client() { rig_node c "$@"; }

# rig_cli I ARGS...: runs `$WEFT_CLI ARGS` in the client namespace against
# node I's management API (WEFT_API; weft takes --api after the subcommand).
rig_cli() {
  _rig_check_node "$1" || return 1
  local api
  api=$(rig_ip "$1"):10124
  shift
  engine_args "$@"
  rig_client env WEFT_API="$api" "${WEFT_CLI:?set WEFT_CLI to the weft binary}" "${args[@]}"
}

# rig_start_engine I [FLAGS...]: starts node I's engine with the rig's flags
# and FLAGS; waits until its NVMe/TCP, API and metrics listeners are up.
rig_start_engine() {
  _rig_check_node "$1" || return 1
  local i=$1
  shift
  local q=
  [ $# -eq 0 ] || q=$(printf '%q ' "$@")
  _rig_flags[i]=$q
  _rig_launch "$i"
}

# rig_restart_engine I: starts node I's engine again with the same data dir
# and flags (stops it with SIGTERM first if it still runs).
rig_restart_engine() {
  _rig_check_node "$1" || return 1
  [ -n "${_rig_flags[$1]+set}" ] || _rig_err "node $1 was never started" || return 1
  rig_term "$1" || return 1
  _rig_launch "$1"
}

# _rig_launch I: starts node I's engine with $_rig_flags[I].
_rig_launch() {
  local i=$1 ip log pid extra=()
  local engine=${WEFT_ENGINE:?set WEFT_ENGINE to the weft-engine binary}
  if [ -n "${rig_pids[i]:-}" ] && _rig_is_engine "$i" "${rig_pids[i]}"; then
    _rig_err "node $i's engine already runs (pid ${rig_pids[i]})"
    return 1
  fi
  ip=$(rig_ip "$i")
  log=$rig_dir/n$i.log
  eval "extra=(${_rig_flags[i]})"
  # A flag that is being added: passed once the binary knows it.
  if [ "${_rig_help_of:-}" != "$engine" ]; then
    _rig_help=$("$engine" --help 2>&1)
    _rig_help_of=$engine
  fi
  if grep -q -- '--host-nqn' <<<"$_rig_help"; then
    extra=(--host-nqn "nqn.2014-08.io.weft:rig:node$i" "${extra[@]}")
  fi
  # The API on the rig's private bridge: plain, as the engine allows only
  # when told (it refuses a non-loopback API without TLS or tokens).
  if grep -q -- '--api-insecure' <<<"$_rig_help"; then
    extra=(--api-insecure "${extra[@]}")
  fi
  touch "$log"
  local from
  from=$(($(stat -c %s "$log") + 1))
  echo "=== rig: starting node $i ($(date +%T.%N | cut -c1-12))" >>"$log"
  # ip netns exec execs the engine: $! is the engine's pid.
  ip netns exec "$(rig_ns "$i")" "$engine" --data-dir "$rig_dir/n$i" --cores 0 \
    --listen "$ip:4420" --api-listen "$ip:10124" --metrics-listen "$ip:9502" \
    "${extra[@]}" >>"$log" 2>&1 </dev/null &
  pid=$!
  rig_pids[i]=$pid
  local deadline=$((SECONDS + ${RIG_START_TIMEOUT:-20})) now
  while :; do
    now=$(tail -c +"$from" "$log")
    if grep -qF "NVMe/TCP listening on $ip:4420" <<<"$now" &&
      grep -qF "management API on $ip:10124" <<<"$now" &&
      grep -qF "metrics on http://$ip:9502" <<<"$now"; then
      return 0
    fi
    if ! _rig_alive "$pid"; then
      wait "$pid" 2>/dev/null
      _rig_err "node $i's engine exited during start ($log):"
      tail -n 30 "$log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      _rig_err "node $i's engine is not listening after ${RIG_START_TIMEOUT:-20} s ($log):"
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.05
  done
}

# rig_alive I: node I's engine runs (possibly stopped by rig_stop).
rig_alive() {
  _rig_check_node "$1" || return 1
  [ -n "${rig_pids[$1]:-}" ] && _rig_is_engine "$1" "${rig_pids[$1]}"
}

# rig_pid I: node I's engine's pid (empty when it never started).
rig_pid() { echo "${rig_pids[$1]:-}"; }

# rig_kill I: SIGKILLs node I's engine and waits until it is gone.
rig_kill() {
  _rig_check_node "$1" || return 1
  local pid=${rig_pids[$1]:-}
  rig_alive "$1" || return 0
  kill -KILL "$pid" 2>/dev/null
  _rig_reap "$pid" 10 || _rig_err "node $1's engine (pid $pid) survives SIGKILL"
}

# rig_term I: stops node I's engine cleanly (SIGTERM; SIGKILL after 10 s).
rig_term() {
  _rig_check_node "$1" || return 1
  local pid=${rig_pids[$1]:-}
  rig_alive "$1" || return 0
  kill -TERM "$pid" 2>/dev/null
  kill -CONT "$pid" 2>/dev/null
  _rig_reap "$pid" 10 && return 0
  _rig_err "node $1's engine ignored SIGTERM for 10 s; SIGKILL"
  rig_kill "$1"
}

# _rig_state PID: the process's state letter (T when stopped).
_rig_state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; }

# rig_stop I: freezes node I's engine (SIGSTOP): connections stay open, nothing answers.
rig_stop() {
  rig_alive "$1" || _rig_err "node $1's engine does not run" || return 1
  local pid=${rig_pids[$1]}
  kill -STOP "$pid"
  rig_wait 5 eval '[ "$(_rig_state '"$pid"')" = T ]' || _rig_err "node $1 did not stop"
}

# rig_cont I: resumes node I's engine after rig_stop (SIGCONT).
rig_cont() {
  rig_alive "$1" || _rig_err "node $1's engine does not run" || return 1
  local pid=${rig_pids[$1]}
  kill -CONT "$pid"
  rig_wait 5 eval '[ "$(_rig_state '"$pid"')" != T ]' || _rig_err "node $1 did not resume"
}

# rig_link_down I: takes node I's interface down (its peers see no carrier).
rig_link_down() {
  _rig_check_node "$1" c-ok || return 1
  ip -n "$(rig_ns "$1")" link set eth0 down
}

# rig_link_up I: brings node I's interface back up (address and route return).
rig_link_up() {
  _rig_check_node "$1" c-ok || return 1
  ip -n "$(rig_ns "$1")" link set eth0 up
}

# rig_drop I [J]: node I drops every packet but loopback's; with J only those
# to and from node J (J = c: the client). Drops add up: rig_drop 2 1;
# rig_drop 2 3 cuts node 2 off from nodes 1 and 3 only.
rig_drop() {
  _rig_check_node "$1" c-ok || return 1
  local i=$1 f=$rig_dir/.drop.$1
  if [ $# -ge 2 ]; then
    _rig_check_node "$2" c-ok || return 1
    [ "$2" != "$i" ] || _rig_err "rig_drop: node $i cannot drop itself" || return 1
    grep -qx all "$f" 2>/dev/null || { echo "$(rig_ip "$2")" >>"$f"; }
  else
    echo all >"$f"
  fi
  _rig_apply_drops "$i"
}

# rig_undrop I: node I passes all traffic again.
rig_undrop() {
  _rig_check_node "$1" c-ok || return 1
  rm -f "$rig_dir/.drop.$1"
  _rig_apply_drops "$1"
}

# _rig_apply_drops I: replaces node I's nftables table with what
# $rig_dir/.drop.I asks for (none: no table), in one transaction.
_rig_apply_drops() {
  local i=$1 f=$rig_dir/.drop.$1 t=$rig_nft_table
  local in_rule out_rule addrs
  if [ ! -s "$f" ]; then
    # "add" then "delete": no error whether or not the table exists.
    printf 'add table inet %s\ndelete table inet %s\n' "$t" "$t" |
      ip netns exec "$(rig_ns "$i")" nft -f -
    return
  fi
  if grep -qx all "$f"; then
    in_rule=drop
    out_rule=drop
  else
    addrs=$(sort -u "$f" | paste -sd, -)
    in_rule="ip saddr { $addrs } drop"
    out_rule="ip daddr { $addrs } drop"
  fi
  ip netns exec "$(rig_ns "$i")" nft -f - <<EOF
add table inet $t
delete table inet $t
table inet $t {
  chain input {
    type filter hook input priority 0; policy accept;
    iif "lo" accept
    $in_rule
  }
  chain output {
    type filter hook output priority 0; policy accept;
    oif "lo" accept
    $out_rule
  }
}
EOF
}

# rig_slow I RATE [out|in|both]: tc tbf at RATE (e.g. 100kbit, 20mbit) on
# what node I sends (out, the default), receives (in) or both.
rig_slow() {
  _rig_check_node "$1" c-ok || return 1
  local i=$1 rate=${2:-} dir=${3:-out}
  [ -n "$rate" ] || _rig_err "rig_slow I RATE [out|in|both]" || return 1
  local tbf=(tbf rate "$rate" burst "${RIG_TBF_BURST:-32kb}" latency "${RIG_TBF_LATENCY:-200ms}")
  case "$dir" in
    out | in | both) ;;
    *) _rig_err "rig_slow: direction out, in or both, not '$dir'" || return 1 ;;
  esac
  # Out: the node's eth0. In: the bridge port toward the node, in the hub.
  if [ "$dir" != in ]; then
    ip netns exec "$(rig_ns "$i")" tc qdisc replace dev eth0 root "${tbf[@]}" || return 1
  else
    ip netns exec "$(rig_ns "$i")" tc qdisc del dev eth0 root 2>/dev/null
  fi
  if [ "$dir" != out ]; then
    ip netns exec "wr${rig_id}h" tc qdisc replace dev "$(_rig_port "$i")" root "${tbf[@]}" ||
      return 1
  else
    ip netns exec "wr${rig_id}h" tc qdisc del dev "$(_rig_port "$i")" root 2>/dev/null
  fi
  return 0
}

# rig_unslow I: removes rig_slow's shaping of node I (both directions).
rig_unslow() {
  _rig_check_node "$1" c-ok || return 1
  ip netns exec "$(rig_ns "$1")" tc qdisc del dev eth0 root 2>/dev/null
  ip netns exec "wr${rig_id}h" tc qdisc del dev "$(_rig_port "$1")" root 2>/dev/null
  return 0
}

# rig_dump [LINES]: prints the last LINES (30) lines of every engine log.
rig_dump() {
  [ -n "$rig_dir" ] && [ -d "$rig_dir" ] || return 0
  local log
  for log in "$rig_dir"/n*.log; do
    [ -f "$log" ] || continue
    echo "--- $log (last ${1:-30} lines)"
    tail -n "${1:-30}" "$log"
  done
}

# rig_cleanup: stops the engines, kills what runs in the rig's namespaces,
# deletes the namespaces and $rig_dir. Idempotent; the EXIT trap calls it.
rig_cleanup() {
  [ "$_rig_cleaned" = 0 ] || return 0
  _rig_cleaned=1
  [ -n "$rig_id" ] || return 0
  local i pid ns pids=()
  # The engines: SIGTERM (and SIGCONT, should one be stopped), then SIGKILL.
  for i in "${!rig_pids[@]}"; do
    pid=${rig_pids[i]}
    if _rig_is_engine "$i" "$pid"; then
      kill -TERM "$pid" 2>/dev/null
      kill -CONT "$pid" 2>/dev/null
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    _rig_reap "$pid" 5 || { kill -KILL "$pid" 2>/dev/null; _rig_reap "$pid" 5; }
  done
  # Whatever else a test started inside the rig's namespaces.
  for ns in "${_rig_nss[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null
      _rig_reap "$pid" 5
    done
  done
  for ns in "${_rig_nss[@]}"; do
    ip netns del "$ns" 2>/dev/null || echo "rig: could not delete netns $ns" >&2
  done
  _rig_nss=()
  rig_pids=()
  [ -n "$rig_dir" ] && rm -rf "$rig_dir"
  # The shell may rig_init again.
  rig_id=
  rig_n=0
  rig_dir=
  return 0
}

source "$(dirname "${BASH_SOURCE[0]}")/../engine_args.sh"
