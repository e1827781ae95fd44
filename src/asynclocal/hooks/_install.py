"""Install and remove the event-loop instrumentation behind `asynclocal.hooks`.

While at least one hook is enabled, these methods of every event-loop class
(`asyncio.BaseEventLoop`, which covers the selector and proactor loops, and
`uvloop.Loop` when uvloop is installed) are replaced by thin wrappers:
`create_task`, `create_future`, `call_soon`, `call_soon_threadsafe`,
`call_later`, `call_at`, `run_in_executor` and `create_server`. Patching the
classes (not one loop) covers the running loop and every loop created later,
including by `asyncio.run`, and leaves any task factory the app set alone.
When the last hook is disabled every original method is put back: asyncio then
runs exactly as without the library.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import os
import threading
from asyncio import events, futures
from collections.abc import Callable
from types import BuiltinMethodType, CoroutineType, FunctionType, MethodType
from typing import Any

from .. import _async_ids as _ids
from .._async_ids import emit_init, frame_var, new_async_id
from .._patching import Patches
from ._resources import CallbackResource, ConnectionFactory, FutureWatch, HookedCoroutine

__all__ = ["install", "installed", "patched_classes", "uninstall"]

logger = logging.getLogger("asynclocal.hooks")

_FUTURE_TYPES: tuple[type, ...] = (asyncio.Future, futures._PyFuture)  # type: ignore[attr-defined]
# Callbacks bound to these are asyncio's own plumbing (task steps and wake-ups,
# transport -> protocol calls), not work the application scheduled.
_INTERNAL_OWNERS: tuple[type, ...] = (*_FUTURE_TYPES, asyncio.BaseProtocol, asyncio.BaseTransport)
_INTERNAL_MODULES = ("asyncio.", "uvloop")
# The loop's own housekeeping coroutines (run by asyncio.run at shutdown, or per
# accepted connection) are not application work: they are not reported as tasks.
_HOUSEKEEPING = frozenset(
    {"shutdown_asyncgens", "shutdown_default_executor", "_accept_connection2"}
)
_LOOP_SOURCES = (os.path.dirname(asyncio.__file__) + os.sep, "uvloop")
_PASS_TYPES: set[type] = {CallbackResource}
_DUMMY_CONTEXT = contextvars.Context()
_iscoroutine = asyncio.iscoroutine


def _noop() -> None:
    pass


def _is_internal(callback: Any, kind: type) -> bool:
    if kind is FunctionType:
        module = callback.__module__
    elif kind is MethodType:
        if isinstance(callback.__self__, _INTERNAL_OWNERS):
            return True
        module = callback.__func__.__module__
    else:
        owner = getattr(callback, "__self__", None)
        if owner is not None and isinstance(owner, _INTERNAL_OWNERS):
            if kind is not BuiltinMethodType:
                # A type made only for asyncio's plumbing (the C Task's step
                # wrapper): remember it so the next check is one set lookup.
                _PASS_TYPES.add(kind)
            return True
        module = getattr(callback, "__module__", None)
    return type(module) is str and module.startswith(_INTERNAL_MODULES)


def _is_housekeeping(coro: Any) -> bool:
    code = getattr(coro, "cr_code", None)
    return (
        code is not None
        and code.co_name in _HOUSEKEEPING
        and code.co_filename.startswith(_LOOP_SOURCES)
    )


def _wrap_create_task(orig: Callable[..., Any]) -> Callable[..., Any]:
    def create_task(self: Any, coro: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            not _ids.listeners
            or (type(coro) is not CoroutineType and not _iscoroutine(coro))
            or _is_housekeeping(coro)
        ):
            return orig(self, coro, *args, **kwargs)
        trigger = frame_var.get()[0]
        wrapper = HookedCoroutine(coro, trigger)
        task = orig(self, wrapper, *args, **kwargs)
        # An eager task (3.12+ eager_task_factory, 3.14 eager_start=True) already ran its
        # first step inside orig() and reported itself (state 1), or even finished
        # (state 2, frame cleared): only a task that has not started is reported here.
        if wrapper._state == 0:
            async_id = wrapper._async_id
            wrapper._frame = (async_id, trigger, task)
            wrapper._state = 1
            if _ids._init:
                emit_init(async_id, "Task", trigger, task)
        return task

    return create_task


def _wrap_create_future(orig: Callable[..., Any]) -> Callable[..., Any]:
    def create_future(self: Any) -> Any:
        fut = orig(self)
        if _ids.listeners:
            async_id = new_async_id()
            if _ids._init:
                emit_init(async_id, "Future", frame_var.get()[0], fut)
            fut.add_done_callback(FutureWatch(async_id), context=_DUMMY_CONTEXT)
        return fut

    return create_future


def _wrap_call_soon(orig: Callable[..., Any]) -> Callable[..., Any]:
    def call_soon(self: Any, callback: Any, *args: Any, context: Any = None) -> Any:
        kind = type(callback)
        if kind in _PASS_TYPES or not _ids.listeners:
            return orig(self, callback, *args, context=context)
        if kind is FutureWatch:
            # The future got its result just now: report it without a loop turn.
            callback.resolved(args[0])
            return events.Handle(_noop, (), self, _DUMMY_CONTEXT)
        if context is not None and len(args) == 1 and isinstance(args[0], _FUTURE_TYPES):
            # A future dispatching its done-callbacks (with the context that
            # add_done_callback captured): they run as part of the resource
            # that registered them, e.g. a task waking up.
            return orig(self, callback, *args, context=context)
        if not callable(callback) or _is_internal(callback, kind):
            return orig(self, callback, *args, context=context)
        return orig(self, CallbackResource("Immediate", callback), *args, context=context)

    return call_soon


def _wrap_timer(orig: Callable[..., Any]) -> Callable[..., Any]:
    def call_timer(self: Any, when: Any, callback: Any, *args: Any, context: Any = None) -> Any:
        if type(callback) is CallbackResource or not _ids.listeners or not callable(callback):
            return orig(self, when, callback, *args, context=context)
        return orig(self, when, CallbackResource("Timeout", callback), *args, context=context)

    return call_timer


def _executor_job(func: Any) -> Any:
    """`func` wrapped as an ``"Executor"`` resource whose frame its code can see.

    `asyncio.to_thread` submits ``functools.partial(ctx.run, fn, *args)``: `fn`
    runs in `ctx`, captured before the resource existed, where the frame set by
    the resource is not visible. The resource then goes inside that `ctx.run`.
    """
    run = func.func if type(func) is functools.partial else None
    if (
        type(run) is BuiltinMethodType
        and type(run.__self__) is contextvars.Context
        and run.__name__ == "run"
        and func.args
    ):
        fn, *rest = func.args
        job = functools.partial(fn, *rest, **func.keywords) if rest or func.keywords else fn
        return functools.partial(run, CallbackResource("Executor", job))
    return CallbackResource("Executor", func)


def _wrap_run_in_executor(orig: Callable[..., Any]) -> Callable[..., Any]:
    def run_in_executor(self: Any, executor: Any, func: Any, *args: Any) -> Any:
        # Process pools run the job elsewhere (and must pickle it): not tracked.
        if (
            _ids.listeners
            and callable(func)
            and (executor is None or isinstance(executor, concurrent.futures.ThreadPoolExecutor))
        ):
            func = _executor_job(func)
        return orig(self, executor, func, *args)

    return run_in_executor


def _wrap_create_server(orig: Callable[..., Any]) -> Callable[..., Any]:
    def create_server(self: Any, protocol_factory: Any, *args: Any, **kwargs: Any) -> Any:
        if _ids.listeners and callable(protocol_factory):
            protocol_factory = ConnectionFactory(protocol_factory)
        return orig(self, protocol_factory, *args, **kwargs)

    return create_server


_WRAPPERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "create_task": _wrap_create_task,
    "create_future": _wrap_create_future,
    "call_soon": _wrap_call_soon,
    "call_soon_threadsafe": _wrap_call_soon,
    "call_later": _wrap_timer,
    "call_at": _wrap_timer,
    "run_in_executor": _wrap_run_in_executor,
    "create_server": _wrap_create_server,
}

# One `Patches` set per instrumented loop class, each applied all-or-nothing: classes
# are added one at a time (the running loop's class may be a new one).
_lock = threading.RLock()
_patched: dict[type, Patches] = {}


def _loop_classes() -> list[type]:
    classes: list[type] = [asyncio.BaseEventLoop]
    try:
        import uvloop
    except ImportError:
        pass
    else:
        classes.append(uvloop.Loop)
    return classes


def _patch_class(cls: type) -> None:
    if cls in _patched:
        return
    patches = Patches(
        lambda: [(cls, name, make(getattr(cls, name))) for name, make in _WRAPPERS.items()]
    )
    try:
        patches.install()  # all or nothing: a class that refuses one wrapper gets none
    except (AttributeError, TypeError) as exc:
        logger.warning(
            "asynclocal.hooks: cannot instrument event loop class %s (%s); work on its "
            "loops is not tracked",
            cls.__qualname__,
            exc,
        )
        return
    _patched[cls] = patches


def install() -> None:
    """Instrument every known event-loop class (and the running loop's). Idempotent."""
    with _lock:
        for cls in _loop_classes():
            _patch_class(cls)
        loop = events._get_running_loop()
        if loop is not None and not any(isinstance(loop, c) for c in _patched):
            _patch_class(type(loop))


def uninstall() -> None:
    """Put every original loop method back. Idempotent."""
    with _lock:
        for patches in reversed(list(_patched.values())):
            patches.uninstall()
        _patched.clear()


def installed() -> bool:
    """Whether loop methods are currently replaced."""
    return bool(_patched)


def patched_classes() -> list[type]:
    """The event-loop classes currently instrumented."""
    with _lock:
        return list(_patched)
