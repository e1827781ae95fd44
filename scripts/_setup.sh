# Shared set-up steps for scripts/test.sh and scripts/demo.sh (sourced, not run).

setup_venv() {
  # $1: the extra to install (dev or demo).
  local extra="$1" stamp
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  # setup.py and the C source too: the install compiles asynclocal._speedups in place.
  stamp=".venv/.asynclocal-$extra-$(cat pyproject.toml setup.py src/asynclocal/_speedups.c | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    if [ "$extra" = "dev" ]; then
      install_dev_extra .venv/bin/python
    else
      .venv/bin/python -m pip install -q -e ".[$extra]"
    fi
    touch "$stamp"
  fi
}

install_dev_extra() {
  # $1: the venv's python. The dev extra, editable, plus what it cannot list.
  "$1" -m pip install -q -e ".[dev]"
  # arq pins redis<6, which Celery's Redis transport excludes; it runs on redis 8.
  "$1" -m pip install -q --no-deps "arq>=0.26" "click>=8"
}

setup_system_packages() {
  # Real servers for the integration tests; the tests start and stop them.
  local need=()
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
  # wrk: the end-to-end load generator of benchmarks/bench_web.py.
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    need+=(rabbitmq-server)
  fi
  if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
  fi
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "== installing ${need[*]} with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >/dev/null
      apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    else
      echo "warning: ${need[*]} missing and apt-get unavailable; those tests will fail" >&2
    fi
  fi
}
