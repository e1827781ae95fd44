"""Async resource ids, the execution frame and the hook bus.

The core owns the id counter, the "execution frame" (which resource's code runs
now) and the tuples of enabled hook callbacks, so that `AsyncResource` and
`asynclocal.hooks` share them without the core importing `asynclocal.hooks`.
While no hook is enabled every `emit_*` function is a loop over an empty tuple.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

__all__ = [
    "TOP_LEVEL_ASYNC_ID",
    "TOP_LEVEL_RESOURCE",
    "Frame",
    "HookListener",
    "add_listener",
    "current_execution_async_id",
    "current_execution_resource",
    "current_trigger_async_id",
    "emit_after",
    "emit_before",
    "emit_destroy",
    "emit_init",
    "emit_promise_resolve",
    "frame_var",
    "new_async_id",
    "remove_listener",
]

logger = logging.getLogger("asynclocal.hooks")

#: The top level has id 1 and trigger 0, as in Node; resources count up from 2.
TOP_LEVEL_ASYNC_ID = 1
_counter = itertools.count(TOP_LEVEL_ASYNC_ID + 1)
new_async_id: Callable[[], int] = _counter.__next__  # atomic under the GIL


class TopLevelResource:
    """The resource of code that runs outside every tracked resource (id 1).

    Apps may attach attributes to it, as to any other execution resource.
    """

    def __repr__(self) -> str:
        return "TopLevelResource(async_id=1)"


TOP_LEVEL_RESOURCE = TopLevelResource()

#: (execution async id, trigger async id, resource) of the code running now.
#: The resource slot holds a `weakref.ref` for `AsyncResource`s, whose own
#: captured context holds this frame (a strong reference would be a cycle).
Frame = tuple[int, int, object]
frame_var: ContextVar[Frame] = ContextVar(
    "asynclocal:execution_frame", default=(TOP_LEVEL_ASYNC_ID, 0, TOP_LEVEL_RESOURCE)
)


def current_execution_async_id() -> int:
    """The id of the resource whose code runs now (1 at the top level)."""
    return frame_var.get()[0]


def current_trigger_async_id() -> int:
    """The id of the resource that caused the code running now (0 at the top level)."""
    return frame_var.get()[1]


def current_execution_resource() -> object:
    """The resource object whose code runs now (`TOP_LEVEL_RESOURCE` at the top level)."""
    resource = frame_var.get()[2]
    if type(resource) is weakref.ReferenceType:
        target = resource()
        return TOP_LEVEL_RESOURCE if target is None else target
    return resource


class HookListener(Protocol):
    """What `asynclocal.hooks` registers on the bus: each attribute is a callable or None."""

    @property
    def init(self) -> Callable[[int, str, int, object], Any] | None: ...
    @property
    def before(self) -> Callable[[int], Any] | None: ...
    @property
    def after(self) -> Callable[[int], Any] | None: ...
    @property
    def destroy(self) -> Callable[[int], Any] | None: ...
    @property
    def promise_resolve(self) -> Callable[[int], Any] | None: ...


# Replaced (never mutated) so readers iterate a stable tuple without a lock.
listeners: tuple[HookListener, ...] = ()
_init: tuple[Callable[[int, str, int, object], Any], ...] = ()
_before: tuple[Callable[[int], Any], ...] = ()
_after: tuple[Callable[[int], Any], ...] = ()
_destroy: tuple[Callable[[int], Any], ...] = ()
_promise_resolve: tuple[Callable[[int], Any], ...] = ()


def _rebuild() -> None:
    global _init, _before, _after, _destroy, _promise_resolve
    _init = tuple(x.init for x in listeners if x.init is not None)
    _before = tuple(x.before for x in listeners if x.before is not None)
    _after = tuple(x.after for x in listeners if x.after is not None)
    _destroy = tuple(x.destroy for x in listeners if x.destroy is not None)
    _promise_resolve = tuple(x.promise_resolve for x in listeners if x.promise_resolve is not None)


def add_listener(listener: HookListener) -> None:
    """Start delivering events to `listener` (no-op when already registered)."""
    global listeners
    if not any(x is listener for x in listeners):
        listeners = (*listeners, listener)
        _rebuild()


def remove_listener(listener: HookListener) -> None:
    """Stop delivering events to `listener` (no-op when not registered)."""
    global listeners
    listeners = tuple(x for x in listeners if x is not listener)
    _rebuild()


def _report(event: str, callback: object) -> None:
    # A failing hook must not break the application: log it (the logging module's
    # last-resort handler prints to stderr when the app configured nothing) and go on.
    logger.error(
        "asynclocal: exception in async hook %s callback %r (ignored; the application continues)",
        event,
        callback,
        exc_info=True,
    )


def emit_init(async_id: int, type: str, trigger_async_id: int, resource: object) -> None:
    for cb in _init:
        try:
            cb(async_id, type, trigger_async_id, resource)
        except Exception:
            _report("init", cb)


def emit_before(async_id: int) -> None:
    for cb in _before:
        try:
            cb(async_id)
        except Exception:
            _report("before", cb)


def emit_after(async_id: int) -> None:
    for cb in _after:
        try:
            cb(async_id)
        except Exception:
            _report("after", cb)


def emit_destroy(async_id: int) -> None:
    for cb in _destroy:
        try:
            cb(async_id)
        except Exception:
            _report("destroy", cb)


def emit_promise_resolve(async_id: int) -> None:
    for cb in _promise_resolve:
        try:
            cb(async_id)
        except Exception:
            _report("promise_resolve", cb)
