#!/usr/bin/env bash
# Installs, builds and starts weft on this machine with its embedded default:
# a 1 GiB demo volume (a file under ./weft-data) served over NVMe/TCP on
# 127.0.0.1:4420 to any host. Arguments replace the default and go to
# weft-engine (see `scripts/start.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release weft-engine
[ $# -eq 0 ] && set -- --demo
exec build/release/src/engine/weft-engine "$@"
