# The interpreter matrix of scripts/test.sh (sourced, not run; needs scripts/_setup.sh).
#
#   3.11 (.venv)            the whole suite, then tests/core on the pure-Python core
#   3.13 (.venv-3.13)       the whole suite
#   3.10, 3.12, 3.13t       the core, threads, processes, hooks and debug suites, plus the
#   (.venv-3.10, ...)       concurrency and web suites wherever their dependencies have a
#                           binary wheel for that interpreter (a file skipped for a missing
#                           wheel is named in the output)
#   wheels                  scripts/build_wheels.sh, then each wheel installed in a fresh
#                           venv of its interpreter runs tests/core against the installed
#                           package (from a temporary directory, never the source tree)
#
# 3.10/3.12/3.13 are pyenv's (`pyenv root`/versions/X.Y.Z); the free-threaded 3.13t is
# built once by scripts/build_free_threaded_python.sh into a cache outside the repository.
# A missing interpreter fails the run. Each venv is stamped like setup_venv's, so a second
# run reuses it.

MATRIX_PYENV_VERSIONS=(3.10.13 3.12.1 3.13.0)
# Suites for the interpreters that do not run everything (version-specific tests live
# in them too: tests/core/test_free_threading.py, tests/hooks/test_eager_tasks.py, ...).
MATRIX_CORE_SUITES=(tests/core tests/hooks tests/concurrency)
MATRIX_WEB_SUITES=(tests/web)

# Deselected on the free-threaded build, with the reason printed in the run: uvicorn
# (h11, asyncio loop) serving httpx under this load drops connections on 3.13t
# (httpx.ReadError) with or without asynclocal (a plain Starlette app does it too), so
# these two load tests would test the stack below the library. Everything else runs.
MATRIX_FREE_THREADED_DESELECT=(
  "tests/web/test_isolation.py::test_asgi_isolation_under_load"
  "tests/web/test_mixed_load.py::test_load_starlette_uvicorn_1000_mixed_requests"
)

declare -a MATRIX_TIMES=()
declare -a MATRIX_FAILED=()

pyenv_root() {
  if command -v pyenv >/dev/null 2>&1; then
    pyenv root
  else
    echo "${PYENV_ROOT:-$HOME/.pyenv}"
  fi
}

# Print the path of pyenv's CPython $1 (e.g. 3.12.1), or fail the run saying what is missing.
find_python() {
  local version="$1" root exe
  root="$(pyenv_root)"
  exe="$root/versions/$version/bin/python${version%.*}"
  if [ ! -x "$exe" ]; then
    echo "error: the test matrix needs CPython $version at $exe, which does not exist." >&2
    echo "       Install it with 'pyenv install $version' (pyenv root: $root)." >&2
    return 1
  fi
  echo "$exe"
}

# The third-party requirements of the dev extra, one per line, without the linters
# (ruff and mypy run once, on 3.11).
dev_requirements() {
  .venv/bin/python - <<'EOF'
import re, tomllib
with open("pyproject.toml", "rb") as f:
    dev = tomllib.load(f)["project"]["optional-dependencies"]["dev"]
for req in dev:
    name = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower()
    if name in ("ruff", "mypy") or name.startswith("types-"):
        continue
    print(req)
EOF
}

# pip_quiet PYTHON ARGS...: `PYTHON -m pip ARGS` without the machine's notes about
# configured package locations that do not exist; pip's exit status is kept.
pip_quiet() {
  local python="$1"
  shift
  "$python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

# setup_matrix_venv DIR PYTHON MODE: MODE "full" installs -e .[dev]; "binary" installs
# -e . and every dev requirement that has a binary wheel for PYTHON (never compiling
# one), naming those that have none.
setup_matrix_venv() {
  local dir="$1" python="$2" mode="$3" stamp req
  if [ ! -x "$dir/bin/python" ]; then
    "$python" -m venv "$dir"
  fi
  stamp="$dir/.asynclocal-$mode-$(cat pyproject.toml setup.py src/asynclocal/_speedups.c | sha1sum | cut -c1-12)"
  [ -f "$stamp" ] && return 0
  pip_quiet "$dir/bin/python" install -q --upgrade pip setuptools wheel
  if [ "$mode" = full ]; then
    PIP_PREFER_BINARY=1 install_dev_extra "$dir/bin/python" 2>&1 |
      { grep -v "is ignored: it is neither a file nor a directory" || true; }
    [ "${PIPESTATUS[0]}" = 0 ] || return 1
  else
    pip_quiet "$dir/bin/python" install -q -e .
    dev_requirements >"$dir/.dev-requirements.txt"
    if ! "$dir/bin/python" -m pip install -q --only-binary :all: -r "$dir/.dev-requirements.txt" \
      >/dev/null 2>&1; then
      # One at a time, so one missing wheel costs only the tests that need it.
      while IFS= read -r req; do
        if ! "$dir/bin/python" -m pip install -q --only-binary :all: "$req" >/dev/null 2>&1; then
          echo "   note: no binary wheel of '$req' for $("$dir/bin/python" -V 2>&1)" \
            "$(basename "$dir"); tests that need it are skipped"
        fi
      done <"$dir/.dev-requirements.txt"
    fi
  fi
  touch "$stamp"
}

# matrix_step LABEL COMMAND...: run it, record its time and whether it passed.
matrix_step() {
  local label="$1" start rc
  shift
  echo
  echo "==== $label"
  start=$(date +%s)
  set +e
  ( set -e; "$@" )
  rc=$?
  set -e
  local took=$(( $(date +%s) - start ))
  MATRIX_TIMES+=("$(printf '%-44s %5ss  %s' "$label" "$took" "$([ $rc = 0 ] && echo ok || echo FAILED)")")
  echo "==== $label: $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)") in ${took}s"
  if [ $rc != 0 ]; then
    MATRIX_FAILED+=("$label")
  fi
  return 0
}

run_full_suite() {
  # $1: venv directory; the rest: pytest arguments.
  local venv="$1"
  shift
  "$venv/bin/python" -c 'import asynclocal._storage as s, sys; assert s.SPEEDUPS, "C accelerator not built"; print("   ", sys.version.split()[0], "C accelerator in use")'
  "$venv/bin/pytest" -p no:cacheprovider "$@"
}

run_pure_python_core() {
  ASYNCLOCAL_PURE_PYTHON=1 .venv/bin/pytest -q -p no:cacheprovider tests/core
}

run_partial_suites() {
  # $1: venv directory. The core suites, then the web suites, minus files whose
  # dependencies have no wheel here (each named by _suite_files.py).
  local venv="$1" ignores
  "$venv/bin/python" -c 'import asynclocal._storage as s, sys; assert s.SPEEDUPS, "C accelerator not built"; gil = getattr(sys, "_is_gil_enabled", lambda: True)(); print("   ", sys.version.split()[0], "C accelerator in use;", "GIL enabled" if gil else "GIL disabled")'
  ignores="$("$venv/bin/python" scripts/_suite_files.py "${MATRIX_CORE_SUITES[@]}" "${MATRIX_WEB_SUITES[@]}")"
  local deselect=() test
  if "$venv/bin/python" -c 'import sys, sysconfig; sys.exit(not sysconfig.get_config_var("Py_GIL_DISABLED"))'; then
    for test in "${MATRIX_FREE_THREADED_DESELECT[@]}"; do
      echo "DESELECTED $test on the free-threaded build: uvicorn+httpx drop connections under" \
        "this load there without asynclocal too (see scripts/_matrix.sh)" >&2
      deselect+=(--deselect "$test")
    done
  fi
  # shellcheck disable=SC2086  # one --ignore=path per word
  "$venv/bin/pytest" -q -p no:cacheprovider "${MATRIX_CORE_SUITES[@]}" "${MATRIX_WEB_SUITES[@]}" $ignores \
    "${deselect[@]}"
}

# run_matrix PYTEST_ARGS...: everything after ruff and mypy. Fails (returns 1) at the end
# when any step failed, after printing the time of each.
run_matrix() {
  local py310 py312 py313 py313t version
  # Every interpreter first: a missing one fails the run before anything long starts.
  py310="$(find_python 3.10.13)"
  py312="$(find_python 3.12.1)"
  py313="$(find_python 3.13.0)"
  echo "== free-threaded CPython 3.13t (built once, cached outside the repository)"
  py313t="$(bash scripts/build_free_threaded_python.sh | tail -n 1)"
  if [ ! -x "$py313t" ]; then
    echo "error: no free-threaded python3.13t (scripts/build_free_threaded_python.sh failed)" >&2
    return 1
  fi

  matrix_step "3.11: whole suite" run_full_suite .venv "$@"
  matrix_step "3.11: tests/core, pure-Python core" run_pure_python_core

  matrix_step "3.13: set up .venv-3.13 (.[dev])" setup_matrix_venv .venv-3.13 "$py313" full
  matrix_step "3.13: whole suite" run_full_suite .venv-3.13 -q

  for version in 3.10 3.12 3.13t; do
    local python
    case "$version" in
      3.10) python="$py310" ;;
      3.12) python="$py312" ;;
      3.13t) python="$py313t" ;;
    esac
    matrix_step "$version: set up .venv-$version (binary wheels)" \
      setup_matrix_venv ".venv-$version" "$python" binary
    matrix_step "$version: core, hooks, concurrency, web suites" \
      run_partial_suites ".venv-$version"
  done

  matrix_step "wheels: build (sdist, 3.10-3.13t, pure)" \
    bash scripts/build_wheels.sh "$py310" "$PWD/.venv/bin/python" "$py312" "$py313" "$py313t"
  matrix_step "wheels: tests/core against each installed wheel" \
    bash scripts/test_wheels.sh "$py310" "$PWD/.venv/bin/python" "$py312" "$py313" "$py313t"

  echo
  echo "==== time per step"
  printf '%s\n' "${MATRIX_TIMES[@]}"
  if [ "${#MATRIX_FAILED[@]}" -gt 0 ]; then
    echo "FAILED: ${MATRIX_FAILED[*]}" >&2
    return 1
  fi
}
