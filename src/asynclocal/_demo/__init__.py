"""The demo behind `python -m asynclocal demo` (private; standard library only).

A demo is a list of phases, each a way requests travel (an event loop, a thread
pool, a process pool, later a real HTTP service). To add one, build a `Phase`
whose ``run(requests, seed, progress)`` returns a `Tally` of checked reads and
call `register(phase)` from a module imported below; give it an ``unavailable``
callable that names the missing extra when its dependencies are absent.
"""

from __future__ import annotations

from . import (
    _phases,  # noqa: F401  (registers the standard-library phases)
    _web,  # noqa: F401  (registers the web phase; skipped without the 'demo' extra)
)
from ._base import Phase, PhaseResult, Progress, Tally, phases, register
from ._cli import main, render, run_demo

__all__ = [
    "Phase",
    "PhaseResult",
    "Progress",
    "Tally",
    "main",
    "phases",
    "register",
    "render",
    "run_demo",
]
