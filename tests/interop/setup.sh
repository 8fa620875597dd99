#!/usr/bin/env bash
# tests/interop/setup.sh - what the kernel interop test (interop.kernel_host)
# needs on Debian 12, idempotently:
#   * installed: qemu-system-x86 nvme-cli fio cpio kmod zstd e2fsprogs xfsprogs
#     iproute2 (ss) util-linux (flock, setpriv) jq (the nexus steps);
#   * downloaded only (apt-get download, never installed on this machine): the
#     kernel package linux-image-amd64 points to, and busybox-static;
#   * assembled: kernel + initramfs in the harness cache
#     (${KNVM_CACHE:-~/.cache/weft/kernel-nvme-vm}) by `kernel-nvme-vm build`,
#     which does nothing when it is up to date.
# Run it as the user who runs the tests (root in CI); apt needs root or sudo.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

packages=(qemu-system-x86 nvme-cli fio cpio kmod zstd e2fsprogs xfsprogs iproute2 util-linux jq)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "interop setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# the package lists are needed to resolve and download the kernel and busybox
if ! apt-cache policy busybox-static 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  $SUDO apt-get update -qq
fi
"$HERE/kernel-nvme-vm" build
