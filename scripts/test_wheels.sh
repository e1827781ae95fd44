#!/usr/bin/env bash
# Install each wheel of dist/ (scripts/build_wheels.sh) into a fresh venv of its
# interpreter and run tests/core against the installed package: from a temporary
# directory holding only a copy of tests/ and the pytest settings, without PYTHONPATH,
# after checking that `asynclocal` is imported from the venv's site-packages.
#
#   bash scripts/test_wheels.sh PYTHON...   (the pure-Python wheel runs on the first
#                                            interpreter given that is not free-threaded)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
[ "$#" -gt 0 ] || { echo "usage: scripts/test_wheels.sh PYTHON..." >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/run"
cp -r tests "$tmp/run/tests"
find "$tmp/run/tests" -name __pycache__ -prune -exec rm -rf {} +
cp pyproject.toml "$tmp/run/"  # [tool.pytest.ini_options] only; src/ is not copied

failed=()
test_one() {
  # $1 python, $2 wheel, $3 label, $4 "pure" or "binary"
  local python="$1" wheel="$2" label="$3" kind="$4" venv="$tmp/venv-$3" start
  start=$(date +%s)
  echo "== $label: $(basename "$wheel")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q "$repo/$wheel" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/python" -m pip install -q --only-binary :all: pytest pytest-asyncio pytest-timeout \
    anyio trio "sqlalchemy[asyncio]" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/python" -m pip install -q --only-binary :all: uvloop >/dev/null 2>&1 ||
    echo "   (no uvloop wheel here: its cases are skipped)"
  local args=(-q -p no:cacheprovider tests/core)
  if [ "$kind" = pure ]; then
    # The wheel has no C accelerator: the test that asks for it is deselected.
    args+=(--deselect tests/core/test_speedups.py::test_the_environment_variable_selects_the_implementation)
  fi
  local pure_env=""
  [ "$kind" = pure ] && pure_env=1  # the suite then expects the pure-Python core
  if (
    cd "$tmp/run"
    unset PYTHONPATH
    export ASYNCLOCAL_PURE_PYTHON="$pure_env"
    "$venv/bin/python" - "$kind" <<'PY'
import importlib.util, sys, sysconfig
import asynclocal, asynclocal._storage as s
site = sysconfig.get_paths()["purelib"]
assert asynclocal.__file__.startswith(site), f"asynclocal imported from {asynclocal.__file__}, not {site}"
has_ext = importlib.util.find_spec("asynclocal._speedups") is not None
assert has_ext is (sys.argv[1] == "binary"), f"C accelerator present: {has_ext}"
assert s.SPEEDUPS is has_ext, s.SPEEDUPS
print("   asynclocal", asynclocal.__version__, "from", asynclocal.__file__, "C accelerator:", s.SPEEDUPS)
PY
    "$venv/bin/python" -m pytest "${args[@]}"
  ); then
    echo "== $label: ok in $(( $(date +%s) - start ))s"
  else
    echo "== $label: FAILED" >&2
    failed+=("$label")
  fi
}

pure_done=""
for python in "$@"; do
  tag="$("$python" -c 'import sys, sysconfig; t = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-cp{sys.version_info[0]}{sys.version_info[1]}{t}")')"
  wheel="$(ls dist/asynclocal-*-"$tag"-manylinux*.whl 2>/dev/null | head -n 1 || true)"
  if [ -z "$wheel" ]; then
    echo "error: no manylinux wheel for $tag in dist/ (run scripts/build_wheels.sh)" >&2
    failed+=("$tag")
    continue
  fi
  test_one "$python" "$wheel" "$tag" binary
  if [ -z "$pure_done" ] && [ "${tag%t}" = "$tag" ]; then
    pure_done=1
    test_one "$python" "$(ls dist/asynclocal-*-py3-none-any.whl)" "pure-on-${tag%%-*}" pure
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED wheels: ${failed[*]}" >&2
  exit 1
fi
