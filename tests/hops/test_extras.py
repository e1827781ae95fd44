"""Importing a hop integration without its library names the extra to install."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import importlib, sys
module, library = sys.argv[1], sys.argv[2]
sys.modules[library] = None  # makes `import library` raise ImportError
try:
    importlib.import_module(f"asynclocal.integrations.{module}")
except ImportError as exc:
    print(str(exc))
else:
    print("imported")
"""


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [
        ("grpc", "grpc", "grpc"),
        ("dramatiq", "dramatiq", "dramatiq"),
        ("arq", "arq", "arq"),
        ("taskiq", "taskiq", "taskiq"),
        ("aio_pika", "aio_pika", "aio-pika"),
        ("nats", "nats", "nats"),
    ],
)
def test_missing_library_names_the_extra(module: str, library: str, extra: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, module, library],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=dict(os.environ),
    )
    assert f"pip install 'asynclocal[{extra}]'" in proc.stdout, proc.stdout + proc.stderr
