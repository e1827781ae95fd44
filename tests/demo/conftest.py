"""Fixtures for the demo tests: running `python -m asynclocal demo` as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _run(
    args: list[str], *, prelude: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the demo CLI in a fresh interpreter; `prelude` is Python run before it."""
    code = f"{prelude}\nimport sys\nfrom asynclocal._demo import main\nsys.exit(main({args!r}))"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def run_demo() -> Callable[..., subprocess.CompletedProcess[str]]:
    return _run
