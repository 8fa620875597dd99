#!/usr/bin/env bash
# Installs, builds and runs every test: the Release build, then the
# sanitizer build (ASan + UBSan), with 20 s of each fuzz target (clang 14)
# between the sanitizer build and its tests. The kernel interop tests (label
# interop: QEMU VMs, run one at a time) and the multi-node fault scenarios
# (label cluster: engines in network namespaces, killed and cut off under
# fio) run once, against the sanitizer build, where a memory error in what
# the Linux kernel sends or on a fault path shows; the Release pass runs
# everything else. Ends with ctest's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "=== setup ($(date +%T))"
scripts/setup.sh || exit 1
# The kernel interop test's QEMU, nvme-cli, fio and guest image.
tests/interop/setup.sh || exit 1
# Debian's fio source at the installed version, for the fio engine's headers.
scripts/fio-source.sh >/dev/null || echo "fio source unavailable: libweft_fio.so and its test are skipped"
jobs=$(nproc)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

status=0
for flavour in release asan; do
  echo "=== $flavour: build ($(date +%T))"
  scripts/build.sh "$flavour" || exit 1
  if [ "$flavour" = asan ]; then
    echo "=== fuzz ($(date +%T))"
    scripts/fuzz.sh 20 || status=1
  fi
  echo "=== $flavour: test ($(date +%T))"
  only=()
  [ "$flavour" = release ] && only=(-LE 'interop|cluster')
  ctest --test-dir "build/$flavour" --output-on-failure -j "$jobs" --timeout 600 "${only[@]}" || status=1
done
echo "=== done ($(date +%T))"
exit $status
