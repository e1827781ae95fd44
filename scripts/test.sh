#!/usr/bin/env bash
# Set up everything and run the whole test matrix: ruff and mypy --strict once, then
# pytest on every supported interpreter (scripts/_matrix.sh says which suites where),
# then the wheels built and tested installed. Arguments go to the 3.11 whole-suite run.
# Works on a fresh machine with python3, pyenv's 3.10.13, 3.12.1 and 3.13.0, and (as
# root) apt-get: for the Redis/PostgreSQL servers the integration tests start and the
# free-threaded 3.13t built from Debian's source package (cached outside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
source scripts/_matrix.sh
setup_system_packages
setup_venv dev
echo "== ruff"
.venv/bin/ruff check src tests benchmarks examples
echo "== mypy --strict"
.venv/bin/mypy --strict src
run_matrix "$@"
