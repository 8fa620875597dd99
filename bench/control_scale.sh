#!/usr/bin/env bash
# The control plane at scale, on this machine: weft-control (SQLite) and three
# engines; N volumes of 3 replicas created one after another over REST, then
# GET /v1/volumes, then every volume deleted. Prints, side by side in one run:
#   - the time per volume create and delete through the control plane, and as
#     a ratio to the baseline: the same three replica creates (deletes) asked
#     of the engines directly over gRPC (`weft engine volume create`, less the
#     CLI's start-up, measured with `weft engine pool list`);
#   - GET /v1/volumes latency with N volumes (median of 5);
#   - weft-control's resident memory with N volumes.
#   bench/control_scale.sh [N]        (default 1000; build: scripts/build.sh release)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
bin=build/release/src
for b in control/weft-control engine/weft-engine cli/weft; do
  [ -x "$bin/$b" ] || { echo "build first: scripts/build.sh release" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM $p 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

"$bin/control/weft-control" --listen 127.0.0.1:0 --data-dir "$work/control" --overcommit 100 \
  --log-level warn >"$work/control.log" 2>&1 &
pids+=($!)
control_pid=$!
for _ in $(seq 100); do
  port=$(grep -o 'listening 127.0.0.1:[0-9]*' "$work/control.log" | sed 's/.*://' || true)
  [ -n "$port" ] && break
  sleep 0.1
done
url=http://127.0.0.1:$port
export WEFT_CONTROL=$url
for i in 1 2 3; do
  mkdir -p "$work/e$i"
  "$bin/engine/weft-engine" --data-dir "$work/e$i" --cores $(((i - 1) % $(nproc))) \
    --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --metrics-listen none --control "$url" \
    --node-id n$i --log-level warn >"$work/e$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do
  [ "$("$bin/cli/weft" node list --json | jq '[.nodes[] | select(.state == "online")] | length')" = 3 ] && break
  sleep 0.2
done
apis=()
for i in 1 2 3; do
  "$bin/cli/weft" pool create p$i --node n$i --disk "$work/p$i.img" --size 4GiB >/dev/null
  apis+=("$("$bin/cli/weft" node list --json | jq -r ".nodes[] | select(.id == \"n$i\") | .api")")
done

now() { date +%s.%N; }
# Baseline: the replica creates and deletes of 50 volumes asked directly.
base_n=$((n < 50 ? n : 50))
t0=$(now)
for v in $(seq "$base_n"); do
  for i in 1 2 3; do "$bin/cli/weft" engine volume create p$i base$v 5MiB --api "${apis[$((i - 1))]}" >/dev/null; done
done
t1=$(now)
for v in $(seq "$base_n"); do
  for i in 1 2 3; do "$bin/cli/weft" engine volume destroy p$i base$v --api "${apis[$((i - 1))]}" >/dev/null; done
done
t2=$(now)
# A CLI process that asks the engine next to nothing: its start-up and
# channel set-up, taken out of the baseline so that it holds the engines'
# own work.
for v in $(seq "$base_n"); do
  for i in 1 2 3; do "$bin/cli/weft" engine pool list --api "${apis[$((i - 1))]}" >/dev/null; done
done
t3=$(now)
overhead=$(echo "($t3 - $t2) / $base_n" | bc -l)
base_create=$(echo "($t1 - $t0) / $base_n - $overhead" | bc -l)
base_delete=$(echo "($t2 - $t1) / $base_n - $overhead" | bc -l)

ids=()
for v in $(seq "$n"); do ids+=("$(cat /proc/sys/kernel/random/uuid)"); done
t0=$(now)
for id in "${ids[@]}"; do
  curl -sf -X PUT "$url/v1/volumes/$id" -H 'Content-Type: application/json' \
    --data '{"size_bytes":4194304,"replicas":3}' >/dev/null
done
t1=$(now)
lat=()
for _ in 1 2 3 4 5; do
  t=$(curl -sf -o "$work/list.json" -w '%{time_total}' "$url/v1/volumes")
  lat+=("$(echo "$t * 1000" | bc -l)")
done
listed=$(jq '.volumes | length' "$work/list.json")
rss_kib=$(awk '/VmRSS/ {print $2}' /proc/$control_pid/status)
t2=$(now)
for id in "${ids[@]}"; do curl -sf -X DELETE "$url/v1/volumes/$id" >/dev/null; done
t3=$(now)
create=$(echo "($t1 - $t0) / $n" | bc -l)
delete=$(echo "($t3 - $t2) / $n" | bc -l)
median=$(printf '%s\n' "${lat[@]}" | sort -n | sed -n 3p)
printf 'control plane at scale: %d volumes x 3 replicas, 3 engines, SQLite store (%s)\n' "$n" "$(nproc) CPUs"
printf '  (baseline: 3 `weft engine volume create` calls less 3 `weft engine pool list` calls, i.e. the engines'"'"' own work; CLI start-up %.1f ms per 3 calls)\n' \
  "$(echo "$overhead * 1000" | bc -l)"
printf '  create: %.1f ms per volume over REST; baseline: %.1f ms; ratio %.2fx\n' \
  "$(echo "$create * 1000" | bc -l)" "$(echo "$base_create * 1000" | bc -l)" "$(echo "$create / $base_create" | bc -l)"
printf '  delete: %.1f ms per volume over REST; baseline: %.1f ms; ratio %.2fx\n' \
  "$(echo "$delete * 1000" | bc -l)" "$(echo "$base_delete * 1000" | bc -l)" "$(echo "$delete / $base_delete" | bc -l)"
printf '  GET /v1/volumes with %d volumes: %.0f ms (median of 5)\n' "$listed" "$median"
printf '  weft-control resident memory with %d volumes: %.1f MiB\n' "$n" "$(echo "$rss_kib / 1024" | bc -l)"
