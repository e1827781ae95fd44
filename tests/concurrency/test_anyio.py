"""anyio (asyncio and trio backends): stores flow natively through task groups and to/from_thread.

Nothing here needs asynclocal code beyond `AsyncLocalStorage`: anyio copies the
caller's context into tasks, worker threads and `from_thread` calls.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from asynclocal import AsyncLocalStorage

als: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.concurrency.anyio")

pytestmark = pytest.mark.parametrize("backend", ["asyncio", "trio"])


async def _jitter() -> None:
    await anyio.sleep(random.uniform(0, 0.002))


def test_task_groups_interleaved_requests(backend: str) -> None:
    """50 requests, each starting tasks (and nested groups) that must see only its store."""
    results: list[tuple[str, str | None]] = []

    async def leaf(expected: str) -> None:
        await _jitter()
        results.append((expected, als.get_store()))

    async def request(i: int) -> None:
        store = f"req-{i}"
        await _jitter()
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(leaf, store)
            tg.start_soon(nested, store)

    async def nested(store: str) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(leaf, store)
        await leaf(store)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                als.run(f"req-{i}", tg.start_soon, request, i)

    anyio.run(main, backend=backend)
    assert len(results) == 50 * 5
    assert all(expected == got for expected, got in results)


def test_task_sees_the_context_of_start_soon_caller_not_of_the_group(backend: str) -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}

        async def child(key: str) -> None:
            out[key] = als.get_store()

        async def starter(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            task_status.started(als.get_store())

        async with anyio.create_task_group() as tg:  # opened with no store
            als.run("inner", tg.start_soon, child, "start_soon")
            out["start"] = await als.run("started", tg.start, starter)
        out["after"] = als.get_store()
        return out

    assert anyio.run(main, backend=backend) == {
        "start_soon": "inner",
        "start": "started",
        "after": None,
    }


def test_a_task_change_does_not_leak_to_its_parent_or_siblings(backend: str) -> None:
    async def main() -> list[str | None]:
        seen: list[str | None] = []

        async def changer() -> None:
            als.enter_with("child-only")
            await _jitter()

        async def sibling() -> None:
            await anyio.sleep(0.005)
            seen.append(als.get_store())

        async with anyio.create_task_group() as tg:
            tg.start_soon(changer)
            tg.start_soon(sibling)
        seen.append(als.get_store())
        return seen

    assert anyio.run(als.run, "parent", main, backend=backend) == ["parent", "parent"]


def test_to_thread_run_sync_carries_and_isolates(backend: str) -> None:
    """Worker threads are reused: each call sees its caller's store, never a previous one's."""

    def in_thread(expected: str) -> tuple[str, str | None, int]:
        got = als.get_store()
        als.enter_with(f"left-behind-by-{expected}")  # must not reach the next job
        return expected, got, threading.get_ident()

    async def request(
        i: int, out: list[tuple[str, str | None, int]], limiter: anyio.CapacityLimiter
    ) -> None:
        await _jitter()
        out.append(await anyio.to_thread.run_sync(in_thread, f"req-{i}", limiter=limiter))
        run_sync = anyio.to_thread.run_sync
        out.append(await als.exit(run_sync, in_thread, "none", limiter=limiter))

    async def main() -> list[tuple[str, str | None, int]]:
        out: list[tuple[str, str | None, int]] = []
        limiter = anyio.CapacityLimiter(3)  # few threads, so they are reused
        async with anyio.create_task_group() as tg:
            for i in range(30):
                als.run(f"req-{i}", tg.start_soon, request, i, out, limiter)
        return out

    out = anyio.run(main, backend=backend)
    assert len(out) == 60
    for expected, got, _ in out:
        assert got == (None if expected == "none" else expected)
    assert len({ident for *_, ident in out}) < len(out)  # threads were reused


def test_from_thread_runs_in_the_calling_thread_context(backend: str) -> None:
    async def read_async() -> str | None:
        await anyio.lowlevel.checkpoint()
        return als.get_store()

    def in_thread(i: int) -> tuple[Any, ...]:
        inherited = anyio.from_thread.run(read_async)
        return (
            inherited,
            anyio.from_thread.run_sync(als.get_store),
            als.run(f"thread-{i}", anyio.from_thread.run, read_async),
            als.run(f"thread-{i}", anyio.from_thread.run_sync, als.get_store),
        )

    async def main() -> list[tuple[int, tuple[Any, ...]]]:
        out: list[tuple[int, tuple[Any, ...]]] = []

        async def request(i: int) -> None:
            out.append((i, await anyio.to_thread.run_sync(in_thread, i)))

        async with anyio.create_task_group() as tg:
            for i in range(20):
                als.run(f"req-{i}", tg.start_soon, request, i)
        return out

    for i, got in anyio.run(main, backend=backend):
        assert got == (f"req-{i}", f"req-{i}", f"thread-{i}", f"thread-{i}")


def test_blocking_portal_from_a_foreign_thread(backend: str) -> None:
    async def read_async() -> str | None:
        return als.get_store()

    with anyio.from_thread.start_blocking_portal(backend) as portal:
        results = []
        for i in range(10):
            store = f"caller-{i}"
            results.append((store, als.run(store, portal.call, read_async)))
            results.append((store, als.run(store, portal.call, als.get_store)))
            future = als.run(store, portal.start_task_soon, read_async)
            results.append((store, future.result(5)))
        assert portal.call(read_async) is None
    assert all(expected == got for expected, got in results)
