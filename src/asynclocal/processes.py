"""Carry cross-process stores into process pools and `multiprocessing` workers.

Only storages created with ``AsyncLocalStorage(name=..., cross_process=True)``
travel; their stores are pickled when the job is submitted (an unpicklable
store fails right there, with an error naming the storage) and restored in the
worker. Every job runs in a clean context that holds only the stores it was
sent, so a worker never keeps a previous job's store, and a worker forked while
a request was active does not see that request.

The worker finds each storage by name, so create cross-process storages at
import time in a module the worker imports: with the ``spawn`` and ``forkserver``
start methods the worker re-imports your modules (``forkserver`` is the default for
`ProcessPoolExecutor` and `multiprocessing` on Linux from Python 3.14; ``fork`` before).
A storage the worker cannot find raises `UnknownStorageError` there, saying so.

Use the drop-ins (`ProcessPoolExecutor`, `Pool`, `Process`) or `install()`,
which makes `concurrent.futures.ProcessPoolExecutor.submit`/`map` and the
`multiprocessing.pool.Pool` methods carry the stores everywhere.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import multiprocessing
import multiprocessing.pool
import multiprocessing.process
import pickle
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, Generic, ParamSpec, TypeVar

from ._patching import Patches
from ._storage import _MISSING, cross_process_storages, find_cross_process_storage
from .errors import CrossProcessError, StoreNotPicklableError, UnknownStorageError

__all__ = [
    "CrossProcessError",
    "Pool",
    "Process",
    "ProcessPoolExecutor",
    "StoreNotPicklableError",
    "UnknownStorageError",
    "capture",
    "install",
    "installed",
    "uninstall",
    "with_stores",
]

P = ParamSpec("P")
R = TypeVar("R")

#: What travels with a job: (storage name, pickled store) pairs.
Payload = tuple[tuple[str, bytes], ...]


def capture() -> Payload:
    """Pickle the stores of every cross-process storage visible now.

    Raises:
        StoreNotPicklableError: a store cannot be pickled; the message names the storage.
    """
    payload: list[tuple[str, bytes]] = []
    for storage in cross_process_storages():
        store = storage.context_var.get(_MISSING)
        if store is _MISSING or store is storage.default:
            continue
        try:
            data = pickle.dumps(store, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise StoreNotPicklableError(
                f"the store of cross-process AsyncLocalStorage {storage.name!r} "
                f"({type(store).__name__}) cannot be pickled: {exc}. Keep only picklable "
                "values in it, or create the storage without cross_process=True"
            ) from exc
        payload.append((storage.name, data))
    return tuple(payload)


def _restore(payload: Payload) -> None:
    for name, data in payload:
        storage = find_cross_process_storage(name)
        if storage is None:
            raise UnknownStorageError(
                f"this worker process has no cross-process AsyncLocalStorage named {name!r}: "
                "the storage is not importable in the worker. Create it at import time in a "
                "module the worker imports (the module that defines the job function is a "
                "good place), not in __main__'s `if __name__ == '__main__':` block or inside "
                "a function: workers started with 'spawn' or 'forkserver' (the default on "
                "Linux from Python 3.14) import your modules afresh"
            )
        storage.enter_with(pickle.loads(data))


def _call_with_payload(
    fn: Callable[..., R], payload: Payload, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> R:
    _restore(payload)
    return fn(*args, **kwargs)


class with_stores(Generic[R]):
    """A picklable callable that runs `fn` in a clean context holding `payload`'s stores.

    `with_stores(fn)` captures the stores visible now; call the result in any
    process. Used by the drop-ins below; useful with other process APIs.
    """

    __slots__ = ("fn", "payload")

    def __init__(self, fn: Callable[..., R], payload: Payload | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"with_stores() expected a callable, got {type(fn).__name__}")
        self.fn = fn
        self.payload = capture() if payload is None else payload

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return contextvars.Context().run(_call_with_payload, self.fn, self.payload, args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (with_stores, (self.fn, self.payload))


_StdProcessPool = concurrent.futures.ProcessPoolExecutor
_orig_pp_submit = _StdProcessPool.submit
_StdPool = multiprocessing.pool.Pool
_orig_apply_async = _StdPool.apply_async
_orig_map_async = _StdPool._map_async  # type: ignore[attr-defined]
_orig_imap = _StdPool.imap
_orig_imap_unordered = _StdPool.imap_unordered
_orig_process_start = multiprocessing.process.BaseProcess.start


def _pp_submit(
    self: concurrent.futures.ProcessPoolExecutor, fn: Callable[..., R], /, *args: Any, **kwargs: Any
) -> Future[R]:
    return _orig_pp_submit(self, with_stores(fn), *args, **kwargs)


def _pool_apply_async(
    self: multiprocessing.pool.Pool,
    func: Callable[..., Any],
    args: Iterable[Any] = (),
    kwds: Mapping[str, Any] | None = None,
    callback: Callable[[Any], object] | None = None,
    error_callback: Callable[[BaseException], object] | None = None,
) -> Any:
    return _orig_apply_async(self, with_stores(func), args, kwds or {}, callback, error_callback)


def _pool_map_async(
    self: Any, func: Callable[..., Any], iterable: Any, mapper: Any, *rest: Any
) -> Any:
    # `map`, `map_async`, `starmap` and `starmap_async` all go through here.
    return _orig_map_async(self, with_stores(func), iterable, mapper, *rest)


def _pool_imap(self: Any, func: Callable[..., Any], iterable: Any, chunksize: int = 1) -> Any:
    return _orig_imap(self, with_stores(func), iterable, chunksize)


def _pool_imap_unordered(
    self: Any, func: Callable[..., Any], iterable: Any, chunksize: int = 1
) -> Any:
    return _orig_imap_unordered(self, with_stores(func), iterable, chunksize)


class ProcessPoolExecutor(_StdProcessPool):
    """A `concurrent.futures.ProcessPoolExecutor` whose jobs see the submitter's
    cross-process stores."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return _pp_submit(self, fn, *args, **kwargs)


class _ContextPool(_StdPool):
    """A `multiprocessing.pool.Pool` whose tasks see the caller's cross-process stores."""

    apply_async = _pool_apply_async
    _map_async = _pool_map_async
    imap = _pool_imap  # type: ignore[assignment]
    imap_unordered = _pool_imap_unordered  # type: ignore[assignment]


def Pool(
    processes: int | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: Iterable[Any] = (),
    maxtasksperchild: int | None = None,
    context: Any = None,
) -> multiprocessing.pool.Pool:
    """Like `multiprocessing.Pool`, but every task sees the caller's cross-process stores.

    `context` is a `multiprocessing` context (e.g. `multiprocessing.get_context("spawn")`).
    """
    ctx = context if context is not None else multiprocessing.get_context()
    return _ContextPool(processes, initializer, initargs, maxtasksperchild, context=ctx)


def _is_pool_worker(target: object) -> bool:
    # Pool workers serve many jobs; each job carries its own stores instead.
    module = getattr(target, "__module__", "")
    return module in ("multiprocessing.pool", "concurrent.futures.process")


def _process_start(self: multiprocessing.process.BaseProcess) -> None:
    target = getattr(self, "_target", None)
    if target is not None and not isinstance(target, with_stores) and not _is_pool_worker(target):
        self._target = with_stores(target)  # type: ignore[attr-defined]
    _orig_process_start(self)


class Process(multiprocessing.Process):
    """A `multiprocessing.Process` whose target sees the cross-process stores of the
    caller of `start()`."""

    def start(self) -> None:
        _process_start(self)


_patches = Patches(
    [
        (_StdProcessPool, "submit", _pp_submit),
        (_StdPool, "apply_async", _pool_apply_async),
        (_StdPool, "_map_async", _pool_map_async),
        (_StdPool, "imap", _pool_imap),
        (_StdPool, "imap_unordered", _pool_imap_unordered),
        (multiprocessing.process.BaseProcess, "start", _process_start),
    ]
)


def install() -> None:
    """Make the standard process APIs carry cross-process stores. Idempotent.

    Patches `concurrent.futures.ProcessPoolExecutor.submit` (and so `map` and
    `loop.run_in_executor` with a process pool), `multiprocessing.pool.Pool`'s
    `apply_async`/`apply`/`map`/`starmap`/`imap`/`imap_unordered` and their async
    forms, and `multiprocessing.Process.start`.
    """
    _patches.install()


def uninstall() -> None:
    """Undo `install()`. Idempotent."""
    _patches.uninstall()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _patches.installed
