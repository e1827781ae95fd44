"""Shared settings and checks for the hostile-input property tests.

``ASYNCLOCAL_HYPOTHESIS_EXAMPLES`` sets the examples per property (default 200);
raise it for a longer run, e.g. ``ASYNCLOCAL_HYPOTHESIS_EXAMPLES=20000``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("ASYNCLOCAL_HYPOTHESIS_EXAMPLES", "200"))

#: The settings every property here uses: no deadline (a shared machine), no
#: example database written into the work tree.
HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: For properties whose every example times several runs (the cost checks).
FEW = settings(HOSTILE, max_examples=min(8, EXAMPLES))

#: Bound on t(8n) / t(n): linear work gives about 8, quadratic about 64.
LINEAR_BOUND = 20.0
#: A marker that no asynclocal output contains by itself: every hostile value
#: starts with it, so finding it anywhere means the value (or part of it) leaked.
MARK = "HOSTILE-7f3q"


def _timed(job: Callable[[], object], inner: int) -> float:
    # CPU time of this thread: time spent preempted by other processes on a shared
    # machine does not count (it would hit the longer run more often than the shorter).
    start = time.thread_time()
    for _ in range(inner):
        job()
    return time.thread_time() - start


def growth_ratio(
    make: Callable[[int], Callable[[], object]], n: int, factor: int = 8, rounds: int = 7
) -> float:
    """Best time of ``make(n * factor)()`` over the best time of ``make(n)()``.

    Times are this thread's CPU time. The small job is repeated enough (the same
    count for both sizes) to take a few milliseconds, and the sizes are measured
    interleaved, best of `rounds`, so noise on a shared machine touches both alike.
    A run of the large job longer than two seconds ends the measurement early (it
    is quadratic then).
    """
    small, large = make(n), make(n * factor)
    inner = 1
    while _timed(small, inner) < 0.003 and inner < 1 << 16:
        inner *= 2
    best_small = best_large = float("inf")
    for _ in range(rounds):
        best_small = min(best_small, _timed(small, inner))
        took = _timed(large, inner)
        best_large = min(best_large, took)
        if took > 2.0:
            break
    return best_large / best_small


def assert_linear(
    make: Callable[[int], Callable[[], object]], n: int, what: str, factor: int = 8
) -> None:
    """Fail when ``make`` costs clearly more than linear between `n` and ``factor * n``.

    Measured up to three times: a burst of load on a shared machine can spoil one
    measurement, while super-linear work fails every one.
    """
    bound = LINEAR_BOUND * factor / 8
    for _ in range(3):
        ratio = growth_ratio(make, n, factor)
        if ratio < bound:
            return
    assert ratio < bound, (
        f"{what}: {factor}x the input took {ratio:.1f}x the time (linear is about {factor})"
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@contextmanager
def captured_log_lines() -> Iterator[list[str]]:
    """Every message logged (DEBUG and up, any logger) inside the block, tracebacks included."""
    handler = _Collect()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
