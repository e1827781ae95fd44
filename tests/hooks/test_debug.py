"""The context-loss detector, provoked with the plain standard library.

Each failure mode is provoked without `asynclocal.threads.install()` and must
be reported (kind, boundary, storage, stores, scheduling stack); the same code
with propagation installed must report nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from asynclocal import AsyncLocalStorage, debug, hooks, threads

request: AsyncLocalStorage[str] = AsyncLocalStorage(name="debug-test-request")


@pytest.fixture
def detector() -> Iterator[None]:
    debug.clear_reports()
    debug.enable()
    try:
        yield
    finally:
        debug.disable()
        debug.clear_reports()


def read_store() -> str | None:
    return request.get_store()


def ours(reports: list[debug.ContextReport]) -> list[debug.ContextReport]:
    return [r for r in reports if r.storage == request.name]


def scheduled_here(report: debug.ContextReport, function: str) -> bool:
    return any(name == function and file == __file__ for file, _, name in report.created_at)


def start_thread_and_pool_job() -> tuple[str | None, str | None]:
    seen: list[str | None] = []
    thread = threading.Thread(target=lambda: seen.append(read_store()))
    thread.start()
    thread.join()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        job = pool.submit(read_store).result()
    return seen[0], job


def test_off_by_default_and_nothing_patched() -> None:
    assert not debug.enabled()
    originals = (
        getattr(threading, "_start_joinable_thread", getattr(threading, "_start_new_thread", None)),
        concurrent.futures.thread._WorkItem.__init__,
        concurrent.futures.Future.add_done_callback,
    )
    debug.enable()
    debug.enable()
    debug.disable()
    assert (
        getattr(threading, "_start_joinable_thread", getattr(threading, "_start_new_thread", None)),
        concurrent.futures.thread._WorkItem.__init__,
        concurrent.futures.Future.add_done_callback,
    ) == originals
    request.run("r-0", start_thread_and_pool_job)
    assert debug.reports() == []


def test_thread_and_pool_job_without_propagation_are_reported(
    detector: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="asynclocal.debug"):
        thread_saw, job_saw = request.run("r-1", start_thread_and_pool_job)
    assert (thread_saw, job_saw) == (None, None)  # the stdlib really dropped it
    reports = ours(debug.reports())
    assert [(r.kind, r.boundary) for r in reports] == [("lost", "thread"), ("lost", "executor job")]
    for r in reports:
        assert r.expected == "'r-1'"
        assert r.found is None
        assert scheduled_here(r, "start_thread_and_pool_job")
    assert reports[1].target == "read_store"
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "asynclocal.debug"]
    assert any("context lost at ThreadPoolExecutor job read_store" in m for m in logged)
    assert any("start_thread_and_pool_job" in m for m in logged)  # the scheduling stack


def test_nothing_reported_with_propagation_installed(
    detector: None, threads_installed: None
) -> None:
    assert request.run("r-2", start_thread_and_pool_job) == ("r-2", "r-2")
    assert ours(debug.reports()) == []


def test_drop_in_classes_are_not_reported(detector: None) -> None:
    def work() -> tuple[str | None, str | None]:
        seen: list[str | None] = []
        thread = threads.Thread(target=lambda: seen.append(read_store()))
        thread.start()
        thread.join()
        with threads.ThreadPoolExecutor(1) as pool:
            return seen[0], pool.submit(read_store).result()

    assert request.run("r-3", work) == ("r-3", "r-3")
    assert ours(debug.reports()) == []


def leak_through_a_pooled_worker(pool: concurrent.futures.ThreadPoolExecutor) -> str | None:
    # Request A's job sets its store in the worker thread itself (what code
    # written for threading.local does) ...
    request.run("request-A", lambda: pool.submit(request.enter_with, "request-A").result())
    # ... and request B's job, on the same worker, sees request A's store.
    return request.run("request-B", lambda: pool.submit(read_store).result())


def test_pooled_worker_leaking_another_requests_store_is_reported(detector: None) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        seen = leak_through_a_pooled_worker(pool)
    assert seen == "request-A"  # the leak is real
    reports = ours(debug.reports())
    leaks = [r for r in reports if r.kind == "leak"]
    assert len(leaks) == 1
    assert leaks[0].boundary == "executor job"
    assert (leaks[0].expected, leaks[0].found) == ("'request-B'", "'request-A'")
    assert scheduled_here(leaks[0], "leak_through_a_pooled_worker")


def test_no_leak_reported_with_propagation(detector: None, threads_installed: None) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert leak_through_a_pooled_worker(pool) == "request-B"
    assert ours(debug.reports()) == []


def register_callbacks(bound: bool) -> list[str | None]:
    seen: list[str | None] = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(time.sleep, 0.05)

        def callback(_: concurrent.futures.Future[None]) -> None:
            seen.append(read_store())

        future.add_done_callback(AsyncLocalStorage.bind(callback) if bound else callback)
    return seen


def test_callback_registered_through_a_context_dropping_api(detector: None) -> None:
    assert request.run("r-4", register_callbacks, False) == [None]
    reports = [r for r in ours(debug.reports()) if r.boundary == "done callback"]
    assert len(reports) == 1
    assert reports[0].kind == "lost"
    assert reports[0].expected == "'r-4'"
    assert reports[0].target.endswith("callback")
    assert scheduled_here(reports[0], "register_callbacks")


def test_bound_callback_is_not_reported(detector: None) -> None:
    assert request.run("r-5", register_callbacks, True) == ["r-5"]
    assert [r for r in ours(debug.reports()) if r.boundary == "done callback"] == []


def test_run_in_executor_loss_and_fix(detector: None) -> None:
    async def handler() -> str | None:
        return await asyncio.get_running_loop().run_in_executor(None, read_store)

    assert asyncio.run(request.run("r-6", handler)) is None
    lost = [r for r in ours(debug.reports()) if r.boundary == "executor job"]
    assert [(r.kind, r.expected) for r in lost] == [("lost", "'r-6'")]
    assert scheduled_here(lost[0], "handler")
    debug.clear_reports()
    threads.install()
    try:
        assert asyncio.run(request.run("r-7", handler)) == "r-7"
    finally:
        threads.uninstall()
    assert ours(debug.reports()) == []


def test_environment_variable_enables_the_detector_when_asked() -> None:
    code = (
        "import threading, asynclocal\n"
        "from asynclocal import AsyncLocalStorage, debug\n"
        "assert not debug.enabled()  # importing reads no environment\n"
        "assert asynclocal.enable_from_env() == ['debug']\n"
        "als = AsyncLocalStorage(name='env')\n"
        "def go():\n"
        "    t = threading.Thread(target=als.get_store); t.start(); t.join()\n"
        "als.run('x', go)\n"
        "print(debug.enabled(), [(r.kind, r.storage) for r in debug.reports()])\n"
    )
    env = {**os.environ, "ASYNCLOCAL_DEBUG": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True [('lost', 'env')]"
    assert "context lost at threading.Thread started" in out.stderr  # logged, with the stack


def test_to_thread_propagates_and_is_not_reported_even_under_hooks(detector: None) -> None:
    async def handler() -> str | None:
        return await asyncio.to_thread(read_store)

    tracking = hooks.create_hook().enable()  # executor jobs wrapped as hook resources
    try:
        assert asyncio.run(request.run("r-8", handler)) == "r-8"
        assert asyncio.run(request.run("r-9", handler)) == "r-9"
    finally:
        tracking.disable()
    assert ours(debug.reports()) == []
