# Shared by the bench/*.sh scripts (sourced, from the repository's root):
# a one-engine fixture and the median of interleaved rounds.
#   bench_init NAME        work dir, build check, cleanup on exit
#   bench_malloc_engine NQN CPUS [ARGS...]   weft-engine pinned to CPUS,
#                          serving NQN with one 128 MiB malloc namespace
#                          written once in full; its port in $port
#   bench_stop_engine
#   bench_perf CPUS NQN ARGS...   `weft nvme perf` on CPUS against NQN
#   median                 of the numbers on stdin
#   bench_machine          one line: CPUs and model
bin=build/release
weft=$bin/src/cli/weft
engine_pid=
bench_cleanups=()

bench_init() {
  bench_name=$1
  [ -x "$weft" ] && [ -x "$bin/src/engine/weft-engine" ] ||
    { echo "$bench_name: build release first (scripts/build.sh release)"; exit 1; }
  work=$(mktemp -d)
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local c
  for c in "${bench_cleanups[@]}"; do "$c" || true; done
  bench_stop_engine
  rm -rf "$work"
}


bench_stop_engine() {
  if [ -n "$engine_pid" ]; then
    kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null || true
  fi
  engine_pid=
}

bench_malloc_engine() {
  local nqn=$1 cpus=$2
  shift 2
  cat >"$work/engine.json" <<JSON
{"listen": ["127.0.0.1:0"],
 "subsystems": [{"nqn": "$nqn", "allow_any_host": true,
   "namespaces": [{"nsid": 1, "type": "malloc", "size": "128MiB", "block_size": 512}]}]}
JSON
  rm -rf "$work/data"
  taskset -c "$cpus" "$bin/src/engine/weft-engine" --config "$work/engine.json" \
    --data-dir "$work/data" --cores "$cpus" --api-listen none --metrics-listen none "$@" \
    >"$work/engine.log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 100); do
    kill -0 "$engine_pid" 2>/dev/null || break
    grep -q 'listening on' "$work/engine.log" && break
    sleep 0.05
  done
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/engine.log" | head -1 | sed 's/.*://' || true)
  if [ -z "$port" ]; then
    echo "$bench_name: the engine did not start"
    cat "$work/engine.log"
    exit 1
  fi
  # The malloc bdev maps its RAM lazily: unwritten, the first writes of a
  # run would measure page faults.
  bench_perf 1 "$nqn" -w write -o 128k -q 8 -t 1 --json >/dev/null
}

bench_perf() {
  local cpus=$1 nqn=$2
  shift 2
  taskset -c "$cpus" "$weft" nvme perf -a 127.0.0.1 -s "$port" -n "$nqn" "$@"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

bench_machine() {
  echo "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
}
