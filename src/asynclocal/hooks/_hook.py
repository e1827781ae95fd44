"""`create_hook` and `AsyncHook`: Node's `async_hooks.createHook` for asyncio."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import _async_ids
from . import _install

__all__ = ["AsyncHook", "create_hook", "enabled_hooks"]

InitCallback = Callable[[int, str, int, object], Any]
IdCallback = Callable[[int], Any]

_lock = threading.RLock()


def _check(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(
            f"create_hook({name}=...) must be a callable or None, got "
            f"{type(value).__name__}; pass e.g. {name}=lambda async_id, *rest: ..."
        )


class AsyncHook:
    """A set of lifecycle callbacks, delivered while the hook is enabled.

    Made by `create_hook`. `enable()` and `disable()` return the hook (so
    `hook = create_hook(...).enable()` works) and are idempotent. Several hooks
    may be enabled at once; each sees every event that happens while it is
    enabled. An exception raised by a callback is logged on the
    ``asynclocal.hooks`` logger (stderr when logging is not configured) and
    does not reach the application's tasks.
    """

    __slots__ = ("_enabled", "after", "before", "destroy", "init", "promise_resolve")

    def __init__(
        self,
        init: InitCallback | None = None,
        before: IdCallback | None = None,
        after: IdCallback | None = None,
        destroy: IdCallback | None = None,
        promise_resolve: IdCallback | None = None,
    ) -> None:
        for name, value in (
            ("init", init),
            ("before", before),
            ("after", after),
            ("destroy", destroy),
            ("promise_resolve", promise_resolve),
        ):
            _check(name, value)
        self.init = init
        self.before = before
        self.after = after
        self.destroy = destroy
        self.promise_resolve = promise_resolve
        self._enabled = False

    @property
    def enabled(self) -> bool:
        """Whether the hook currently receives events."""
        return self._enabled

    def enable(self) -> AsyncHook:
        """Start delivering events to this hook. Returns the hook. Idempotent.

        The first enabled hook instruments the event-loop classes, so the
        running loop and loops created later (`asyncio.run`) are both covered.
        Work created before the first hook was enabled is not tracked.
        """
        with _lock:
            if not self._enabled:
                _install.install()
                _async_ids.add_listener(self)
                self._enabled = True
        return self

    def disable(self) -> AsyncHook:
        """Stop delivering events to this hook. Returns the hook. Idempotent.

        When no hook is left enabled, every loop method is restored to its
        original and asyncio runs exactly as without the library.
        """
        with _lock:
            if self._enabled:
                _async_ids.remove_listener(self)
                self._enabled = False
                if not any(isinstance(x, AsyncHook) for x in _async_ids.listeners):
                    _install.uninstall()
        return self

    def __repr__(self) -> str:
        names = [
            n
            for n in ("init", "before", "after", "destroy", "promise_resolve")
            if getattr(self, n) is not None
        ]
        state = "enabled" if self._enabled else "disabled"
        return f"<AsyncHook {state} callbacks={names}>"


def create_hook(
    init: InitCallback | None = None,
    before: IdCallback | None = None,
    after: IdCallback | None = None,
    destroy: IdCallback | None = None,
    promise_resolve: IdCallback | None = None,
) -> AsyncHook:
    """Create a (disabled) hook; call `.enable()` to start receiving events.

    Callbacks (each optional):
        init(async_id, type, trigger_async_id, resource): once, when a resource is made.
        before(async_id) / after(async_id): around each step the resource runs.
        destroy(async_id): exactly once, when the resource finished or was collected.
        promise_resolve(async_id): when a task or future gets its result (not on cancel).

    A hook with no callbacks still turns tracking on: `execution_async_id()`,
    `trigger_async_id()` and `execution_async_resource()` then follow tasks,
    callbacks, executor jobs and connections.

    Raises:
        TypeError: a callback is neither callable nor None.
    """
    return AsyncHook(init, before, after, destroy, promise_resolve)


def enabled_hooks() -> list[AsyncHook]:
    """The hooks enabled now, in the order they were enabled."""
    return [x for x in _async_ids.listeners if isinstance(x, AsyncHook)]
