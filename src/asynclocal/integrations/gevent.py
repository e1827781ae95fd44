"""gevent: greenlets that start in the context of the code that started them.

A greenlet starts in an *empty* `contextvars` context, so without help a
greenlet spawned while serving a request sees no store at all. This module
gives it a copy of its starter's context, the rule `asynclocal.threads`
applies to threads::

    from asynclocal.integrations import gevent as al_gevent

    al_gevent.spawn(handler, conn)        # or al_gevent.Greenlet(handler).start()
    al_gevent.install()                   # or: make gevent's own APIs do it

`install()` makes `gevent.spawn`, `gevent.spawn_later`, `gevent.spawn_raw`,
the greenlet pools (`gevent.pool.Group`/`Pool`: ``spawn``, ``apply*``,
``map*``, ``imap*``) and `gevent.threadpool.ThreadPool` (``spawn``,
``apply*``, ``map*``, and gevent's ``ThreadPoolExecutor``) carry the caller's
context. Idempotent, reversible with `uninstall()`. `gevent.Greenlet` itself is
a compiled class that cannot be patched: ``gevent.Greenlet(fn).start()`` keeps
starting empty; use this module's `Greenlet` for that form. For
`threading.Thread` under ``monkey.patch_all()`` use `asynclocal.threads.install()`.

Guarantees: each greenlet (and each pool job) runs in its own copy of the
context of the caller of ``start``/``spawn``; what it sets is never seen by its
starter or by other greenlets.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import copy_context
from typing import Any

try:
    import gevent
    import gevent.pool
    import gevent.threadpool
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "asynclocal.integrations.gevent needs the 'gevent' extra: pip install 'asynclocal[gevent]'"
    ) from exc

from .._patching import Patches
from .._storage import bind_to_context

__all__ = ["Greenlet", "install", "installed", "spawn", "spawn_later", "spawn_raw", "uninstall"]


class Greenlet(gevent.Greenlet):  # type: ignore[misc]
    """A `gevent.Greenlet` that runs in a copy of the context of the caller of `start()`."""

    def start(self) -> None:
        """Schedule the greenlet; it will run in a copy of the current context."""
        if not self.started:
            self.gr_context = copy_context()
        super().start()

    def start_later(self, seconds: float) -> None:
        """Schedule the greenlet in `seconds`, in a copy of the current context."""
        if not self.started:
            self.gr_context = copy_context()
        super().start_later(seconds)


def _check(fn: object, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what}() expected a callable, got {type(fn).__name__}")


def spawn(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Greenlet:
    """Like `gevent.spawn`: start `fn(*args, **kwargs)` in a greenlet that sees the context.

    Raises:
        TypeError: `fn` is not callable.
    """
    _check(fn, "spawn")
    greenlet: Greenlet = Greenlet.spawn(fn, *args, **kwargs)
    return greenlet


def spawn_later(seconds: float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Greenlet:
    """Like `gevent.spawn_later`, in a copy of the current context.

    Raises:
        TypeError: `fn` is not callable.
    """
    _check(fn, "spawn_later")
    greenlet: Greenlet = Greenlet.spawn_later(seconds, fn, *args, **kwargs)
    return greenlet


_orig_spawn_raw: Callable[..., Any] = gevent.spawn_raw


def spawn_raw(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Like `gevent.spawn_raw`, in a copy of the current context.

    Raises:
        TypeError: `fn` is not callable.
    """
    _check(fn, "spawn_raw")
    return _orig_spawn_raw(bind_to_context(copy_context(), fn), *args, **kwargs)


def _bound(fn: Any) -> Any:
    # Each call of the bound function runs in its own copy: map() calls it many times.
    return bind_to_context(copy_context(), fn) if callable(fn) else fn


_Mixin = gevent.pool.GroupMappingMixin
_ThreadPool = gevent.threadpool.ThreadPool
_MAPPING_METHODS = ("apply_async", "map", "map_async", "imap", "imap_unordered")


def _with_bound_func(original: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, _bound(func), *args, **kwargs)

    method.__name__ = getattr(original, "__name__", "method")
    method.__doc__ = getattr(original, "__doc__", None)
    return method


def _patches() -> list[tuple[Any, str, Any]]:
    patches: list[tuple[Any, str, Any]] = [
        (gevent, "spawn", spawn),
        (gevent, "spawn_later", spawn_later),
        (gevent, "spawn_raw", spawn_raw),
        (gevent.pool.Group, "greenlet_class", Greenlet),
        (_ThreadPool, "spawn", _with_bound_func(_ThreadPool.spawn)),
    ]
    # Pools hand some calls to a plain helper greenlet that calls spawn() later,
    # from an empty context: bind the function itself at the call.
    for name in _MAPPING_METHODS:
        patches.append((_Mixin, name, _with_bound_func(getattr(_Mixin, name))))
    return patches


# Built at each install(): the wrappers wrap the methods in place at that moment.
_installer = Patches(_patches)


def install() -> None:
    """Make gevent's spawning APIs carry the caller's context (see the module docstring).

    Idempotent. Call it after ``gevent.monkey.patch_all()`` when you use that.
    """
    _installer.install()


def uninstall() -> None:
    """Undo `install()`. Idempotent. Greenlets already started are unaffected."""
    _installer.uninstall()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _installer.installed
