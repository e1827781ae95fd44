"""The pure-Python hot paths, and the slow paths both implementations share.

`StorageBase` here has exactly the interface of the C `asynclocal._speedups.StorageBase`
(`_var`, `_default`, `_set_var`, `get_store`, `run`, `exit`); `asynclocal._accel`
decides which one `AsyncLocalStorage` is built on. The C version calls back into
`await_with_store` (a coroutine result) and `raise_not_callable` (a non-callable `fn`)
below, so the messages and the async behaviour are the same whichever is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextvars import ContextVar, Token
from types import CoroutineType
from typing import Any, NoReturn, TypeVar

__all__ = ["StorageBase", "await_with_store", "raise_not_callable", "reset_or_restore"]

R = TypeVar("R")

_MISSING: Any = object()


def _not_callable(method: str, fn: object) -> TypeError:
    call = f"als.{method}(store, fn, *args, **kwargs)"
    if method != "run":
        call = f"als.{method}(fn, *args, **kwargs)"
    return TypeError(
        f"AsyncLocalStorage.{method}() expected a callable as fn, got "
        f"{type(fn).__name__} {fn!r:.60}; call it as {call}"
    )


def raise_not_callable(method: str, fn: object) -> NoReturn:
    """Raise the `TypeError` for `AsyncLocalStorage.<method>()` given a non-callable `fn`."""
    raise _not_callable(method, fn) from None


def reset_or_restore(var: ContextVar[Any], token: Token[Any], store: Any, default: Any) -> None:
    """Undo `token`; if it was made in another context, restore by value instead.

    `ContextVar.reset` raises `ValueError` when the token was created in a
    different `Context` (an async generator finalised by another task or by the
    garbage collector: cpython#118944) or was already used. In that case the
    previous value is put back only where our store is what is visible, so a
    foreign context is never clobbered.
    """
    try:
        var.reset(token)
    except ValueError:
        if var.get(_MISSING) is store:
            old = token.old_value
            # ContextVar has no "unset"; setting the default is indistinguishable
            # for readers of get_store().
            var.set(default if old is Token.MISSING else old)


async def await_with_store(
    var: ContextVar[Any], store: Any, default: Any, coro: Coroutine[Any, Any, R]
) -> R:
    """Await `coro` with `var` set to `store` in the awaiting context."""
    token = var.set(store)
    try:
        return await coro
    finally:
        reset_or_restore(var, token, store, default)


class StorageBase:
    """Pure-Python twin of `asynclocal._speedups.StorageBase`."""

    __slots__ = {
        "_default": "what get_store() returns where no store is set",
        "_var": "the ContextVar backing the storage; replaced by disable()",
        "get_store": (
            "Return the store visible in the current context, or `default` when none is.\n\n"
            "In the pure-Python implementation this is the bound C method `ContextVar.get`\n"
            "of the storage's variable, kept in a slot, so a read costs one attribute load\n"
            "more than a raw `ContextVar.get()` and nothing else."
        ),
    }

    _default: Any
    _var: ContextVar[Any]
    get_store: Callable[[], Any]

    def _set_var(self, var: ContextVar[Any]) -> None:
        """Make `var` the ContextVar backing the storage (used by __init__ and disable())."""
        if not isinstance(var, ContextVar):
            raise TypeError(
                f"_set_var() expects a contextvars.ContextVar, got {type(var).__name__}"
            )
        # Through the slot itself, so a subclass that overrides get_store keeps its method.
        _get_store_slot.__set__(self, var.get)
        self._var = var

    def run(self, store: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)` with `store` visible, then restore the previous store.

        The previous store of this instance is restored when `fn` returns or
        raises (the exception propagates unchanged); other instances are left as
        `fn` left them, as in Node 24. If `fn` returns a coroutine, the result
        is a coroutine that runs it with `store` visible, whether it is awaited
        or passed to `asyncio.create_task`.

        Raises:
            TypeError: `fn` is not callable.
        """
        var = self._var
        token = var.set(store)
        try:
            # Splitting off the keyword-free call saves building a kwargs mapping.
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except TypeError:
            if not callable(fn):
                raise _not_callable("run", fn) from None
            raise
        finally:
            var.reset(token)
        if type(result) is CoroutineType:
            return await_with_store(var, store, self._default, result)
        return result

    def exit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)` seeing `default`, then restore the previous store.

        A coroutine result is handled as in `run`.

        Raises:
            TypeError: `fn` is not callable.
        """
        var, default = self._var, self._default
        token = var.set(default)
        try:
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except TypeError:
            if not callable(fn):
                raise _not_callable("exit", fn) from None
            raise
        finally:
            var.reset(token)
        if type(result) is CoroutineType:
            return await_with_store(var, default, default, result)
        return result


_get_store_slot: Any = StorageBase.__dict__["get_store"]
