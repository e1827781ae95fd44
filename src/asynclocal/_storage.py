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
from collections.abc import Callable
from contextvars import ContextVar, Token, copy_context
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

from . import _accel
from ._fallback import _MISSING as _MISSING
from ._fallback import await_with_store, raise_not_callable, reset_or_restore
from ._snapshot import bind_to_context, make_runner, run_coroutine_in

if TYPE_CHECKING or _accel.speedups is None:
    from ._fallback import StorageBase
else:
    StorageBase = _accel.speedups.StorageBase
    _accel.speedups._set_helpers(raise_not_callable, await_with_store, run_coroutine_in)

__all__ = ["SPEEDUPS", "AsyncLocalStorage", "StorageScope", "bind_to_context"]

_reset_or_restore = reset_or_restore  # for the modules that import it from here

#: True when the C accelerator `asynclocal._speedups` runs the hot paths (see `_accel`).
SPEEDUPS: bool = _accel.SPEEDUPS

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

_name_counter = itertools.count(1)

# Every live storage, for the fork handler and diagnostics.
_all_storages: weakref.WeakSet[AsyncLocalStorage[Any]] = weakref.WeakSet()
# Storages that travel into other processes, by their (explicit, unique) name.
_cross_process: weakref.WeakValueDictionary[str, AsyncLocalStorage[Any]] = (
    weakref.WeakValueDictionary()
)
_registry_lock = threading.Lock()


class AsyncLocalStorage(StorageBase, Generic[T]):
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

    # `_var`, `_default`, `get_store`, `run` and `exit` come from `StorageBase`: the C
    # accelerator's (`asynclocal._speedups`) or its pure-Python twin (`asynclocal._fallback`).
    __slots__ = {
        "__weakref__": "for the registries",
        "_cross_process": "whether the store travels into other processes",
        "_name": "the label",
    }

    if TYPE_CHECKING:
        # The typed signatures; the implementations are StorageBase's.
        _default: T | None
        _var: ContextVar[T | None]

        def get_store(self) -> T | None:
            """Return the store visible in the current context, or `default` when none is."""

        def run(self, store: T, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
            """Call `fn(*args, **kwargs)` with `store` visible, then restore the previous one."""

        def exit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
            """Call `fn(*args, **kwargs)` seeing `default`, then restore the previous store."""

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
        self._new_var()
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _specialise_methods(cls)

    def _new_var(self) -> ContextVar[T | None]:
        var: ContextVar[T | None] = ContextVar(f"asynclocal:{self._name}", default=self._default)
        self._set_var(var)
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

    def __copy__(self) -> AsyncLocalStorage[T]:
        # A storage is an identity, like a function or a class: copies are itself.
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AsyncLocalStorage[T]:
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(
            f"{self!r} cannot be pickled: a storage is tied to this process. Pickle the "
            "store instead, or create the storage with cross_process=True and a unique name "
            "so asynclocal.processes carries its store to workers by that name"
        )

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


def _specialise_methods(cls: type[AsyncLocalStorage[Any]]) -> None:
    """Give `cls` its own C descriptors for the methods it inherits from `StorageBase`.

    CPython's specialised method call checks that the instance's type is exactly the
    descriptor's class; with descriptors made for `cls`, `als.get_store()` takes the
    same path as a raw `var.get()`. Methods a class overrides are left alone.
    """
    if _accel.speedups is None:
        return
    for name, descr in _accel.speedups._method_descriptors(cls).items():
        if name not in cls.__dict__ and type(getattr(cls, name)) is type(descr):
            setattr(cls, name, descr)


_specialise_methods(AsyncLocalStorage)


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
