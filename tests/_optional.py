"""Optional test dependencies that some interpreters have no wheel for.

uvloop has no wheel for free-threaded builds: the cases that need it are skipped with
this reason (shown in the summary), everything else in their module still runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

try:
    import uvloop as _uvloop
except ImportError:
    _uvloop = None

#: The uvloop module, or None where it is not installed.
uvloop: Any = _uvloop
NO_UVLOOP = "uvloop is not installed (no wheel for this interpreter, e.g. free-threaded builds)"
needs_uvloop = pytest.mark.skipif(uvloop is None, reason=NO_UVLOOP)
#: The event-loop classes of the installed loop implementations.
LOOP_CLASSES: tuple[type, ...] = (
    (asyncio.BaseEventLoop,) if uvloop is None else (asyncio.BaseEventLoop, uvloop.Loop)
)


def new_uvloop_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop loop; skips the calling test where uvloop is not installed."""
    if uvloop is None:
        pytest.skip(NO_UVLOOP)
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_on_uvloop(main: Any) -> Any:
    """`uvloop.run(main)`; skips the calling test where uvloop is not installed."""
    if uvloop is None:
        main.close()
        pytest.skip(NO_UVLOOP)
    return uvloop.run(main)
