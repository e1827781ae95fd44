"""`AsyncResource`: a captured context with an async id, as in Node's `async_hooks`."""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from contextvars import copy_context
from typing import Any, ParamSpec, TypeVar

from . import _async_ids
from ._snapshot import as_coroutine_function, make_runner

__all__ = ["AsyncResource"]

P = ParamSpec("P")
R = TypeVar("R")


class AsyncResource:
    """Work that will run later, in the context current when the resource was made.

    Construction captures the current context (every storage's store).
    `run_in_async_scope(fn)` runs `fn` inside it: each call starts from the
    captured state and discards what `fn` changed once it returns, so a
    resource may run concurrently in several threads and re-entrantly. When
    `fn` is an `async def`, the returned coroutine runs its whole body there.

    Args:
        type: a name for the kind of resource, e.g. ``"DBQuery"``; hooks see it.
        trigger_async_id: the id of the resource that caused this one; defaults
            to the id of the code running now.
        require_manual_destroy: when False (the default), the `destroy` hook is
            emitted when the resource is garbage-collected; when True, only when
            `emit_destroy()` is called.

    Raises:
        TypeError: `type` is not a string or `trigger_async_id` is not an int.
        ValueError: `type` is empty or `trigger_async_id` is negative.
    """

    __slots__ = (
        "__dict__",  # apps attach state to `execution_async_resource()`, as in Node
        "__weakref__",
        "_async_id",
        "_copy",
        "_destroyed",
        "_finalizer",
        "_runner",
        "_trigger_id",
        "_type",
    )

    def __init__(
        self,
        type: str,
        *,
        trigger_async_id: int | None = None,
        require_manual_destroy: bool = False,
    ) -> None:
        if not isinstance(type, str):
            raise TypeError(
                f"AsyncResource(type) must be a str naming the kind of resource, "
                f"got {type.__class__.__name__}"
            )
        if not type:
            raise ValueError("AsyncResource(type) must not be empty; pass e.g. 'DBQuery'")
        if trigger_async_id is None:
            trigger_async_id = _async_ids.current_execution_async_id()
        elif isinstance(trigger_async_id, bool) or not isinstance(trigger_async_id, int):
            raise TypeError(
                f"AsyncResource(trigger_async_id=...) must be an int, "
                f"got {trigger_async_id.__class__.__name__}"
            )
        elif trigger_async_id < 0:
            raise ValueError("AsyncResource(trigger_async_id=...) must be >= 0")
        self._type = type
        self._async_id = _async_ids.new_async_id()
        self._trigger_id = trigger_async_id
        self._destroyed = False
        ctx = copy_context()
        # A weak reference: the captured context is owned by the resource itself.
        ctx.run(_async_ids.frame_var.set, (self._async_id, trigger_async_id, weakref.ref(self)))
        self._copy = ctx.copy
        # runner(fn, *args, **kwargs): fn in a fresh copy of ctx (in C when accelerated).
        self._runner = make_runner(ctx)
        _async_ids.emit_init(self._async_id, type, trigger_async_id, self)
        self._finalizer: weakref.finalize[Any, Any] | None = (
            None
            if require_manual_destroy
            else weakref.finalize(self, _async_ids.emit_destroy, self._async_id)
        )

    @property
    def type(self) -> str:
        """The resource's type name."""
        return self._type

    def async_id(self) -> int:
        """This resource's unique id."""
        return self._async_id

    def trigger_async_id(self) -> int:
        """The id of the resource that caused this one."""
        return self._trigger_id

    def run_in_async_scope(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call `fn(*args, **kwargs)` in the captured context and return its result.

        Raises:
            TypeError: `fn` is not callable.
        """
        if not callable(fn):
            raise TypeError(
                f"AsyncResource.run_in_async_scope() expected a callable, got {type(fn).__name__}"
            )
        if not _async_ids.listeners:
            # The runner also gives an `async def` its whole body in the context.
            return self._runner(fn, *args, **kwargs)  # type: ignore[no-any-return]
        _async_ids.emit_before(self._async_id)
        try:
            return self._runner(fn, *args, **kwargs)  # type: ignore[no-any-return]
        finally:
            _async_ids.emit_after(self._async_id)

    def bind(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Return a callable that always runs `fn` in this resource's context.

        When `fn` is a coroutine function, so is the result
        (`inspect.iscoroutinefunction`), and its whole body runs in the context.

        Raises:
            TypeError: `fn` is not callable.
        """
        if not callable(fn):
            raise TypeError(f"AsyncResource.bind() expected a callable, got {type(fn).__name__}")

        @functools.wraps(fn)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.run_in_async_scope(fn, *args, **kwargs)

        if inspect.iscoroutinefunction(fn):
            return as_coroutine_function(bound, fn)
        return bound

    def emit_destroy(self) -> AsyncResource:
        """Emit the `destroy` hook now (at most once). Returns the resource."""
        if not self._destroyed:
            self._destroyed = True
            if self._finalizer is not None:
                self._finalizer.detach()
            _async_ids.emit_destroy(self._async_id)
        return self

    def __repr__(self) -> str:
        return (
            f"AsyncResource(type={self._type!r}, async_id={self._async_id}, "
            f"trigger_async_id={self._trigger_id})"
        )
