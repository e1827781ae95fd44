"""Loads the optional C accelerator, `asynclocal._speedups`.

It is used when it was built (``pip install`` compiles it when a C compiler is
available) unless the environment variable ``ASYNCLOCAL_PURE_PYTHON`` is set to a
non-empty value other than ``0`` when asynclocal is imported. Without it the
pure-Python implementation in `asynclocal._fallback` and `asynclocal._snapshot`
runs: same behaviour, slower hot paths.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["PURE_PYTHON_ENV", "SPEEDUPS", "speedups"]

PURE_PYTHON_ENV = "ASYNCLOCAL_PURE_PYTHON"


def _load() -> ModuleType | None:
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:
        return importlib.import_module("asynclocal._speedups")
    except ImportError:
        return None


#: The C module, or None when the pure-Python implementation is in use.
speedups: ModuleType | None = _load()
#: True when the C accelerator is in use.
SPEEDUPS: bool = speedups is not None
