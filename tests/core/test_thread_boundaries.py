"""Thread boundaries: `asynclocal.threads` install, drop-in pools and threads, anyio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from asynclocal import AsyncLocalStorage, threads

from .._optional import needs_uvloop

# ------------------------------------------------------------------------- threads


def test_install_makes_a_plain_timer_carry_the_context(threads_installed: None) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen: list[str | None] = []
    timer = als.run("req", lambda: threading.Timer(0.001, lambda: seen.append(als.get_store())))
    # The context of the caller of start(), not of the constructor.
    als.run("started", timer.start)
    timer.join(10)
    assert seen == ["started"]


def test_install_covers_threadpoolexecutor_map(threads_installed: None) -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = als.run(9, lambda: list(pool.map(lambda i: (i, als.get_store()), range(6))))
        later = list(pool.map(lambda i: als.get_store(), range(4)))
    assert got == [(i, 9) for i in range(6)]
    assert later == [None] * 4


async def test_install_covers_run_in_executor_and_to_thread(threads_installed: None) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    loop = asyncio.get_running_loop()

    async def request(rid: str) -> tuple[str | None, str | None, str | None]:
        a = await loop.run_in_executor(None, als.get_store)
        b = await asyncio.to_thread(als.get_store)
        with concurrent.futures.ThreadPoolExecutor(1) as own:
            c = await loop.run_in_executor(own, als.get_store)
        return a, b, c

    results = await asyncio.gather(*(als.run(f"r{i}", request, f"r{i}") for i in range(8)))
    assert results == [(f"r{i}",) * 3 for i in range(8)]


def test_a_reused_pool_thread_never_sees_a_previous_jobs_store(threads_installed: None) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def leaky_job() -> str:
        als.enter_with("left behind")
        return threading.current_thread().name

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = als.run("req-1", pool.submit, leaky_job).result(10)
        second = pool.submit(lambda: (threading.current_thread().name, als.get_store()))
        assert second.result(10) == (first, None)
        third = als.run("req-3", pool.submit, als.get_store).result(10)
    assert third == "req-3"


def test_drop_in_thread_and_pool_without_install() -> None:
    if threads.installed():
        pytest.skip("threads.install() is in effect for this session")
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen: list[str | None] = []
    t = threads.Thread(target=lambda: seen.append(als.get_store()))
    als.run("t", t.start)
    t.join(10)
    plain = threading.Thread(target=lambda: seen.append(als.get_store()))
    als.run("plain", plain.start)
    plain.join(10)
    with threads.ThreadPoolExecutor(1) as pool:
        seen.append(als.run("p", pool.submit, als.get_store).result(10))
        seen.append(pool.submit(als.get_store).result(10))
    assert seen == ["t", None, "p", None]


def _thread_api_state() -> dict[str, Any]:
    return {
        "Thread": dict(vars(threading.Thread)),
        "Timer": dict(vars(threading.Timer)),
        "TPE": dict(vars(concurrent.futures.ThreadPoolExecutor)),
        "thread_cls": threading.Thread,
        "tpe_cls": concurrent.futures.ThreadPoolExecutor,
    }


def test_install_twice_then_uninstall_once_leaves_the_stdlib_pristine() -> None:
    was = threads.installed()
    if was:
        threads.uninstall()
    try:
        pristine = _thread_api_state()
        threads.install()
        threads.install()
        assert threads.installed()
        assert vars(threading.Thread)["start"] is not pristine["Thread"]["start"]
        threads.uninstall()
        assert not threads.installed()
        assert _thread_api_state() == pristine
        threads.uninstall()  # idempotent
        assert _thread_api_state() == pristine
        als: AsyncLocalStorage[str] = AsyncLocalStorage()
        seen: list[str | None] = []
        t = threading.Thread(target=lambda: seen.append(als.get_store()))
        als.run("req", t.start)
        t.join(10)
        assert seen == [None]  # behaves like the stdlib again
    finally:
        if was:
            threads.install()


@pytest.mark.parametrize(
    ("backend", "options"),
    [
        pytest.param("asyncio", {}, id="asyncio"),
        pytest.param("asyncio", {"use_uvloop": True}, id="uvloop", marks=needs_uvloop),
        pytest.param("trio", {}, id="trio"),
    ],
)
def test_anyio_task_groups_to_thread_and_from_thread(backend: str, options: Any) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}

        async def child(rid: str) -> None:
            await anyio.lowlevel.checkpoint()
            out[f"child-{rid}"] = als.get_store()

        def in_thread() -> tuple[str | None, str | None, str | None]:
            async def back_on_the_loop() -> str | None:
                await anyio.lowlevel.checkpoint()
                return als.get_store()

            return (
                als.get_store(),
                anyio.from_thread.run(back_on_the_loop),
                anyio.from_thread.run_sync(als.get_store),
            )

        async def request(rid: str) -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(child, rid)
            out[f"thread-{rid}"] = await anyio.to_thread.run_sync(in_thread)

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(als.run, f"r{i}", request, f"r{i}")
        return out

    out = anyio.run(main, backend=backend, backend_options=options)
    assert out == {
        **{f"child-r{i}": f"r{i}" for i in range(4)},
        **{f"thread-r{i}": (f"r{i}",) * 3 for i in range(4)},
    }
