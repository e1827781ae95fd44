#!/usr/bin/env bash
# Set up everything and run the demo: a burst of concurrent requests through
# asyncio, a thread pool, a process pool and a real HTTP service, checked for mix-ups.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv demo
exec .venv/bin/python -m asynclocal demo "$@"
