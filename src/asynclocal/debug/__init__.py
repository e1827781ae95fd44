"""The context-loss detector: find where a store goes missing, or leaks, across threads.

Turn it on with one call or an environment variable (``ASYNCLOCAL_DEBUG=1``,
read by ``import asynclocal``)::

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
from collections.abc import Mapping

from ._detector import ContextReport, clear_reports, disable, enable, enabled, reports

__all__ = [
    "ENV_VAR",
    "ContextReport",
    "clear_reports",
    "disable",
    "enable",
    "enable_from_env",
    "enabled",
    "reports",
]

ENV_VAR = "ASYNCLOCAL_DEBUG"


def enable_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Enable the detector when ``ASYNCLOCAL_DEBUG`` is 1/true/on/yes; return whether it did.

    Raises:
        ValueError: the variable holds anything but those values, 0/false/off/no or empty.
    """
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return False
    if value in ("1", "true", "on", "yes"):
        enable()
        return True
    raise ValueError(f"{ENV_VAR}={value!r} is not understood; use 1 to enable the detector or 0")
