"""The `@transactional` decorator shared by `TransactionManager` and the module-level helper."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._types import Propagation

if TYPE_CHECKING:
    from ._manager import TransactionManager

__all__ = ["ExcTypes", "check_exc_types", "make_decorator"]

F = TypeVar("F", bound=Callable[..., Any])
ExcTypes = type[BaseException] | tuple[type[BaseException], ...]


def check_exc_types(value: ExcTypes) -> tuple[type[BaseException], ...]:
    """Normalise `no_rollback_for` to a tuple of exception classes.

    Raises:
        TypeError: an item is not an exception class.
    """
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"no_rollback_for must be an exception class or a tuple of them, got {item!r:.60}"
            )
    return items


def _check_kind(manager: TransactionManager[Any], is_async: bool, fn: Callable[..., Any]) -> None:
    if manager.is_async == is_async:
        return
    name = getattr(fn, "__qualname__", repr(fn))
    if is_async:
        raise TypeError(
            f"@transactional on async function {name} needs a TransactionManager built on an "
            f"AsyncEngine or async_sessionmaker, but {manager!r} makes sync Sessions; make the "
            "function sync (and run it with asyncio.to_thread) or use an async manager"
        )
    raise TypeError(
        f"@transactional on sync function {name} needs a TransactionManager built on a sync "
        f"Engine or sessionmaker, but {manager!r} makes AsyncSessions; make the function "
        "`async def` or use a sync manager"
    )


def make_decorator(
    get_manager: Callable[[], TransactionManager[Any]],
    fixed: TransactionManager[Any] | None,
    propagation: Propagation,
    no_rollback_for: tuple[type[BaseException], ...],
) -> Callable[[F], F]:
    """Build a decorator running each call in `manager.transaction(propagation)`.

    `fixed` is the manager when known at decoration time (checked then);
    otherwise `get_manager()` is called on every call, so a module-level
    `@transactional` may decorate functions before the manager exists.
    """

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"@transactional expects a function, got {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"@transactional cannot wrap the generator {fn.__qualname__}: a transaction must "
                "not stay open across yields. Decorate the function that consumes it, or "
                "collect the rows into a list first"
            )
        is_async = inspect.iscoroutinefunction(fn)
        if fixed is not None:
            _check_kind(fixed, is_async, fn)

        if is_async:

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                manager = fixed if fixed is not None else get_manager()
                if fixed is None:
                    _check_kind(manager, True, fn)
                async with manager.transaction(propagation, no_rollback_for=no_rollback_for):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            manager = fixed if fixed is not None else get_manager()
            if fixed is None:
                _check_kind(manager, False, fn)
            with manager.transaction(propagation, no_rollback_for=no_rollback_for):
                return fn(*args, **kwargs)

        return sync_wrapper  # type: ignore[return-value]

    return decorate
