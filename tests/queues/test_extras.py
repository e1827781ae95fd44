"""Importing an integration without its library names the extra to install."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, sys
for module, extra in [("celery", "celery"), ("rq", "rq"), ("gevent", "gevent")]:
    blocked = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == module}
    sys.modules[module] = None  # makes `import module` raise ImportError
    try:
        importlib.import_module(f"asynclocal.integrations.{module}")
    except ImportError as exc:
        print(module, str(exc))
    else:
        print(module, "imported")
    del sys.modules[module]
"""


def test_missing_library_raises_import_error_naming_the_extra() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    for module in ("celery", "rq", "gevent"):
        assert f"needs the '{module}' extra: pip install 'asynclocal[{module}]'" in lines[module]
