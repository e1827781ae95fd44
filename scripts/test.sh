#!/usr/bin/env bash
# Set up everything and run the whole test suite: ruff, mypy --strict, pytest.
# Works on a fresh machine with only python3 (and apt-get, as root, for the
# Redis and PostgreSQL servers the integration tests start themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_system_packages
setup_venv dev
echo "== ruff"
.venv/bin/ruff check src tests benchmarks examples
echo "== mypy --strict"
.venv/bin/mypy --strict src
echo "== pytest"
.venv/bin/pytest "$@"
ASYNCLOCAL_PURE_PYTHON=1 .venv/bin/pytest -q tests/core
