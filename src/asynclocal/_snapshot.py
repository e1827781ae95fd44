"""Running code in a captured context: snapshot runners, bound callables, coroutines.

`Context.run` raises `RuntimeError` when the same context is entered twice at
once (re-entrantly or from two threads) and keeps what the callee changed. A
snapshot must do neither, so every call runs in a fresh `ctx.copy()` (an O(1)
copy of an immutable map).

A coroutine is created, not run, by calling an `async def`; so when the callee
returns a coroutine it is driven step by step inside the copy, which is how a
snapshot or resource gives an `async def` its whole body in the captured context
(as Node does for an async function called in `snapshot()`/`runInAsyncScope`).

With the C accelerator (`asynclocal._accel`), runners and bound callables are
`asynclocal._speedups.ContextRunner` objects doing the copy/enter/call/exit in C;
the coroutine case comes back here (`run_coroutine_in`). Otherwise the Python
closures below are used.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextvars import Context
from types import CoroutineType
from typing import Any, ParamSpec, TypeVar

from ._accel import speedups

__all__ = ["as_coroutine_function", "bind_to_context", "make_runner", "run_coroutine_in"]

P = ParamSpec("P")
R = TypeVar("R")


class _Stepper(Awaitable[R]):
    """Awaitable that advances `coro` only inside `ctx` and passes its yields through."""

    __slots__ = ("_coro", "_ctx")

    def __init__(self, ctx: Context, coro: Coroutine[Any, Any, R]) -> None:
        self._ctx = ctx
        self._coro = coro

    def __await__(self) -> Generator[Any, Any, R]:
        run, coro = self._ctx.run, self._coro
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = run(coro.send, value) if error is None else run(coro.throw, error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            finally:
                error = None
            try:
                value = yield yielded
            except GeneratorExit:
                run(coro.close)
                raise
            except BaseException as exc:  # cancellation and throw() reach the coroutine
                error, value = exc, None


async def run_coroutine_in(ctx: Context, coro: Coroutine[Any, Any, R]) -> R:
    """Await `coro` with every step of it running inside `ctx` (which must be private to it)."""
    return await _Stepper(ctx, coro)


def _wrap(ctx_copy: Callable[[], Context], result: Any) -> Any:
    if type(result) is CoroutineType:
        return run_coroutine_in(ctx_copy(), result)
    return result


# `Context.run(fn, *args)` through a star call costs ~3x a call with a fixed number
# of arguments (CPython 3.11), so the runners spell out the common arities inline
# (a helper function would cost one more frame than it saves).


def _py_make_runner(ctx: Context) -> Callable[..., Any]:
    """`runner(fn, *args, **kwargs)`: call `fn` in a fresh copy of `ctx` each time."""
    copy = ctx.copy

    def run_in_snapshot(fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        try:
            if kwargs:
                result = copy().run(fn, *args, **kwargs)
            elif not args:
                result = copy().run(fn)
            elif len(args) == 1:
                result = copy().run(fn, args[0])
            else:
                result = copy().run(fn, *args)
        except TypeError:
            if not callable(fn):
                raise TypeError(
                    f"snapshot runner expected a callable as fn, got {type(fn).__name__}; "
                    "call it as runner(fn, *args, **kwargs)"
                ) from None
            raise
        if type(result) is CoroutineType:
            return _wrap(copy, result)  # type: ignore[no-any-return]
        return result

    return run_in_snapshot


def _py_bind_to_context(ctx: Context, fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap `fn` so every call runs in a fresh copy of `ctx` (re-entrant, thread-safe).

    If `fn` returns a coroutine, the result is a coroutine whose every step runs
    in that copy.
    """
    copy = ctx.copy
    call: Callable[..., R] = fn

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs:
            result = copy().run(call, *args, **kwargs)
        elif not args:
            result = copy().run(call)
        elif len(args) == 1:
            result = copy().run(call, args[0])
        else:
            result = copy().run(call, *args)
        if type(result) is CoroutineType:
            return _wrap(copy, result)  # type: ignore[no-any-return]
        return result

    return bound


def make_runner(ctx: Context) -> Callable[..., Any]:
    """`runner(fn, *args, **kwargs)`: call `fn` in a fresh copy of `ctx` each time.

    If `fn` returns a coroutine, the result is a coroutine whose every step runs
    in a fresh copy of `ctx`.

    Raises (from the runner):
        TypeError: `fn` is not callable ("snapshot runner expected a callable").
    """
    if speedups is None:
        return _py_make_runner(ctx)
    return speedups.ContextRunner(ctx)  # type: ignore[no-any-return]


def as_coroutine_function(call: Callable[P, R], fn: Callable[..., Any]) -> Callable[P, R]:
    """`call` as an `async def` carrying `fn`'s metadata, for a coroutine function `fn`.

    Frameworks decide how to call an endpoint or a job with
    `inspect.iscoroutinefunction` / `asyncio.iscoroutinefunction` (Starlette,
    FastAPI, pytest-asyncio...); a plain wrapper returning a coroutine would be
    run as a sync function, in a thread. `call(*args, **kwargs)` must return an
    awaitable; it is called when the returned coroutine starts.
    """

    async def bound_coroutine_function(*args: Any, **kwargs: Any) -> Any:
        return await call(*args, **kwargs)  # type: ignore[misc]

    return functools.update_wrapper(bound_coroutine_function, fn)  # type: ignore[return-value]


def bind_to_context(ctx: Context, fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap `fn` so every call runs in a fresh copy of `ctx` (re-entrant, thread-safe).

    If `fn` returns a coroutine, the result is a coroutine whose every step runs
    in a fresh copy of `ctx`. The wrapper carries `fn`'s metadata (`__wrapped__`,
    `__name__`, `__doc__`...) like `functools.wraps`, and is itself a coroutine
    function when `fn` is one (`inspect.iscoroutinefunction`).
    """
    if speedups is None:
        bound = _py_bind_to_context(ctx, fn)
    else:
        bound = functools.update_wrapper(speedups.ContextRunner(ctx, fn), fn)
    if inspect.iscoroutinefunction(fn):
        return as_coroutine_function(bound, fn)
    return bound
