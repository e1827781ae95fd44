"""Type stubs for the optional C accelerator (see `_speedups.c` and `_fallback.py`)."""

from collections.abc import Callable
from contextvars import Context, ContextVar
from typing import Any, NoReturn

class StorageBase:
    """The fast paths of `AsyncLocalStorage`: its ContextVar, default, get_store, run, exit."""

    _default: Any
    @property
    def _var(self) -> ContextVar[Any]: ...
    def _set_var(self, var: ContextVar[Any], /) -> None: ...
    def get_store(self) -> Any: ...
    def run(self, store: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...
    def exit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...

class ContextRunner:
    """`ContextRunner(ctx)`: a snapshot runner; `ContextRunner(ctx, fn)`: `fn` bound to `ctx`.

    Each call runs in a fresh copy of `ctx`; a coroutine result runs wholly in another copy.
    """

    def __init__(self, ctx: Context, fn: Callable[..., Any] | None = None) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    @property
    def context(self) -> Context: ...
    @property
    def __self__(self) -> Context: ...
    @property
    def func(self) -> Callable[..., Any] | None: ...
    __dict__: dict[str, Any]

def _set_helpers(
    raise_not_callable: Callable[[str, object], NoReturn],
    await_with_store: Callable[..., Any],
    run_coroutine_in: Callable[..., Any],
    /,
) -> None: ...
def _method_descriptors(cls: type[StorageBase], /) -> dict[str, Any]: ...
