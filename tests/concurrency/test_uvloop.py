"""uvloop: tasks and loop callbacks carry stores natively; executors need `asynclocal.threads`."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from asynclocal import AsyncLocalStorage

als: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.concurrency.uvloop")


def _run_new_loop(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _run_runner(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


RUNNERS = [pytest.param(_run_new_loop, id="new_event_loop")]
if sys.version_info >= (3, 11):
    RUNNERS.append(pytest.param(_run_runner, id="Runner"))


@pytest.mark.parametrize("run", RUNNERS)
def test_tasks_and_callbacks_interleaved_requests(run: Callable[..., Any]) -> None:
    async def request(i: int) -> list[tuple[str, str | None]]:
        expected = f"req-{i}"
        loop = asyncio.get_running_loop()
        assert type(loop).__module__.startswith("uvloop")
        out: list[tuple[str, str | None]] = []

        async def child() -> None:
            await asyncio.sleep(random.uniform(0, 0.002))
            out.append((expected, als.get_store()))

        await asyncio.gather(*(asyncio.create_task(child()) for _ in range(3)))
        done: asyncio.Future[None] = loop.create_future()

        def callback(kind: str) -> None:
            out.append((expected, als.get_store()))
            if kind == "later" and not done.done():
                done.set_result(None)

        loop.call_soon(callback, "soon")
        loop.call_later(random.uniform(0, 0.003), callback, "later")
        await done
        return out

    async def main() -> list[list[tuple[str, str | None]]]:
        return await asyncio.gather(*(als.run(f"req-{i}", request, i) for i in range(40)))

    batches = run(main)
    assert sum(len(b) for b in batches) == 40 * 5
    assert all(expected == got for batch in batches for expected, got in batch)


@pytest.mark.parametrize("run", RUNNERS)
def test_call_soon_threadsafe_runs_in_the_calling_thread_context(run: Callable[..., Any]) -> None:
    async def main() -> list[tuple[str, str | None]]:
        loop = asyncio.get_running_loop()
        out: list[tuple[str, str | None]] = []
        done = asyncio.Event()

        def from_thread(i: int) -> None:
            def callback() -> None:
                out.append((f"thread-{i}", als.get_store()))
                if len(out) == 10:
                    done.set()

            als.run(f"thread-{i}", loop.call_soon_threadsafe, callback)

        threads = [threading.Thread(target=from_thread, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        await asyncio.wait_for(done.wait(), 10)
        for t in threads:
            t.join()
        return out

    assert all(expected == got for expected, got in run(main))


@pytest.mark.parametrize("run", RUNNERS)
@pytest.mark.usefixtures("threads_installed")
def test_run_in_executor_with_threads_installed(run: Callable[..., Any]) -> None:
    """uvloop's default executor is a ThreadPoolExecutor: `asynclocal.threads.install()`."""

    def job(expected: str) -> tuple[str, str | None]:
        got = als.get_store()
        als.enter_with(f"left-behind-by-{expected}")  # must not reach the next job
        return expected, got

    async def request(i: int) -> list[tuple[str, str | None]]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, 0.002))
        return [
            await loop.run_in_executor(None, job, f"req-{i}"),
            await asyncio.to_thread(job, f"req-{i}"),
            await als.exit(loop.run_in_executor, None, job, "none"),
        ]

    async def main() -> list[list[tuple[str, str | None]]]:
        return await asyncio.gather(*(als.run(f"req-{i}", request, i) for i in range(30)))

    for batch in run(main):
        for expected, got in batch:
            assert got == (None if expected == "none" else expected)
