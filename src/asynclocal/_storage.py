"""`AsyncLocalStorage`: one `ContextVar` per instance, with Node.js semantics.

Node keeps one immutable "frame" (a map from storage instance to store) per
isolate; promise reactions, timers and I/O callbacks capture it when they are
created and restore it while they run. CPython's `contextvars.Context` is the
same structure (an immutable HAMT keyed by `ContextVar`), and asyncio tasks
and loop callbacks already capture and restore it. So each storage owns one
`ContextVar`, and everything here is a thin, fast veneer over it.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from contextvars import ContextVar, Token, copy_context
from types import CoroutineType, TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

from ._snapshot import bind_to_context, make_runner

__all__ = ["AsyncLocalStorage", "StorageScope", "bind_to_context"]

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

_MISSING: Any = object()
_name_counter = itertools.count(1)

# Every live storage, for the fork handler and diagnostics.
_all_storages: weakref.WeakSet[AsyncLocalStorage[Any]] = weakref.WeakSet()
# Storages that travel into other processes, by their (explicit, unique) name.
_cross_process: weakref.WeakValueDictionary[str, AsyncLocalStorage[Any]] = (
    weakref.WeakValueDictionary()
)
_registry_lock = threading.Lock()


def _not_callable(method: str, fn: object) -> TypeError:
    return TypeError(
        f"AsyncLocalStorage.{method}() expected a callable as fn, got "
        f"{type(fn).__name__} {fn!r:.60}; call it as als.{method}(store, fn, *args, **kwargs)"
        if method == "run"
        else f"AsyncLocalStorage.{method}() expected a callable as fn, got "
        f"{type(fn).__name__} {fn!r:.60}; call it as als.{method}(fn, *args, **kwargs)"
    )


async def _await_with_store(
    var: ContextVar[Any], store: Any, default: Any, coro: Coroutine[Any, Any, R]
) -> R:
    """Await `coro` with `var` set to `store` in the awaiting context."""
    token = var.set(store)
    try:
        return await coro
    finally:
        _reset_or_restore(var, token, store, default)


def _reset_or_restore(var: ContextVar[Any], token: Token[Any], store: Any, default: Any) -> None:
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


class AsyncLocalStorage(Generic[T]):
    """A store that follows the logical flow of execution, like Node's `AsyncLocalStorage`.

    `run(store, fn)` makes `store` visible to `fn` and to everything it starts
    (asyncio tasks, loop callbacks, and executor jobs and threads once
    `asynclocal.threads` propagation is used), and restores the previous store
    when `fn` returns or raises. Two instances never see each other's stores,
    and a store is never copied: the whole request sees the same object.

    Args:
        name: a label used in reprs, errors and diagnostics. Generated when omitted.
        default: what `get_store()` returns where no store is set.
        cross_process: let the store travel into process pools and task queues by
            pickling it (see `asynclocal.processes`). Needs an explicit `name`, unique
            among cross-process storages, because the worker finds the storage by name.

    Raises:
        TypeError: `name` is not a string or `cross_process` is not a bool.
        ValueError: `name` is empty, or a cross-process storage lacks a unique name.
    """

    __slots__ = {
        "__weakref__": "for the registries",
        "_cross_process": "whether the store travels into other processes",
        "_default": "what get_store() returns where no store is set",
        "_name": "the label",
        "_var": "the ContextVar backing the storage; replaced by disable()",
        "get_store": (
            "Return the store visible in the current context, or `default` when none is.\n\n"
            "This is the bound C method `ContextVar.get` of the storage's variable, kept\n"
            "in a slot, so a read costs one attribute load more than a raw\n"
            "`ContextVar.get()` and nothing else."
        ),
    }

    get_store: Callable[[], T | None]

    def __init__(
        self, name: str | None = None, default: T | None = None, *, cross_process: bool = False
    ) -> None:
        if name is None:
            if cross_process is True:
                raise ValueError(
                    "AsyncLocalStorage(cross_process=True) needs an explicit name: the worker "
                    "process finds the storage by name, e.g. "
                    "AsyncLocalStorage(name='myapp.request', cross_process=True)"
                )
            name = f"storage-{next(_name_counter)}"
        elif not isinstance(name, str):
            raise TypeError(
                f"AsyncLocalStorage(name=...) must be a str, got {type(name).__name__}; "
                "pass a short label such as name='request'"
            )
        elif not name.strip():
            raise ValueError("AsyncLocalStorage(name=...) must not be empty or blank")
        if not isinstance(cross_process, bool):
            raise TypeError(
                "AsyncLocalStorage(cross_process=...) must be a bool, "
                f"got {type(cross_process).__name__}"
            )
        self._name = name
        self._default = default
        self._cross_process = cross_process
        self._var: ContextVar[T | None] = self._new_var()
        with _registry_lock:
            if cross_process:
                existing = _cross_process.get(name)
                if existing is not None:
                    raise ValueError(
                        f"a cross-process AsyncLocalStorage named {name!r} already exists; "
                        "cross-process storages are found by name in the worker, so give each "
                        "one a unique name and create it once, at module import time"
                    )
                _cross_process[name] = self
            _all_storages.add(self)

    def _new_var(self) -> ContextVar[T | None]:
        var: ContextVar[T | None] = ContextVar(f"asynclocal:{self._name}", default=self._default)
        # Through the slot itself, so a subclass that overrides get_store keeps its method.
        _get_store_slot.__set__(self, var.get)
        self._var = var
        return var

    # -- attributes -------------------------------------------------------

    @property
    def name(self) -> str:
        """The storage's label."""
        return self._name

    @property
    def default(self) -> T | None:
        """What `get_store()` returns where no store is set."""
        return self._default

    @property
    def cross_process(self) -> bool:
        """Whether the store travels into process pools and task queues."""
        return self._cross_process

    def __repr__(self) -> str:
        flag = ", cross_process=True" if self._cross_process else ""
        return f"AsyncLocalStorage(name={self._name!r}{flag})"

    # -- reading ------------------------------------------------------------

    @property
    def context_var(self) -> ContextVar[T | None]:
        """The `ContextVar` currently backing this storage (changes after `disable()`)."""
        return self._var

    def has_store(self) -> bool:
        """True when a store was set in the current context by `run`/`enter_with`/`scope`."""
        return self._var.get(_MISSING) is not _MISSING

    # -- writing -----------------------------------------------------------

    def run(self, store: T, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
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
            result = fn(*args, **kwargs) if kwargs else fn(*args)  # type: ignore[call-arg]
        except TypeError:
            if not callable(fn):
                raise _not_callable("run", fn) from None
            raise
        finally:
            var.reset(token)
        if type(result) is CoroutineType:
            return _await_with_store(var, store, self._default, result)  # type: ignore[return-value,arg-type]
        return result

    def exit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call `fn(*args, **kwargs)` seeing `default`, then restore the previous store.

        A coroutine result is handled as in `run`.

        Raises:
            TypeError: `fn` is not callable.
        """
        var = self._var
        token = var.set(self._default)
        try:
            result = fn(*args, **kwargs) if kwargs else fn(*args)  # type: ignore[call-arg]
        except TypeError:
            if not callable(fn):
                raise _not_callable("exit", fn) from None
            raise
        finally:
            var.reset(token)
        if type(result) is CoroutineType:
            return _await_with_store(var, self._default, self._default, result)  # type: ignore[return-value,arg-type]
        return result

    def enter_with(self, store: T) -> None:
        """Make `store` visible for the rest of the current context.

        "The current context" is the current asyncio task, thread, or
        `Context.run` call; async work started from it afterwards sees the store
        too. It never reaches the caller's task or sibling tasks.
        """
        self._var.set(store)

    def disable(self) -> None:
        """Hide every earlier store of this instance, in every context that saw one.

        From now on `get_store()` returns `default` everywhere until a later
        `run`/`enter_with`/`scope` on this instance. Stores set before are
        released as the contexts holding them finish.
        """
        self._new_var()

    def scope(self, store: T) -> StorageScope[T]:
        """Context-manager form of `run`: `with als.scope(store): ...`.

        Exiting restores the previous store, also when the `with` block is
        closed from another context (an async generator finalised by another
        task or the garbage collector), where a raw `ContextVar.reset` raises
        `ValueError`.
        """
        return StorageScope(self, store)

    # -- snapshots ---------------------------------------------------------

    @staticmethod
    def snapshot() -> Callable[..., Any]:
        """Capture the current context (every storage) and return a runner.

        The runner, `runner(fn, *args, **kwargs)`, calls `fn` inside the captured
        context and returns its result. Each call starts from the captured state
        and discards changes made inside once it returns, so the runner may be
        used concurrently from several threads and re-entrantly.
        """
        return make_runner(copy_context())

    @staticmethod
    def bind(fn: Callable[P, R]) -> Callable[P, R]:
        """Return a callable that always runs `fn` in the context current now.

        Raises:
            TypeError: `fn` is not callable.
        """
        if not callable(fn):
            raise TypeError(
                f"AsyncLocalStorage.bind() expected a callable, got {type(fn).__name__}"
            )
        return bind_to_context(copy_context(), fn)


_get_store_slot: Any = AsyncLocalStorage.__dict__["get_store"]


class StorageScope(Generic[T]):
    """The context manager returned by `AsyncLocalStorage.scope`. Not reusable."""

    __slots__ = ("_storage", "_store", "_token", "_var")

    def __init__(self, storage: AsyncLocalStorage[T], store: T) -> None:
        self._storage = storage
        self._store = store
        self._token: Token[T | None] | None = None
        self._var: ContextVar[T | None] | None = None

    def __enter__(self) -> T:
        if self._token is not None:
            raise RuntimeError(
                f"this scope of {self._storage!r} is already entered; "
                "call als.scope(store) again for each `with` block"
            )
        var = self._var = self._storage._var
        self._token = var.set(self._store)
        return self._store

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, var = self._token, self._var
        if token is None or var is None:
            return
        self._token = None
        _reset_or_restore(var, token, self._store, self._storage._default)


def live_storages() -> list[AsyncLocalStorage[Any]]:
    """Every storage instance alive in this process."""
    with _registry_lock:
        return list(_all_storages)


def cross_process_storages() -> list[AsyncLocalStorage[Any]]:
    """The live storages created with `cross_process=True`."""
    with _registry_lock:
        return list(_cross_process.values())


def find_cross_process_storage(name: str) -> AsyncLocalStorage[Any] | None:
    """The cross-process storage named `name` in this process, if any."""
    return _cross_process.get(name)


def _forget_inherited_stores() -> None:
    # A forked child must not inherit the request its parent was serving. Only the
    # forking thread survives a fork, so the registry is read without its lock
    # (another thread may have held it) and the lock is made anew.
    global _registry_lock
    _registry_lock = threading.Lock()
    for storage in list(_all_storages):
        storage._new_var()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_stores)
