"""Long-lived threads start detached; a thread per job keeps its request's context.

The rule: work a request starts carries its id, even after the request ends; work a
long-lived thread does for a later request never carries an earlier request's id, and
the thread holds no reference to the request that happened to start it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import logging.handlers
import queue
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, threads
from asynclocal.errors import ConfigurationError
from asynclocal.request import RequestContext, request_id, request_storage

from . import _lazy_worker
from ._lazy_worker import LazyWorker, ListenerThread

pytestmark = pytest.mark.timeout(60)

LIB = _lazy_worker.__name__


@pytest.fixture
def installed() -> Iterator[None]:
    was = threads.installed()
    threads.install()
    try:
        yield
    finally:
        threads.install()
        if not was:
            threads.uninstall()


def _in_request(rid: str, fn: Any) -> Any:
    return request_storage.run(RequestContext(rid), fn)


def _thread_sees(start: Any) -> Any:
    seen: list[Any] = []
    t = threading.Thread(target=lambda: seen.append(request_id()))
    start(t)
    t.join(10)
    return seen[0]


def test_a_thread_per_job_keeps_the_request_even_after_it_ends(installed: None) -> None:
    release = threading.Event()
    seen: list[str | None] = []

    def job() -> None:
        release.wait(10)  # still running after the request returned
        seen.append(request_id())

    started: list[threading.Thread] = []

    def handler() -> None:
        t = threading.Thread(target=job)
        t.start()
        started.append(t)

    _in_request("req-job", handler)
    assert request_id() is None
    release.set()
    started[0].join(10)
    assert seen == ["req-job"]


def test_threads_started_inside_detached_start_empty(installed: None) -> None:
    def handler() -> tuple[Any, Any, Any]:
        with threads.detached():
            inside = _thread_sees(threading.Thread.start)
        after = _thread_sees(threading.Thread.start)
        return inside, after, request_id()

    assert _in_request("req-1", handler) == (None, "req-1", "req-1")


def test_detached_works_with_the_drop_in_thread_without_install() -> None:
    assert not threads.installed()
    seen: list[Any] = []

    def handler() -> None:
        with threads.detached():
            t = threads.Thread(target=lambda: seen.append(request_id()))
            t.start()
            t.join(10)
        t = threads.Thread(target=lambda: seen.append(request_id()))
        t.start()
        t.join(10)

    _in_request("req-2", handler)
    assert seen == [None, "req-2"]


async def test_detached_in_one_task_does_not_reach_a_sibling(installed: None) -> None:
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def detaching() -> Any:
        with threads.detached():
            entered.set()
            await leave.wait()
            return await asyncio.to_thread(lambda: _thread_sees(threading.Thread.start))

    async def sibling() -> Any:
        await entered.wait()
        try:
            return _thread_sees(threading.Thread.start)
        finally:
            leave.set()

    async def both() -> list[Any]:
        return await asyncio.gather(
            request_storage.run(RequestContext("a"), detaching),
            request_storage.run(RequestContext("b"), sibling),
        )

    # The detaching task's pool job starts its thread from the job's own context
    # (a copy of the task's, detached flag included); the sibling is unaffected.
    assert await both() == [None, "b"]


def test_a_lazily_started_library_thread_serves_later_requests_without_the_first(
    installed: None,
) -> None:
    threads.install(long_lived=[LIB])
    worker = LazyWorker()
    try:
        first = RequestContext("req-A")
        ref = weakref.ref(first)
        a = request_storage.run(first, lambda: worker.submit(request_id).result(10))
        del first
        b = _in_request("req-B", lambda: worker.submit(request_id).result(10))
        gc.collect()
        assert (a, b) == (None, None)  # the queue hand-off carries no context: placeholder
        assert ref() is None  # the worker thread does not pin request A
    finally:
        worker.close()


def test_the_same_library_without_the_listing_shows_the_problem(installed: None) -> None:
    threads.install(long_lived=())
    worker = LazyWorker()
    try:
        a = _in_request("req-A", lambda: worker.submit(request_id).result(10))
        b = _in_request("req-B", lambda: worker.submit(request_id).result(10))
        assert (a, b) == ("req-A", "req-A")
    finally:
        worker.close()


def test_a_thread_subclass_is_found_by_its_class_module(installed: None) -> None:
    threads.install(long_lived=[LIB])

    def start() -> Any:
        t = ListenerThread()
        t.start()
        t.join(10)
        return t.seen

    assert _in_request("req-3", start) is None
    threads.install(long_lived=[])
    assert _in_request("req-4", start) == "req-4"


def test_a_partial_target_is_unwrapped(installed: None) -> None:
    threads.install(long_lived=[LIB])
    worker = LazyWorker()
    seen: list[Any] = []

    def start() -> None:
        t = threading.Thread(target=functools.partial(worker._loop))
        t.start()
        worker._jobs.put((lambda: seen.append(request_id()), _done()))
        worker._jobs.put(None)
        t.join(10)

    _in_request("req-5", start)
    assert seen == [None]


def _done() -> Any:
    from concurrent.futures import Future

    return Future()


def test_a_queue_listener_started_in_a_request_is_detached_by_default(installed: None) -> None:
    got: queue.SimpleQueue[Any] = queue.SimpleQueue()

    class Probe(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.put(request_id())  # read in the listener's thread

    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, Probe())
    _in_request("req-L", listener.start)
    try:
        q.put(logging.makeLogRecord({"msg": "later"}))
        assert got.get(timeout=10) is None
    finally:
        listener.stop()


def test_stores_of_other_storages_are_not_carried_either(installed: None) -> None:
    tenant: AsyncLocalStorage[str] = AsyncLocalStorage(name="tenant")
    threads.install(long_lived=[LIB])
    worker = LazyWorker()
    try:
        assert tenant.run("acme", lambda: worker.submit(tenant.get_store).result(10)) is None
    finally:
        worker.close()


@pytest.mark.parametrize("bad", ["aiosqlite", [""], [" x"], [3], ["."]])
def test_long_lived_rejects_bad_values(bad: Any) -> None:
    before = threads.installed()
    with pytest.raises(ConfigurationError, match="long_lived"):
        threads.install(long_lived=bad)
    assert threads.installed() is before


def test_the_default_list_names_the_known_long_lived_libraries() -> None:
    assert set(threads.LONG_LIVED_MODULES) >= {"aiosqlite", "logging.handlers"}


def test_a_finished_thread_object_does_not_keep_its_request(installed: None) -> None:
    class Store:
        pass

    store = Store()
    ref = weakref.ref(store)
    tenant: AsyncLocalStorage[Store] = AsyncLocalStorage(name="pinned")
    kept: list[threading.Thread] = []

    def handler() -> None:
        t = threading.Thread(target=tenant.get_store)
        t.start()
        t.join(10)
        kept.append(t)  # the app keeps the Thread object around

    tenant.run(store, handler)
    del store
    gc.collect()
    assert kept[0].is_alive() is False
    assert ref() is None


def test_a_hand_off_that_carries_the_context_shows_the_later_request(installed: None) -> None:
    # The long-lived thread is detached; a job handed over together with its
    # submitter's context (here a snapshot, as a pool's submit does) runs as that request.
    threads.install(long_lived=[LIB])
    worker = LazyWorker()
    try:

        def submit() -> Any:
            run_in_caller = AsyncLocalStorage.snapshot()
            return worker.submit(lambda: run_in_caller(request_id)).result(10)

        assert [_in_request(rid, submit) for rid in ("req-A", "req-B")] == ["req-A", "req-B"]
        assert worker.submit(request_id).result(10) is None  # and nothing stays behind
    finally:
        worker.close()
