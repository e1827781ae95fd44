"""gevent greenlets start with an empty context; `asynclocal.integrations.gevent` fixes that.

The checks run in a subprocess (`_gevent_checks.py`) because `monkey.patch_all()`
must not leak into the rest of the test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gevent", reason="gevent is not installed (no wheel for this interpreter)")

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    "native_spawn_starts_empty",
    "helper_spawn_interleaved_requests",
    "greenlet_class_captures_at_start",
    "greenlet_changes_stay_in_the_greenlet",
    "installed_gevent_apis",
    "uninstall_restores_gevent",
    "monkey_patched_threads_with_asynclocal_threads",
    "helpers_validate_input",
]


@pytest.fixture(scope="module")
def gevent_results() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_gevent_checks.py"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results: dict[str, Any] = json.loads(proc.stdout)
    return results


@pytest.mark.parametrize("name", CHECKS)
def test_gevent(gevent_results: dict[str, Any], name: str) -> None:
    pairs = gevent_results[name]
    assert pairs, f"{name} produced no observations"
    mismatches = [(expected, got) for expected, got in pairs if expected != got]
    assert not mismatches, f"{name}: (expected, seen) {mismatches[:5]}"
