"""Python 3.14 behaviours, written against the CPython 3.14 sources.

Where this machine has no 3.14, each case runs against a small stand-in that follows
3.14's protocol (named so below); on 3.14 the real classes are used instead:

* `threading.Thread(context=...)`: `start()` keeps an explicit context and otherwise
  sets a copy or an empty one (`sys.flags.thread_inherit_context`); `_bootstrap_inner`
  runs `run()` inside `self._context`.
* `concurrent.futures.InterpreterPoolExecutor` subclasses `ThreadPoolExecutor` and
  pickles each job into another interpreter.
* `concurrent.futures.thread._WorkItem(future, task)`, run by `_WorkItem.run(worker_ctx)`.
* Free-threaded 3.14t starts threads in a copy of the starter's context, so a pool's
  workers inherit the context of the first submitter unless `threads.install()` is used.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import sys
import threading
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, debug, threads
from asynclocal.debug import _detector

PY314 = sys.version_info >= (3, 14)
als: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.core.py314")


@pytest.fixture
def threads_installed() -> Any:
    was = threads.installed()
    threads.install()
    try:
        yield
    finally:
        if not was:
            threads.uninstall()


class _Thread314(threading.Thread):
    """Stand-in for 3.14's Thread: a `context` argument, and run() inside `_context`."""

    def __init__(self, *args: Any, context: contextvars.Context | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._context = context

    def run(self) -> None:
        ctx = self._context if self._context is not None else contextvars.Context()
        ctx.run(super().run)


ThreadWithContext: Any = threading.Thread if PY314 else _Thread314


def _seen_in_thread(**kwargs: Any) -> list[str | None]:
    seen: list[str | None] = []
    t = ThreadWithContext(target=lambda: seen.append(als.get_store()), **kwargs)
    t.start()
    t.join(10)
    return seen


def test_an_explicit_thread_context_is_kept_by_install(threads_installed: None) -> None:
    explicit = contextvars.Context()
    explicit.run(als.enter_with, "explicit")
    assert als.run("caller", _seen_in_thread, context=explicit) == ["explicit"]
    assert als.run("caller", _seen_in_thread, context=contextvars.Context()) == [None]


def test_without_an_explicit_context_install_gives_the_callers(threads_installed: None) -> None:
    assert als.run("caller", _seen_in_thread) == ["caller"]


def _interpreter_pool() -> Any:
    if PY314:
        pool_type = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
        if pool_type is not None:
            return pool_type(max_workers=1)

    class InterpreterPoolExecutor(concurrent.futures.ThreadPoolExecutor):
        """Stand-in: a ThreadPoolExecutor subclass from the interpreter pool's module."""

    InterpreterPoolExecutor.__module__ = "concurrent.futures.interpreter"
    return InterpreterPoolExecutor(max_workers=1)


def test_interpreter_pool_jobs_pass_through_unchanged(threads_installed: None) -> None:
    # `ctx.run` cannot be pickled into another interpreter: the job must reach the pool
    # as given. pow is picklable and shareable, so it runs on the real 3.14 pool too.
    with _interpreter_pool() as pool:
        assert als.run("caller", pool.submit, pow, 2, 5).result(30) == 32
        if not PY314:  # the stand-in runs here: the job saw no submitter context
            assert als.run("caller", pool.submit, als.get_store).result(30) is None
    with threads.ThreadPoolExecutor(max_workers=1) as plain:  # other pools still carry it
        assert als.run("caller", plain.submit, als.get_store).result(30) == "caller"


class _WorkerContext:
    """Stand-in for 3.14's concurrent.futures.thread.WorkerContext."""

    def run(self, task: tuple[Any, tuple[Any, ...], dict[str, Any]]) -> Any:
        fn, args, kwargs = task
        return fn(*args, **kwargs)


class _OtherInterpreterContext(_WorkerContext):
    """Stand-in for the interpreter pool's WorkerContext (a subclass)."""


class _WorkItem:
    """Stand-in for 3.14's _WorkItem(future, task)."""

    def __init__(self, future: concurrent.futures.Future[Any], task: Any) -> None:
        self.future = future
        self.task = task

    def run(self, ctx: _WorkerContext) -> None:
        self.future.set_result(ctx.run(self.task))


def test_detector_checks_3_14_work_items_and_leaves_tasks_untouched() -> None:
    init, run = _detector._make_task_work_item_patches(
        _WorkItem.__init__, _WorkItem.run, _WorkerContext
    )
    debug.enable()
    debug.clear_reports()
    try:
        job = als.get_store

        def make_item() -> _WorkItem:
            item = _WorkItem.__new__(_WorkItem)
            init(item, concurrent.futures.Future(), (job, (), {}))
            return item

        same, other = als.run("req-1", make_item), als.run("req-2", make_item)
        assert same.task[0] is job  # not wrapped: still picklable
        results: dict[str, Any] = {}

        def worker() -> None:  # a pool thread: an empty context
            run(same, _WorkerContext())
            run(other, _OtherInterpreterContext())
            results["same"] = same.future.result(0)
            results["other"] = other.future.result(0)

        t = threading.Thread(target=worker)
        contextvars.Context().run(t.start)
        t.join(10)
        reports = [r for r in debug.reports() if r.storage == als.name]
    finally:
        debug.disable()
        debug.clear_reports()
    assert results == {"same": None, "other": None}
    # The same-interpreter job lost its store and is reported; the other one is not.
    assert [(r.kind, r.boundary, r.expected) for r in reports] == [
        ("lost", "executor job", "'req-1'")
    ]


inherits_context = pytest.mark.skipif(
    not getattr(sys.flags, "thread_inherit_context", 0),
    reason="needs threads that inherit the starter's context (3.14t, or -X "
    "thread_inherit_context=1 on 3.14)",
)


@inherits_context
def test_pool_workers_inherit_the_first_submitter_without_install() -> None:
    was = threads.installed()
    threads.uninstall()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            first = als.run("first", pool.submit, als.get_store).result(10)
            second = als.run("second", pool.submit, als.get_store).result(10)
    finally:
        if was:
            threads.install()
    assert (first, second) == ("first", "first")  # the documented leak


@inherits_context
def test_install_gives_each_job_its_own_submitter(
    threads_installed: None,
) -> None:  # pragma: no cover
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        first = als.run("first", pool.submit, als.get_store).result(10)
        second = als.run("second", pool.submit, als.get_store).result(10)
    assert (first, second) == ("first", "second")
