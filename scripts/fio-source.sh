#!/usr/bin/env bash
# Fetches Debian's fio source package at the version of the installed fio and
# configures it the way debian/rules does, so that src/fio (the weft fio
# engine) compiles against headers whose struct layouts (thread_data,
# io_u, fio_file, ioengine_ops) match /usr/bin/fio. Debian ships no fio
# headers; an engine built against another version or other configure
# options loads but corrupts memory, so the version must match exactly.
#
#   scripts/fio-source.sh [DIR]   # prints the source dir (WEFT_FIO_SOURCE_DIR)
#
# DIR defaults to build/fio-src. Idempotent: does nothing when DIR already
# holds a configured tree of the installed version. Needs root (or sudo) for
# apt-get update when the deb-src entry is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${1:-$PWD/build/fio-src}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

if ! version=$(dpkg-query -W -f='${Version}' fio 2>/dev/null) || [ -z "$version" ]; then
  echo "fio-source: fio is not installed (apt-get install fio)" >&2
  exit 1
fi
upstream=${version%-*}
upstream=${upstream#*:}
tree="$cache/fio-$upstream"
stamp="$tree/.weft-configured-$version"
if [ -f "$stamp" ] && [ -f "$tree/config-host.h" ]; then
  echo "$tree"
  exit 0
fi

sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
src_list=/etc/apt/sources.list.d/weft-src.sources
if [ ! -f "$src_list" ]; then
  $sudo tee "$src_list" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $sudo apt-get update -qq >&2
fi

cd "$cache"
if ! ls fio_"$upstream"*.dsc >/dev/null 2>&1; then
  if ! apt-get source --download-only "fio=$version" >&2; then
    # The deb-src index may predate the entry (a fresh container): refresh once.
    $sudo apt-get update -qq >&2
    apt-get source --download-only "fio=$version" >&2
  fi
fi
rm -rf "$tree"
# dpkg-source extracts the orig tarball and applies debian/patches (some
# touch build files and headers), as the Debian build does.
dpkg-source --no-check -x fio_"${version#*:}".dsc "$tree" >&2

# Debian's debian/rules (3.33-3) runs: ./configure --disable-native
# --prefix=/usr --enable-gfio --enable-libnbd, with dpkg-buildflags' CFLAGS.
# --enable-gfio (the GTK front end) and --enable-libnbd (the nbd engine) need
# their -dev packages and change no struct fio shares with an engine, so they
# are left out; so are the libraries the Debian build finds (libaio, rdma,
# numa, ...): in the headers they only add members to io_u's trailing union,
# whose size POSIX aio's struct aiocb (detected here too) already sets.
# --disable-native matters: it keeps arch-specific CONFIG_ flags as Debian's.
cd "$tree"
configure_args=(--prefix=/usr)
if grep -q -- '--disable-native' debian/rules; then configure_args+=(--disable-native); fi
./configure "${configure_args[@]}" --extra-cflags="$(dpkg-buildflags --get CFLAGS 2>/dev/null)" >&2
touch "$stamp"
echo "$tree"
