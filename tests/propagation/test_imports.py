"""Import hygiene: propagation is stdlib-only; a missing extra names itself."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import sys
import asynclocal.propagation
OPTIONAL = ("opentelemetry", "httpx", "aiohttp", "requests")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in OPTIONAL)
assert not loaded, loaded
import asynclocal.integrations.aws_lambda  # standard library only
for module, package, extra in [
    ("httpx", "httpx", "httpx"),
    ("requests", "requests", "requests"),
    ("aiohttp_client", "aiohttp", "aiohttp"),
    ("opentelemetry", "opentelemetry", "opentelemetry"),
]:
    sys.modules[package] = None
    try:
        __import__("asynclocal.integrations." + module)
    except ImportError as exc:
        assert f"pip install 'asynclocal[{extra}]'" in str(exc), str(exc)
    else:
        raise AssertionError(module + " imported without its package")
print("ok")
"""


def test_propagation_imports_without_optional_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
