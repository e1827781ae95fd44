"""The demo's building blocks: phases, their results, the registry and the progress bar."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Phase", "PhaseResult", "Progress", "Tally", "phases", "register"]


@dataclass
class Tally:
    """What one phase saw: store reads checked and the mix-ups among them (thread-safe)."""

    checks: int = 0
    mixups: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, expected: object, seen: object, where: str) -> bool:
        """Count one store read; record a mix-up when `seen` is not `expected`."""
        with self._lock:
            self.checks += 1
            if seen != expected:
                self.mixups.append(f"{where}: expected {expected!r}, saw {seen!r}")
                return False
            return True


@dataclass(frozen=True)
class PhaseResult:
    """The outcome of one phase, as shown in the summary table."""

    name: str
    requests: int
    checks: int
    mixups: tuple[str, ...]
    seconds: float
    note: str = ""


class Progress:
    """A dependency-free text progress bar on stderr.

    Redrawn in place on a terminal; elsewhere (CI logs) one line per quarter.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, enabled: bool = True):
        self.label = label
        self.total = max(1, total)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._last_quarter = -1

    def advance(self, n: int = 1) -> None:
        """Record `n` finished requests (callable from any thread)."""
        with self._lock:
            self.done = min(self.total, self.done + n)
            self._draw(final=False)

    def finish(self) -> None:
        with self._lock:
            self.done = self.total
            self._draw(final=True)

    def _draw(self, final: bool) -> None:
        if not self.enabled:
            return
        fraction = self.done / self.total
        if self._tty:
            now = time.monotonic()
            if not final and now - self._last_draw < 0.05:
                return
            self._last_draw = now
            self.stream.write("\r" + self._bar(fraction) + ("\n" if final else ""))
        else:
            quarter = int(fraction * 4)
            if quarter == self._last_quarter:
                return
            self._last_quarter = quarter
            self.stream.write(self._bar(fraction) + "\n")
        self.stream.flush()

    def _bar(self, fraction: float) -> str:
        width = 30
        filled = int(width * fraction)
        return (
            f"{self.label:<10} [{'#' * filled}{'.' * (width - filled)}] "
            f"{fraction * 100:5.1f}% {self.done}/{self.total}"
        )


@dataclass(frozen=True)
class Phase:
    """One way requests travel in the demo.

    Attributes:
        name: short name, used by ``--phases`` and in the summary.
        description: one line for ``--help``.
        run: ``run(requests, seed, progress) -> (tally, note)``; must call
            ``progress.advance()`` once per finished request.
        unavailable: returns why the phase cannot run here (e.g. a missing
            extra), or None when it can.
    """

    name: str
    description: str
    run: Callable[[int, int, Progress], tuple[Tally, str]]
    unavailable: Callable[[], str | None] = lambda: None


_registry: dict[str, Phase] = {}


def register(phase: Phase) -> Phase:
    """Add a phase to the demo (in registration order). A name can be registered once."""
    if not isinstance(phase, Phase):
        raise TypeError(f"register() expected a Phase, got {type(phase).__name__}")
    if phase.name in _registry:
        raise ValueError(f"a demo phase named {phase.name!r} is already registered")
    _registry[phase.name] = phase
    return phase


def phases() -> list[Phase]:
    """Every registered phase, in order."""
    return list(_registry.values())
