#!/usr/bin/env bash
# Installs what weft needs to build and test, from Debian 12's packages.
# Idempotent and non-interactive; only missing packages are installed.
set -euo pipefail

packages=(
  build-essential g++ cmake ninja-build pkg-config git
  liburing-dev libssl-dev libisal-dev
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format clang-14 libclang-rt-14-dev
  jq bc dpkg-dev fio gnuplot-nox nftables iproute2
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libcpp-httplib-dev curl
  etcd-server
  # userspace attach (FUSE, loop devices) and the file systems it is tested with
  libfuse3-dev fuse3 xfsprogs e2fsprogs util-linux
)
# npx runs the OpenAPI validator (tests/control/openapi_validate.sh); Debian's
# nodejs and npm only when there is no npx yet, so as not to replace another
# install (nodesource's, say).
command -v npx >/dev/null || packages+=(nodejs npm)
# kubectl renders the manifests (kubectl kustomize) and runs the kubectl-weft
# plugin (tests/deploy); Debian's only when there is none (a cloud SDK's, say).
command -v kubectl >/dev/null || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
