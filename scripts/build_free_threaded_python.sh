#!/usr/bin/env bash
# Build a free-threaded CPython 3.13 (configure --disable-gil) from Debian trixie's
# python3.13 source package (the upstream tarball inside it, without Debian's patches),
# into a cache outside the repository so later runs reuse it.
#
# Prints the interpreter's path on its last line of stdout. Idempotent: a finished
# build (marked by a stamp file) is reused; a half-finished one is started over.
# Needs root and apt-get on Debian (for the deb-src entry and the build dependencies).
set -euo pipefail

cache="${ASYNCLOCAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/asynclocal}"
prefix="$cache/python3.13t"
stamp="$prefix/.asynclocal-built"
python="$prefix/bin/python3.13t"

if [ -f "$stamp" ] && [ -x "$python" ]; then
  echo "$python"
  exit 0
fi

mkdir -p "$cache"
# One build at a time (a second caller waits for the first one's result).
exec 9>"$cache/.python3.13t.lock"
flock 9
if [ -f "$stamp" ] && [ -x "$python" ]; then
  echo "$python"
  exit 0
fi

log() { echo "== [python3.13t] $*" >&2; }

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: building the free-threaded Python needs root and apt-get (Debian);" \
    "or put a free-threaded python3.13t at $python yourself" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# The source entry reuses the mirror host of the machine's own Debian sources.
host="http://deb.debian.org/debian"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  found="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  [ -n "$found" ] && host="$found"
elif [ -f /etc/apt/sources.list ]; then
  found="$(awk '$1 == "deb" && $2 !~ /security/ && $2 ~ /^http/ {print $2; exit}' /etc/apt/sources.list)"
  [ -n "$found" ] && host="$found"
fi
src_list=/etc/apt/sources.list.d/asynclocal-trixie-src.list
line="deb-src $host trixie main"
if [ ! -f "$src_list" ] || ! grep -qxF "$line" "$src_list"; then
  log "adding '$line' to $src_list"
  echo "$line" >"$src_list"
fi

# Other apt users (another engineer's set-up) may hold the locks for a while: wait.
apt_get() { apt-get -o DPkg::Lock::Timeout=900 "$@"; }
log "apt-get update"
for attempt in 1 2 3 4 5 6; do
  apt_get update -q >/dev/null && break
  [ "$attempt" = 6 ] && { echo "error: apt-get update failed" >&2; exit 1; }
  sleep 20
done

# Build dependencies from the machine's own release (bookworm).
need=()
for pkg in build-essential pkg-config libssl-dev zlib1g-dev libffi-dev libsqlite3-dev \
  libbz2-dev liblzma-dev libreadline-dev libncurses-dev uuid-dev libgdbm-dev xz-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  log "installing build dependencies: ${need[*]}"
  apt_get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

work="$cache/python3.13t-build"
rm -rf "$work" "$prefix"
mkdir -p "$work"
cd "$work"
log "apt-get source python3.13 (trixie)"
apt_get source -q --download-only python3.13/trixie >/dev/null
orig="$(ls python3.13_*.orig.tar.* | head -n 1)"
log "unpacking $orig"
tar xf "$orig"
srcdir="$(find . -maxdepth 1 -type d -name 'Python-3.13*' | head -n 1)"
cd "$srcdir"

log "configure --disable-gil --prefix=$prefix"
./configure -q --disable-gil --prefix="$prefix" --with-ensurepip=install >"$work/configure.log" 2>&1 ||
  { tail -n 50 "$work/configure.log" >&2; exit 1; }
log "make -j$(nproc)"
make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -n 50 "$work/make.log" >&2; exit 1; }
log "make install"
make install >"$work/install.log" 2>&1 || { tail -n 50 "$work/install.log" >&2; exit 1; }

"$python" -c 'import sys, ssl, sqlite3, zlib, ctypes; assert not sys._is_gil_enabled()' ||
  { echo "error: $python is not a working free-threaded build" >&2; exit 1; }
cd "$cache"
rm -rf "$work"
touch "$stamp"
log "built $("$python" -VV)"
echo "$python"
