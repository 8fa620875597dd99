#!/usr/bin/env bash
# The control plane at scale, on this machine: weft-control (SQLite) and three
# engines; N volumes of 3 replicas created one after another over REST (one
# HTTP connection), then
# GET /v1/volumes, then every volume deleted. Prints, side by side in one run:
#   - the time per volume create and delete through the control plane, and as
#     a ratio to the baseline: the same three replica creates (destroys) per
#     volume, three at once, asked of the engines directly over gRPC by one
#     process (weft-engine-calls-bench);
#   - GET /v1/volumes latency with N volumes (median of 5);
#   - weft-control's resident memory with N volumes;
#   - a reconcile pass with nothing to do over N (unpublished) volumes
#     (/v1/status last_reconcile).
#   bench/control_scale.sh [N]        (default 1000; build: scripts/build.sh release)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
bin=build/release/src
for b in control/weft-control engine/weft-engine cli/weft ../bench/weft-engine-calls-bench; do
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
# Baseline: the same replica creates and destroys (three at once per volume,
# as weft-control does them) asked of the engines directly, from one process
# with its gRPC channels up (bench/engine_calls_bench.cc).
base_n=$((n < 200 ? n : 200))
base=$("$bin/../bench/weft-engine-calls-bench" --count "$base_n" \
  --api "${apis[0]}" --pool p1 --api "${apis[1]}" --pool p2 --api "${apis[2]}" --pool p3) ||
  { echo "control_scale: the baseline failed" >&2; exit 1; }
base_create=$(awk '/create_ms/ {print $2 / 1000}' <<<"$base")
base_delete=$(awk '/delete_ms/ {print $2 / 1000}' <<<"$base")

ids=()
for v in $(seq "$n"); do ids+=("$(cat /proc/sys/kernel/random/uuid)"); done
t0=$(now)
# One curl for all the requests, one after another on one connection: a curl
# process per request would cost more than the control plane (~28 ms here).
urls=()
for id in "${ids[@]}"; do urls+=("$url/v1/volumes/$id"); done
codes=$(curl -s -X PUT -H 'Content-Type: application/json' --data '{"size_bytes":4194304,"replicas":3}' \
  -o /dev/null -w '%{http_code}\n' "${urls[@]}")
[ "$(grep -c '^201$' <<<"$codes")" = "$n" ] || { echo "control_scale: creates failed: $(sort <<<"$codes" | uniq -c)" >&2; exit 1; }
t1=$(now)
lat=()
for _ in 1 2 3 4 5; do
  t=$(curl -sf -o "$work/list.json" -w '%{time_total}' "$url/v1/volumes")
  lat+=("$(echo "$t * 1000" | bc -l)")
done
listed=$(jq '.volumes | length' "$work/list.json")
rss_kib=$(awk '/VmRSS/ {print $2}' /proc/$control_pid/status)
# A reconcile pass with nothing to do: the first that saw every volume.
pass_ms=-
for _ in $(seq 100); do
  st=$(curl -sf "$url/v1/status")
  if [ "$(jq .last_reconcile.volumes <<<"$st")" = "$n" ]; then
    pass_ms=$(jq .last_reconcile.ms <<<"$st")
    break
  fi
  sleep 0.2
done
t2=$(now)
codes=$(curl -s -X DELETE -o /dev/null -w '%{http_code}\n' "${urls[@]}")
[ "$(grep -c '^204$' <<<"$codes")" = "$n" ] || { echo "control_scale: deletes failed: $(sort <<<"$codes" | uniq -c)" >&2; exit 1; }
t3=$(now)
create=$(echo "($t1 - $t0) / $n" | bc -l)
delete=$(echo "($t3 - $t2) / $n" | bc -l)
median=$(printf '%s\n' "${lat[@]}" | sort -n | sed -n 3p)
printf 'control plane at scale: %d volumes x 3 replicas, 3 engines, SQLite store (%s)\n' "$n" "$(nproc) CPUs"
printf '  (baseline: the same 3 replica creates / destroys per volume, 3 at once, asked of the engines over gRPC by one process; %d volumes)\n' "$base_n"
printf '  create: %.1f ms per volume over REST; baseline: %.1f ms; ratio %.2fx\n' \
  "$(echo "$create * 1000" | bc -l)" "$(echo "$base_create * 1000" | bc -l)" "$(echo "$create / $base_create" | bc -l)"
printf '  delete: %.1f ms per volume over REST; baseline: %.1f ms; ratio %.2fx\n' \
  "$(echo "$delete * 1000" | bc -l)" "$(echo "$base_delete * 1000" | bc -l)" "$(echo "$delete / $base_delete" | bc -l)"
printf '  GET /v1/volumes with %d volumes: %.0f ms (median of 5)\n' "$listed" "$median"
printf '  weft-control resident memory with %d volumes: %.1f MiB\n' "$n" "$(echo "$rss_kib / 1024" | bc -l)"
printf '  a reconcile pass with nothing to do over %d volumes: %.1f ms\n' "$n" "$pass_ms"
