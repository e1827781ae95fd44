"""Async resource ids and the hook bus shared by `AsyncResource` and `asynclocal.hooks`.

The core owns the id counter and the list of enabled hook callbacks so that
`asynclocal.hooks` can build on it without the core importing it. While no hook
is enabled every `emit_*` function is a cheap no-op.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

__all__ = [
    "HookListener",
    "add_listener",
    "current_execution_async_id",
    "current_trigger_async_id",
    "emit_after",
    "emit_before",
    "emit_destroy",
    "emit_init",
    "emit_promise_resolve",
    "execution_async_id_var",
    "new_async_id",
    "remove_listener",
]

#: The top level has id 1 and trigger 0, as in Node; resources count up from 2.
TOP_LEVEL_ASYNC_ID = 1
_counter = itertools.count(TOP_LEVEL_ASYNC_ID + 1)
new_async_id: Callable[[], int] = _counter.__next__  # atomic under the GIL

execution_async_id_var: ContextVar[int] = ContextVar(
    "asynclocal:execution_async_id", default=TOP_LEVEL_ASYNC_ID
)
trigger_async_id_var: ContextVar[int] = ContextVar("asynclocal:trigger_async_id", default=0)


def current_execution_async_id() -> int:
    """The id of the resource whose code runs now (1 at the top level)."""
    return execution_async_id_var.get()


def current_trigger_async_id() -> int:
    """The id of the resource that caused the code running now (0 at the top level)."""
    return trigger_async_id_var.get()


class HookListener(Protocol):
    """What `asynclocal.hooks` registers on the bus."""

    def init(self, async_id: int, type: str, trigger_async_id: int, resource: object) -> None: ...
    def before(self, async_id: int) -> None: ...
    def after(self, async_id: int) -> None: ...
    def destroy(self, async_id: int) -> None: ...
    def promise_resolve(self, async_id: int) -> None: ...


# Replaced (never mutated) so readers iterate a stable tuple without a lock.
listeners: tuple[HookListener, ...] = ()


def add_listener(listener: HookListener) -> None:
    global listeners
    if listener not in listeners:
        listeners = (*listeners, listener)


def remove_listener(listener: HookListener) -> None:
    global listeners
    listeners = tuple(x for x in listeners if x is not listener)


def _report(event: str, exc: BaseException) -> None:
    # A failing hook must not break the application; say so on stderr like Node
    # does for uncaught hook errors, but keep running.
    print(f"asynclocal: exception in async hook {event}: {exc!r}", file=sys.stderr)


def _emit(event: str, *args: Any) -> None:
    for listener in listeners:
        try:
            getattr(listener, event)(*args)
        except Exception as exc:
            _report(event, exc)


def emit_init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
    if listeners:
        _emit("init", async_id, type, trigger_async_id, resource)


def emit_before(async_id: int) -> None:
    if listeners:
        _emit("before", async_id)


def emit_after(async_id: int) -> None:
    if listeners:
        _emit("after", async_id)


def emit_destroy(async_id: int) -> None:
    if listeners:
        _emit("destroy", async_id)


def emit_promise_resolve(async_id: int) -> None:
    if listeners:
        _emit("promise_resolve", async_id)
