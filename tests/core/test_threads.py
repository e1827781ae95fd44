"""`asynclocal.threads`: context carried into threads and thread pools."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import hashlib
import sys
import threading
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, threads

als: AsyncLocalStorage[str] = AsyncLocalStorage(name="threads.request", default="none")

# Before Python 3.14 (or with thread context inheritance off) a plain thread
# starts in an empty context: the boundary this module exists for.
STD_THREADS_INHERIT = bool(getattr(sys.flags, "thread_inherit_context", 0))


def _in_thread(cls: type[threading.Thread]) -> str | None:
    out: list[str | None] = []
    t = cls(target=lambda: out.append(als.get_store()))
    t.start()
    t.join(10)
    return out[0]


def test_drop_in_thread_sees_the_context_of_the_caller_of_start() -> None:
    out: list[str | None] = []
    t = als.run("constructor", threads.Thread, target=lambda: out.append(als.get_store()))
    als.run("starter", t.start)
    t.join(10)
    assert out == ["starter"]


def test_drop_in_thread_changes_stay_in_the_thread() -> None:
    def body() -> None:
        als.enter_with("thread")

    def main() -> str | None:
        als.enter_with("main")
        t = threads.Thread(target=body)
        t.start()
        t.join(10)
        return als.get_store()

    assert contextvars.Context().run(main) == "main"


@pytest.mark.skipif(STD_THREADS_INHERIT, reason="this Python already inherits the context")
def test_plain_thread_loses_the_context_without_install() -> None:
    assert not threads.installed()
    assert als.run("req", _in_thread, threading.Thread) == "none"


def test_drop_in_pool_job_sees_submitters_store() -> None:
    with threads.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [als.run(f"r{i}", pool.submit, als.get_store) for i in range(20)]
        assert [f.result(10) for f in futures] == [f"r{i}" for i in range(20)]
        assert list(als.run("m", pool.map, lambda _: als.get_store(), range(3))) == ["m"] * 3


def _leak_then_read(pool: concurrent.futures.ThreadPoolExecutor) -> list[str | None]:
    # Request 1's job leaves a store behind on the (single) worker thread;
    # request 2 then runs a job on that same thread, from a context without a store.
    def leave_behind() -> int:
        als.enter_with("request-1")
        return threading.get_ident()

    def read() -> tuple[str | None, int]:
        return als.get_store(), threading.get_ident()

    first = als.run("request-1", pool.submit, leave_behind).result(10)
    seen, second = pool.submit(read).result(10)
    assert first == second  # the same pooled thread served both
    seen_other, _ = als.run("request-3", pool.submit, read).result(10)
    return [seen, seen_other]


def test_reused_pool_thread_never_sees_a_previous_jobs_store() -> None:
    with threads.ThreadPoolExecutor(max_workers=1) as pool:
        assert _leak_then_read(pool) == ["none", "request-3"]


def test_plain_pool_shows_the_threading_local_leak() -> None:
    # Control: the standard pool runs jobs in the worker's own context, so the leak
    # is real there; a pass above therefore proves the drop-in fixes it.
    assert not threads.installed()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert _leak_then_read(pool)[0] == "request-1"


def test_install_is_idempotent_and_reversible() -> None:
    assert not threads.installed()
    original_start = threading.Thread.start
    original_submit = concurrent.futures.ThreadPoolExecutor.submit
    try:
        threads.install()
        threads.install()
        assert threads.installed()
        assert als.run("req", _in_thread, threading.Thread) == "req"
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            assert _leak_then_read(pool) == ["none", "request-3"]
        with threads.ThreadPoolExecutor(max_workers=1) as pool:  # no double wrapping
            assert als.run("x", pool.submit, als.get_store).result(10) == "x"
    finally:
        threads.uninstall()
        threads.uninstall()
    assert not threads.installed()
    assert threading.Thread.start is original_start
    assert concurrent.futures.ThreadPoolExecutor.submit is original_submit
    if not STD_THREADS_INHERIT:
        assert als.run("req", _in_thread, threading.Thread) == "none"


@pytest.mark.usefixtures("threads_installed")
async def test_run_in_executor_and_to_thread_carry_the_store() -> None:
    loop = asyncio.get_running_loop()

    async def handle(i: int) -> tuple[str | None, str | None, str | None]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as plain:
            in_plain = await loop.run_in_executor(plain, als.get_store)
        in_default = await loop.run_in_executor(None, als.get_store)
        in_to_thread = await asyncio.to_thread(als.get_store)
        return in_plain, in_default, in_to_thread

    results = await asyncio.gather(*(als.run(f"r{i}", handle, i) for i in range(10)))
    assert results == [(f"r{i}",) * 3 for i in range(10)]


async def test_pbkdf2_jobs_in_parallel_each_callback_sees_its_own_store() -> None:
    # Four CPU-heavy jobs at once in the pool;
    # the completion callback back on the loop sees the request that started it.
    loop = asyncio.get_running_loop()
    seen: dict[str, Any] = {}

    # All four jobs must be running at once before any of them finishes, so the pool
    # runs them on four threads however fast each one is.
    all_running = threading.Barrier(4, timeout=30)

    with threads.ThreadPoolExecutor(max_workers=4) as pool:

        def derive(password: bytes) -> tuple[bytes, str | None, int]:
            all_running.wait()
            key = hashlib.pbkdf2_hmac("sha512", password, b"salt", 20_000)
            return key, als.get_store(), threading.get_ident()

        async def request(i: int) -> str:
            fut = loop.run_in_executor(pool, derive, f"pw{i}".encode())
            done = asyncio.Event()

            def on_done(f: asyncio.Future[tuple[bytes, str | None, int]]) -> None:
                seen[f"callback-{i}"] = als.get_store()
                done.set()

            fut.add_done_callback(on_done)
            key, in_job, ident = await fut
            await done.wait()
            seen[f"job-{i}"] = in_job
            seen[f"thread-{i}"] = ident
            assert key == hashlib.pbkdf2_hmac("sha512", f"pw{i}".encode(), b"salt", 20_000)
            return str(als.get_store())

        results = await asyncio.gather(*(als.run(f"req-{i}", request, i) for i in range(4)))

    assert results == [f"req-{i}" for i in range(4)]
    for i in range(4):
        assert seen[f"job-{i}"] == f"req-{i}"
        assert seen[f"callback-{i}"] == f"req-{i}"
    assert len({seen[f"thread-{i}"] for i in range(4)}) == 4  # four workers, in parallel


def test_submit_rejects_non_callables() -> None:
    with (
        threads.ThreadPoolExecutor(max_workers=1) as pool,
        pytest.raises(TypeError, match="expected a callable"),
    ):
        pool.submit(5)  # type: ignore[arg-type]
