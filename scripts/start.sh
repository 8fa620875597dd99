#!/usr/bin/env bash
# Installs, builds and starts weft on this machine with its embedded defaults.
# Extra arguments go to weft-engine (see `weft-engine --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release weft-engine
exec build/release/src/engine/weft-engine "$@"
