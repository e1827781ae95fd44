"""async_hooks for asyncio: resource ids, trigger ids, lifecycle hooks, the execution resource.

Node's `async_hooks` API, ported to asyncio::

    from asynclocal import hooks

    def init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
        print(f"{type}({async_id}) created by {trigger_async_id}")

    hook = hooks.create_hook(init=init, destroy=lambda i: print("destroyed", i)).enable()

Resource types: ``"Task"`` (tasks, one step per start/resumption), ``"Future"``
(`loop.create_future()`), ``"Immediate"`` (`call_soon`, `call_soon_threadsafe`),
``"Timeout"`` (`call_later`, `call_at`, hence `asyncio.sleep` with a delay),
``"Executor"`` (`run_in_executor` / `asyncio.to_thread` jobs on thread pools),
``"TCPConnection"`` (connections accepted by `loop.create_server` /
`asyncio.start_server`) and user `AsyncResource` types.

Tracking is on while at least one hook is enabled (a hook without callbacks is
enough), or from the environment variable ``ASYNCLOCAL_HOOKS=1`` when the app calls
`asynclocal.enable_from_env()` (``ASYNCLOCAL_HOOKS=trace`` also logs every event on
the ``asynclocal.hooks.trace`` logger at DEBUG). With no hook enabled nothing is
installed: no task factory, no wrapper, no patched loop method.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping

from .._async_ids import (
    TOP_LEVEL_RESOURCE,
    current_execution_async_id,
    current_execution_resource,
    current_trigger_async_id,
)
from ..errors import ConfigurationWarning
from ._hook import AsyncHook, create_hook, enabled_hooks
from ._install import installed
from ._resources import CallbackResource, ProtocolResource

# What users call. `enable_from_env` stays importable here for existing code; the
# documented entry point is `asynclocal.enable_from_env()`.
__all__ = [
    "RESOURCE_TYPES",
    "TOP_LEVEL_RESOURCE",
    "AsyncHook",
    "CallbackResource",
    "ProtocolResource",
    "create_hook",
    "enabled_hooks",
    "execution_async_id",
    "execution_async_resource",
    "installed",
    "trace_hook",
    "trigger_async_id",
]

#: The built-in resource types (user `AsyncResource`s add their own names).
RESOURCE_TYPES = ("Task", "Future", "Immediate", "Timeout", "Executor", "TCPConnection")

ENV_VAR = "ASYNCLOCAL_HOOKS"


def execution_async_id() -> int:
    """The id of the resource whose code runs now; 1 at the top level.

    Tasks, callbacks, executor jobs and connections have their own id only
    while tracking is on (some hook is enabled); `AsyncResource.run_in_async_scope`
    always runs under the resource's id.
    """
    return current_execution_async_id()


def trigger_async_id() -> int:
    """The id of the resource that caused the code running now; 0 at the top level."""
    return current_trigger_async_id()


def execution_async_resource() -> object:
    """The resource object whose code runs now (never None).

    Inside a task it is the `asyncio.Task`; in a loop callback or executor job
    the `CallbackResource`; in a server connection's protocol callbacks the
    `ProtocolResource`; in `AsyncResource.run_in_async_scope` the
    `AsyncResource`; elsewhere `TOP_LEVEL_RESOURCE`. Apps may attach attributes
    to it: they live as long as the resource (as in Node).
    """
    return current_execution_resource()


_trace_logger = logging.getLogger("asynclocal.hooks.trace")


def trace_hook(logger: logging.Logger | None = None) -> AsyncHook:
    """A (disabled) hook that logs every event at DEBUG on `logger`.

    Default logger: ``asynclocal.hooks.trace``.

    Raises:
        TypeError: `logger` is not a `logging.Logger`.
    """
    if logger is None:
        logger = _trace_logger
    elif not isinstance(logger, logging.Logger):
        raise TypeError(
            f"trace_hook(logger=...) must be a logging.Logger, got {type(logger).__name__}"
        )
    log = logger.debug
    return create_hook(
        init=lambda i, t, trig, _r: log("init %s(%d) trigger=%d", t, i, trig),
        before=lambda i: log("before %d", i),
        after=lambda i: log("after %d", i),
        destroy=lambda i: log("destroy %d", i),
        promise_resolve=lambda i: log("promise_resolve %d", i),
    )


def enable_from_env(environ: Mapping[str, str] | None = None) -> AsyncHook | None:
    """Enable tracking as ``ASYNCLOCAL_HOOKS`` asks; return the hook it enabled, if any.

    ``1``/``true``/``on``/``track``: an empty hook (ids and execution resources
    are tracked); ``trace``: `trace_hook()`; unset, empty or ``0``: nothing.
    Nothing reads the variable unless this (or `asynclocal.enable_from_env`) is called.

    Any other value enables nothing and is reported with a
    `asynclocal.errors.ConfigurationWarning`; it never raises because of the environment.
    """
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return None
    if value in ("1", "true", "on", "yes", "track"):
        return create_hook().enable()
    if value == "trace":
        return trace_hook().enable()
    warnings.warn(
        f"{ENV_VAR}={value[:40]!r} is not understood and was ignored; use 1 (track ids and "
        "resources), trace (also log every event) or 0",
        ConfigurationWarning,
        stacklevel=2,
    )
    return None
