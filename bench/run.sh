#!/usr/bin/env bash
# The benchmark suite in one command: builds weft-nvmf-bench (release),
# installs gnuplot if missing, runs the suite and writes
#   bench/out/report.md   figures, ratios to the ceilings, the machine
#   bench/out/iops.png    4 KiB random read/write IOPS vs QD, weft vs ceilings
#   bench/out/results.json, bench/out/bench.log
# Extra arguments go to weft-nvmf-bench (e.g. --seconds 1 --target-cpu 2).
# Figures are ratios measured side by side in one run (docs/architecture.md),
# never pass/fail thresholds.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"
# The output is generated: keep it out of git whatever the top-level .gitignore says.
[ -f "$out/.gitignore" ] || printf '*\n' >"$out/.gitignore"

# fio's engine needs fio's source headers (Debian's source package, once).
fio_target=()
scripts/fio-source.sh >/dev/null 2>&1 && fio_target=(weft_fio) ||
    echo "fio's source is unavailable: the fio comparison is skipped"
nice scripts/build.sh release weft-nvmf-bench weft-rr-bench weft-pool-bench weft-nexus-bench \
    weft weft-engine "${fio_target[@]}"

if ! command -v gnuplot >/dev/null; then
    echo "installing gnuplot-nox (Debian package) for the chart"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get install -y -q gnuplot-nox >/dev/null ||
        { "${sudo_cmd[@]}" apt-get update -q >/dev/null &&
          "${sudo_cmd[@]}" apt-get install -y -q gnuplot-nox >/dev/null; }
fi

# Default: 10 cases x 3 systems x 2 rounds x 2.3 s, about 2.5 minutes, then
# 128 KiB direct data receive against copying (3 cases x 5 rounds x 2), about 1 more,
# then QD1 latency interleaved (2 cases x 7 rounds x 4 systems x 0.7 s), about 40 s.
args=("$@")
[ $# -gt 0 ] || args=(--seconds 2 --warmup 0.3)
build/release/bench/weft-nvmf-bench --json "$out/results.json" --markdown "$out/tables.md" \
    --plot-data "$out/iops.dat" "${args[@]}" | tee "$out/bench.log"

# The chart: one panel per direction, log2 QD on x, log IOPS on y (equal
# ratios look like equal gaps, and the device ceiling does not flatten the rest).
# Pool volumes against the bdev under them (issue: >= 95% of raw on overwrite).
pool_args=(--seconds 1 --rounds 7 --size-mib 128)
build/release/bench/weft-pool-bench --base file "${pool_args[@]}" 2>/dev/null | grep -v "^\[" | tee "$out/pool-file.txt"
build/release/bench/weft-pool-bench --base malloc "${pool_args[@]}" 2>/dev/null | grep -v "^\[" | tee "$out/pool-malloc.txt"
build/release/bench/weft-pool-bench --base malloc --reactors 2 "${pool_args[@]}" 2>/dev/null | grep -v "^\[" |
    tee "$out/pool-malloc-2.txt"
# The nexus against the bare volume, remote children, rebuild rate (about 4 minutes).
nexus_args=(--rounds 11)  # the noise of a shared VM: medians of 11 interleaved rounds
build/release/bench/weft-nexus-bench "${nexus_args[@]}" 2>/dev/null | grep -v "^\[" | tee "$out/nexus.txt"

# fio through libweft_fio.so against `weft nvme perf` (goal: >= 0.9x), when
# the fio engine is built (scripts/fio-source.sh); about 3 minutes.
fio_args=(2 3)
if [ ${#fio_target[@]} -gt 0 ] && command -v fio >/dev/null; then
    bench/fio_bench.sh "${fio_args[@]}" | tee "$out/fio.txt"
else
    echo "libweft_fio.so or fio missing: run scripts/fio-source.sh, then bench/run.sh" | tee "$out/fio.txt"
fi
# A CPU-bound co-tenant on the target's core; two target reactors vs one (about 2 minutes).
node_args=(2 3)
bench/node_bench.sh "${node_args[@]}" | tee "$out/node.txt"
# Where the target's CPU goes (perf record -e cpu-clock; about 10 s).
bench/profile_bench.sh 5 20 | tee "$out/profile.txt"

gnuplot <<EOF
set terminal pngcairo size 1200,520 font "sans,11"
set output "$out/iops.png"
set multiplot layout 1,2 title "weft NVMe/TCP, 4 KiB random I/O, one target core"
set logscale x 2
set logscale y 10
set xrange [0.8:160]
set yrange [20:10000]
set xlabel "queue depth"
set ylabel "IOPS (thousands, log scale)"
set grid
set key bottom right box opaque
set xtics ("1" 1, "8" 8, "32" 32, "128" 128)
set title "random read"
plot "$out/iops.dat" using 1:(\$2/1000) with linespoints lw 2 pt 7 title "weft target", \
     "" using 1:(\$3/1000) with linespoints lw 2 pt 5 title "min. responder (network ceiling)", \
     "" using 1:(\$4/1000) with linespoints lw 2 pt 9 title "bdev alone (device ceiling)"
set title "random write"
plot "$out/iops.dat" using 1:(\$5/1000) with linespoints lw 2 pt 7 title "weft target", \
     "" using 1:(\$6/1000) with linespoints lw 2 pt 5 title "min. responder (network ceiling)", \
     "" using 1:(\$7/1000) with linespoints lw 2 pt 9 title "bdev alone (device ceiling)"
unset multiplot
EOF

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- src bench 2>/dev/null || commit="$commit (with uncommitted changes)"
{
    echo "# weft benchmark report"
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| CPU | ${cpu_model:-unknown} |"
    echo "| cores | $(nproc) online ($(nproc --all) total) |"
    echo "| memory | $(free -g | awk '/^Mem:/ {print $2}') GiB |"
    echo "| kernel | $(uname -sr) |"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| git commit | $commit |"
    echo "| command | \`weft-nvmf-bench ${args[*]}\` |"
    echo
    echo "Three systems per case, run back to back: **weft** (the NVMe/TCP target, one reactor),"
    echo "**responder** (bench/min_responder: canned answers, no I/O, the network and kernel"
    echo "alone) and **device** (the namespace's bdev driven directly on the target core, no"
    echo "network). The client is weft's initiator on the other core. Ratios compare figures"
    echo "of the same run; absolute figures depend on what else the machine was doing."
    echo
    echo "![4 KiB random IOPS vs queue depth](iops.png)"
    echo
    cat "$out/tables.md"
    echo
    echo "## Pool volumes vs the bdev under them"
    echo
    echo "\`weft-pool-bench ${pool_args[*]}\`: 4 KiB random I/O at QD 32 on one reactor. *raw* is the"
    echo "pool's own base bdev over the blocks of the thick volume's clusters; the timed cases run in"
    echo "interleaved rounds, and the table shows medians (and the spread of the per-round ratio)."
    echo
    echo "O_DIRECT file base (a real device):"
    echo
    echo '```'
    cat "$out/pool-file.txt"
    echo '```'
    echo
    echo "malloc base (the device costs nothing: the volume layer's own CPU cost):"
    echo
    echo '```'
    cat "$out/pool-malloc.txt"
    echo '```'
    echo
    echo "malloc base, two reactors on one volume at once (does the layer scale across cores?):"
    echo
    echo '```'
    cat "$out/pool-malloc-2.txt"
    echo '```'
    echo
    echo "## The nexus"
    echo
    echo "\`weft-nexus-bench ${nexus_args[*]}\`: the nexus over a malloc pool's volumes, in one process:"
    echo "one local child vs the bare volume (goal: >= 0.97), three children (two over loopback"
    echo "NVMe/TCP to an in-process target) vs one, the rebuild rate vs a plain copy of the same"
    echo "bytes (goal: >= 0.8), and application IOPS during a throttled rebuild. Interleaved rounds,"
    echo "medians; \`--help\` explains each case."
    echo
    echo '```'
    cat "$out/nexus.txt"
    echo '```'
    echo
    echo "## fio"
    echo
    echo "\`bench/fio_bench.sh ${fio_args[*]}\`: fio through \`libweft_fio.so\` against \`weft nvme perf\`"
    echo "on the same engine (goal: >= 0.9x). Both drive weft's initiator on one client core; at depth"
    echo "that core is the limit, and fio's own cost per I/O (its null ioengine, last line) is on top."
    echo
    echo '```'
    cat "$out/fio.txt"
    echo '```'
    echo
    echo "## Shared nodes and two cores"
    echo
    echo "\`bench/node_bench.sh ${node_args[*]}\`: the same 4 KiB cases with a CPU-bound process on the"
    echo "target's core, and two target reactors against one (target CPU per I/O from /proc)."
    echo
    echo '```'
    cat "$out/node.txt"
    echo '```'
    echo
    echo "## Where the target's CPU goes"
    echo
    echo "\`bench/profile_bench.sh 5 20\`: the top functions of a one-reactor engine under 4 KiB random"
    echo "reads at QD128 (malloc namespace). Compare with the same list from before a data-path change."
    echo
    echo '```'
    cat "$out/profile.txt"
    echo '```'
} >"$out/report.md"
echo "wrote $out/report.md and $out/iops.png"
