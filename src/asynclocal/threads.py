"""Carry the caller's context into threads and thread pools.

Python drops the context at these boundaries: a `threading.Thread` starts in an
empty context (before 3.14), and a `ThreadPoolExecutor` job runs in whatever
context its worker thread happens to hold, which is how a job ends up seeing a
store a previous job left behind (the `threading.local` leak).

Two ways to fix it:

* drop-in classes, `asynclocal.threads.Thread` and
  `asynclocal.threads.ThreadPoolExecutor`, for code you own;
* `install()`, which makes the standard `threading.Thread`,
  `concurrent.futures.ThreadPoolExecutor.submit` (and with it
  `loop.run_in_executor` and `asyncio.to_thread`) carry the context everywhere.
  Idempotent, reversible with `uninstall()`, safe to call at import time.

Guarantees: a pool job sees the context of the caller of `submit`; a thread
sees the context of the caller of `start()`; each job runs in its own copy, so
what a job sets is never seen by the next job on the same worker thread, and
worker threads themselves start in an empty context.

Long-lived threads. A thread that outlives the request that happened to start it
(a database driver's connection thread, a `logging.handlers.QueueListener`, a
`multiprocessing` feeder) must not keep that request's identity: what it does
later is done for other requests. Such threads start *detached*, in an empty
context (their log lines show the placeholder, and they hold no reference to the
request that started them):

* inside ``with detached():`` (any thread started in the block, from this context);
* when the thread's code comes from a module in `install`'s ``long_lived`` list
  (default `LONG_LIVED_MODULES`: aiosqlite, logging.handlers, multiprocessing,
  concurrent.futures): its target's module, or its class's for a `Thread`
  subclass that overrides ``run()``.

A thread per job (``Thread(target=send_email).start()`` in a handler, a
`threading.Timer`) keeps the context of the caller of ``start()``, even after the
request has ended.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from ._patching import Patches
from .errors import ConfigurationError

__all__ = [
    "LONG_LIVED_MODULES",
    "Thread",
    "ThreadPoolExecutor",
    "detached",
    "install",
    "installed",
    "uninstall",
]

#: Modules whose threads outlive the work that starts them; they start detached.
LONG_LIVED_MODULES: tuple[str, ...] = (
    "aiosqlite",
    "logging.handlers",
    "multiprocessing",
    "concurrent.futures",
)

P = ParamSpec("P")
R = TypeVar("R")

_StdThread = threading.Thread
_StdExecutor = concurrent.futures.ThreadPoolExecutor

# The originals, saved before any patching, so the drop-ins never wrap twice.
_orig_thread_start = _StdThread.start
_orig_thread_bootstrap_inner = _StdThread._bootstrap_inner  # type: ignore[attr-defined]
_orig_submit = _StdExecutor.submit
_orig_adjust_thread_count = _StdExecutor._adjust_thread_count

_CTX_ATTR = "_asynclocal_context"

_detached: ContextVar[bool] = ContextVar("asynclocal.threads.detached", default=False)
_long_lived: tuple[str, ...] = LONG_LIVED_MODULES


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """Start threads in this block in an empty context, holding no request's stores.

    For code that lazily starts a long-lived thread on behalf of whoever calls it
    first (a connection, a listener, a background flusher)::

        with threads.detached():
            listener.start()

    Applies to threads started from the current context (thread or task) while the
    block runs, through the drop-in `Thread` or the standard one after `install()`
    (without `install()`, a standard thread starts empty anyway before Python 3.14).
    Pool jobs are unaffected: they always carry their submitter's context.
    """
    token = _detached.set(True)
    try:
        yield
    finally:
        _detached.reset(token)


def _origin_module(thread: threading.Thread) -> str:
    # The module whose code the thread runs: its class's when the class has its own
    # run(), else its target's (functools.partial unwrapped).
    cls = type(thread)
    if cls.run is not _StdThread.run:
        return cls.__module__
    target = getattr(thread, "_target", None)
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None)
    return module if isinstance(module, str) else ""


def _is_long_lived(thread: threading.Thread) -> bool:
    if not _long_lived:
        return False
    module = _origin_module(thread)
    return any(module == m or module.startswith(m + ".") for m in _long_lived)


def _start_context(thread: threading.Thread) -> contextvars.Context:
    if _detached.get() or _is_long_lived(thread):
        return contextvars.Context()
    return contextvars.copy_context()


# Python 3.14's InterpreterPoolExecutor (and subclasses) subclass ThreadPoolExecutor but
# run each job in another interpreter. Found by module, so nothing is imported for it.
_OTHER_INTERPRETER_MODULE = "concurrent.futures.interpreter"


def _in_other_interpreter(pool: object) -> bool:
    return any(c.__module__ == _OTHER_INTERPRETER_MODULE for c in type(pool).__mro__)


def _start_with_context(self: threading.Thread) -> None:
    # Captured in the thread that calls start(), as Python 3.14 does.
    if hasattr(self, "_context"):
        # Python >= 3.14 runs `run()` inside `self._context` itself, and
        # `Thread(context=...)` sets it: an explicit context is kept as given.
        if self._context is None:
            self._context = _start_context(self)
    else:
        setattr(self, _CTX_ATTR, _start_context(self))
    _orig_thread_start(self)


def _bootstrap_inner_in_context(self: threading.Thread) -> None:
    # Taken off the thread object: once the thread ends, nothing keeps its context.
    ctx: contextvars.Context | None = self.__dict__.pop(_CTX_ATTR, None)
    if ctx is None:
        _orig_thread_bootstrap_inner(self)
    else:
        ctx.run(_orig_thread_bootstrap_inner, self)


def _submit_in_context(
    self: concurrent.futures.ThreadPoolExecutor,
    fn: Callable[P, R],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> Future[R]:
    if _in_other_interpreter(self):
        # 3.14's InterpreterPoolExecutor (a ThreadPoolExecutor subclass) pickles the job
        # into another interpreter, where this interpreter's context means nothing:
        # `ctx.run` cannot cross, so its jobs go through unchanged.
        return _orig_submit(self, fn, *args, **kwargs)
    if not callable(fn):
        raise TypeError(f"ThreadPoolExecutor.submit() expected a callable, got {type(fn).__name__}")
    ctx = contextvars.copy_context()
    return _orig_submit(self, ctx.run, fn, *args, **kwargs)  # type: ignore[arg-type]


def _adjust_thread_count_empty(self: concurrent.futures.ThreadPoolExecutor) -> None:
    # Worker threads are shared by every caller: they start in an empty context
    # rather than inheriting the one of whichever request happened to submit first.
    contextvars.Context().run(_orig_adjust_thread_count, self)


class Thread(_StdThread):
    """A `threading.Thread` that runs in a copy of the context of the caller of `start()`.

    Started inside `detached()`, or running code of a `LONG_LIVED_MODULES` module
    (the list `install` was given), it starts in an empty context instead.
    """

    def start(self) -> None:
        _start_with_context(self)

    def _bootstrap_inner(self) -> None:
        _bootstrap_inner_in_context(self)


class ThreadPoolExecutor(_StdExecutor):
    """A `concurrent.futures.ThreadPoolExecutor` whose jobs see the context of the submitter.

    Each job runs in its own copy of the caller's context, so changes a job
    makes never reach the caller or the next job on the same worker thread.
    """

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        return _submit_in_context(self, fn, *args, **kwargs)

    def _adjust_thread_count(self) -> None:
        _adjust_thread_count_empty(self)


_patches = Patches(
    [
        (_StdThread, "start", _start_with_context),
        (_StdThread, "_bootstrap_inner", _bootstrap_inner_in_context),
        (_StdExecutor, "submit", _submit_in_context),
        (_StdExecutor, "_adjust_thread_count", _adjust_thread_count_empty),
    ]
)


def install(*, long_lived: Iterable[str] = LONG_LIVED_MODULES) -> None:
    """Make the standard thread APIs carry the caller's context. Idempotent.

    Afterwards `threading.Thread` runs in the context of the caller of
    `start()`, and `concurrent.futures.ThreadPoolExecutor.submit`,
    `loop.run_in_executor` (with a thread pool) and `asyncio.to_thread` run
    each job in a copy of the submitter's context.

    Args:
        long_lived: module names (a name covers its submodules) whose threads
            start detached, in an empty context (see the module docstring).
            A later call replaces the list; ``()`` detaches none.

    Raises:
        ConfigurationError: `long_lived` is a string or holds something that is
            not a non-empty module name.
    """
    global _long_lived
    if isinstance(long_lived, str):
        raise ConfigurationError(
            f"threads.install(long_lived=...) takes a list of module names, not a string; "
            f"use long_lived=[{long_lived!r:.60}]"
        )
    names = tuple(long_lived)
    for name in names:
        if not isinstance(name, str) or not name.strip(".") or name != name.strip():
            raise ConfigurationError(
                f"threads.install(long_lived=...) takes module names such as 'aiosqlite', "
                f"got {name!r:.60}"
            )
    _long_lived = names
    _patches.install()


def uninstall() -> None:
    """Undo `install()`. Idempotent. Threads and pools already running are unaffected."""
    _patches.uninstall()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _patches.installed
