"""The context-loss detector: find where a store goes missing, or leaks, across threads.

Turn it on with one call, or with ``ASYNCLOCAL_DEBUG=1`` read by an explicit
`asynclocal.enable_from_env()` (importing never reads the environment)::

    import asynclocal.debug
    asynclocal.debug.enable()

It watches `threading.Thread` starts, `ThreadPoolExecutor` jobs (and with them
`loop.run_in_executor` and `asyncio.to_thread`) and
`concurrent.futures.Future.add_done_callback` callbacks. For each, it reports:

* ``"lost"``: a store that was visible where the work was scheduled is missing
  where it runs (a thread or pool job started without propagation, a callback
  registered through an API that drops the context);
* ``"leak"``: the work sees a store it was not scheduled with (a pooled worker
  thread still holding a previous job's or another request's store).

Each report carries the stack where the work was scheduled; reports go to the
``asynclocal.debug`` logger at WARNING and to `reports()`. Off by default, and
free when off: nothing is patched until `enable()`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

from ..errors import ConfigurationWarning
from ._detector import ContextReport, clear_reports, disable, enable, enabled, reports

# `enable_from_env` stays importable here for existing code; the documented entry
# point is `asynclocal.enable_from_env()`.
__all__ = [
    "ContextReport",
    "clear_reports",
    "disable",
    "enable",
    "enabled",
    "reports",
]

ENV_VAR = "ASYNCLOCAL_DEBUG"


def enable_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Enable the detector when ``ASYNCLOCAL_DEBUG`` is 1/true/on/yes; return whether it did.

    0/false/off/no or empty enable nothing; any other value enables nothing and is
    reported with a `asynclocal.errors.ConfigurationWarning` (never an exception).
    """
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return False
    if value in ("1", "true", "on", "yes"):
        enable()
        return True
    warnings.warn(
        f"{ENV_VAR}={value[:40]!r} is not understood and was ignored; use 1 to enable the "
        "detector or 0",
        ConfigurationWarning,
        stacklevel=2,
    )
    return False
