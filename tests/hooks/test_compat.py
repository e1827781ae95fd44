"""With hooks enabled, asyncio's higher-level APIs and anyio behave exactly as without."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest

from asynclocal import AsyncLocalStorage, hooks

from .conftest import Recorder

Run = Callable[[Coroutine[Any, Any, Any]], Any]
store: AsyncLocalStorage[str] = AsyncLocalStorage(name="hooks-compat")


async def stdlib_tour() -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with asyncio.TaskGroup() as group:
        first = group.create_task(asyncio.sleep(0.001, result="tg"))
    out["taskgroup"] = first.result()
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)
    except TimeoutError:
        out["timeout"] = True
    out["wait_for"] = await asyncio.wait_for(asyncio.sleep(0, result="wf"), 1)
    out["to_thread"] = await asyncio.to_thread(threading.current_thread)
    queue: asyncio.Queue[int] = asyncio.Queue()
    event = asyncio.Event()

    async def producer() -> None:
        for i in range(5):
            await queue.put(i)
        event.set()

    task = asyncio.create_task(producer(), name="producer")
    await event.wait()
    out["queue"] = [queue.get_nowait() for _ in range(5)]
    out["task_name"] = task.get_name()
    out["task_repr"] = repr(task)
    out["stack"] = asyncio.current_task().get_stack()  # type: ignore[union-attr]
    out["store"] = await store.run("request-1", lambda: asyncio.create_task(read_store()))
    return out


async def read_store() -> str | None:
    await asyncio.sleep(0)
    return store.get_store()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup and timeout are 3.11+")
def test_stdlib_apis_unchanged_under_hooks(run: Run, recorder: Recorder) -> None:
    out = run(stdlib_tour())
    assert out["taskgroup"] == "tg"
    assert out["timeout"] is True
    assert out["wait_for"] == "wf"
    assert out["to_thread"] is not threading.main_thread()
    assert out["queue"] == [0, 1, 2, 3, 4]
    assert out["task_name"] == "producer"
    assert "producer()" in out["task_repr"]
    assert out["stack"]  # frames of the running coroutine are still reachable
    assert out["store"] == "request-1"  # stores flow into tasks as before
    destroys = Counter(e.async_id for e in recorder.of("destroy"))
    assert set(destroys.values()) <= {1}


def test_anyio_task_groups_under_hooks(recorder: Recorder) -> None:
    results: list[int] = []

    async def child(n: int) -> None:
        await anyio.sleep(0.001)
        results.append(hooks.execution_async_id())

    async def main() -> int:
        async with anyio.create_task_group() as group:
            for n in range(3):
                group.start_soon(child, n)
        # anyio's own worker threads copy the caller's context: the code runs
        # under the calling task's id.
        assert (
            await anyio.to_thread.run_sync(hooks.execution_async_id) == hooks.execution_async_id()
        )
        return hooks.execution_async_id()

    main_id = anyio.run(main)
    inits = recorder.inits()
    assert len(set(results)) == 3
    assert all(inits[i].type == "Task" for i in results)
    assert {inits[i].trigger for i in results} == {main_id}
