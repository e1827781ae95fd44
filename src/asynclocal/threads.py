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
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import ParamSpec, TypeVar

from ._patching import Patches

__all__ = ["Thread", "ThreadPoolExecutor", "install", "installed", "uninstall"]

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


def _start_with_context(self: threading.Thread) -> None:
    # Captured in the thread that calls start(), as Python 3.14 does.
    ctx = contextvars.copy_context()
    if hasattr(self, "_context"):
        # Python >= 3.14 runs `run()` inside `self._context` itself.
        self._context = ctx
    else:
        setattr(self, _CTX_ATTR, ctx)
    _orig_thread_start(self)


def _bootstrap_inner_in_context(self: threading.Thread) -> None:
    ctx: contextvars.Context | None = getattr(self, _CTX_ATTR, None)
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
    if not callable(fn):
        raise TypeError(f"ThreadPoolExecutor.submit() expected a callable, got {type(fn).__name__}")
    ctx = contextvars.copy_context()
    return _orig_submit(self, ctx.run, fn, *args, **kwargs)  # type: ignore[arg-type]


def _adjust_thread_count_empty(self: concurrent.futures.ThreadPoolExecutor) -> None:
    # Worker threads are shared by every caller: they start in an empty context
    # rather than inheriting the one of whichever request happened to submit first.
    contextvars.Context().run(_orig_adjust_thread_count, self)


class Thread(_StdThread):
    """A `threading.Thread` that runs in a copy of the context of the caller of `start()`."""

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


def install() -> None:
    """Make the standard thread APIs carry the caller's context. Idempotent.

    Afterwards `threading.Thread` runs in the context of the caller of
    `start()`, and `concurrent.futures.ThreadPoolExecutor.submit`,
    `loop.run_in_executor` (with a thread pool) and `asyncio.to_thread` run
    each job in a copy of the submitter's context.
    """
    _patches.install()


def uninstall() -> None:
    """Undo `install()`. Idempotent. Threads and pools already running are unaffected."""
    _patches.uninstall()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _patches.installed
