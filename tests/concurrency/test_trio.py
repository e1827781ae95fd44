"""trio: stores flow natively through nurseries, `trio.to_thread` and `trio.from_thread`."""

from __future__ import annotations

import random
import threading
from typing import Any

import trio

from asynclocal import AsyncLocalStorage

als: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.concurrency.trio")


async def _jitter() -> None:
    await trio.sleep(random.uniform(0, 0.002))


def test_nurseries_interleaved_requests() -> None:
    results: list[tuple[str, str | None]] = []

    async def leaf(expected: str) -> None:
        await _jitter()
        results.append((expected, als.get_store()))

    async def request(i: int) -> None:
        await _jitter()
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(leaf, f"req-{i}")
            als.enter_with(f"req-{i}-late")  # affects tasks started after this line only
            nursery.start_soon(leaf, f"req-{i}-late")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(50):
                als.run(f"req-{i}", nursery.start_soon, request, i)

    trio.run(main)
    assert len(results) == 200
    assert all(expected == got for expected, got in results)


def test_task_change_stays_in_the_task_and_start_sees_caller() -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}

        async def changer() -> None:
            als.enter_with("child-only")
            await _jitter()
            out["child"] = als.get_store()

        async def starter(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started(als.get_store())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(changer)
            out["start"] = await als.run("started", nursery.start, starter)
        out["parent"] = als.get_store()
        return out

    assert trio.run(als.run, "parent", main) == {
        "child": "child-only",
        "start": "started",
        "parent": "parent",
    }


def test_to_thread_carries_and_reused_threads_never_leak() -> None:
    def in_thread(expected: str) -> tuple[str, str | None, int]:
        got = als.get_store()
        als.enter_with(f"left-behind-by-{expected}")
        return expected, got, threading.get_ident()

    async def main() -> list[tuple[str, str | None, int]]:
        out: list[tuple[str, str | None, int]] = []
        limiter = trio.CapacityLimiter(3)

        async def request(i: int) -> None:
            await _jitter()
            out.append(await trio.to_thread.run_sync(in_thread, f"req-{i}", limiter=limiter))
            run_sync = trio.to_thread.run_sync
            out.append(await als.exit(run_sync, in_thread, "none", limiter=limiter))

        async with trio.open_nursery() as nursery:
            for i in range(30):
                als.run(f"req-{i}", nursery.start_soon, request, i)
        return out

    out = trio.run(main)
    assert len(out) == 60
    for expected, got, _ in out:
        assert got == (None if expected == "none" else expected)
    assert len({ident for *_, ident in out}) < len(out)


def test_from_thread_runs_in_the_calling_thread_context() -> None:
    async def read_async() -> str | None:
        await trio.lowlevel.checkpoint()
        return als.get_store()

    def in_thread(i: int) -> tuple[Any, ...]:
        return (
            trio.from_thread.run(read_async),
            trio.from_thread.run_sync(als.get_store),
            als.run(f"thread-{i}", trio.from_thread.run, read_async),
            als.run(f"thread-{i}", trio.from_thread.run_sync, als.get_store),
        )

    async def main() -> list[tuple[int, tuple[Any, ...]]]:
        out: list[tuple[int, tuple[Any, ...]]] = []

        async def request(i: int) -> None:
            await _jitter()
            out.append((i, await trio.to_thread.run_sync(in_thread, i)))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                als.run(f"req-{i}", nursery.start_soon, request, i)
        return out

    for i, got in trio.run(main):
        assert got == (f"req-{i}", f"req-{i}", f"thread-{i}", f"thread-{i}")
