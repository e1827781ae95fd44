"""Eager tasks (3.12+): a task whose first step runs inside `create_task`.

`asyncio.eager_task_factory` (and ``create_task(..., eager_start=True)`` on 3.14) runs
the coroutine up to its first suspension before `create_task` returns; a task that
never suspends finishes right there. Each such task is still one resource: one
``init``, one ``destroy``, its own execution id inside, and the stores of its creator.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, hooks

from .conftest import Recorder

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio.eager_task_factory is new in 3.12"
)

als: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.hooks.eager")


async def finishes_at_once(tag: str) -> tuple[str | None, int]:
    return als.get_store() or tag, hooks.execution_async_id()


async def suspends_once(tag: str) -> tuple[str | None, int]:
    await asyncio.sleep(0)
    return als.get_store() or tag, hooks.execution_async_id()


def _run_eager(main: Any) -> Any:
    loop = asyncio.new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("body", [finishes_at_once, suspends_once])
@pytest.mark.parametrize("tracked", [True, False], ids=["hooks-enabled", "no-hooks"])
def test_an_eager_task_is_one_resource_and_sees_its_creators_store(
    body: Any, tracked: bool
) -> None:
    rec = Recorder()
    hook = rec.hook().enable() if tracked else None
    created: dict[str, tuple[asyncio.Task[Any], int]] = {}

    async def request(rid: str) -> tuple[str | None, int]:
        task = asyncio.get_running_loop().create_task(body("none"))
        created[rid] = (task, hooks.execution_async_id())
        return await task

    async def main() -> dict[str, tuple[str | None, int]]:
        results = await asyncio.gather(*(als.run(f"r{i}", request, f"r{i}") for i in range(20)))
        return {f"r{i}": r for i, r in enumerate(results)}

    try:
        results = _run_eager(main)
        created_tasks = {rid: task for rid, (task, _) in created.items()}
        created.clear()
        gc.collect()
    finally:
        if hook is not None:
            hook.disable()
    # Stores: every task sees the store of the request that created it, eager or not.
    assert {rid: store for rid, (store, _) in results.items()} == {
        f"r{i}": f"r{i}" for i in range(20)
    }
    if not tracked:
        assert rec.events == []
        return
    task_ids = {e.async_id for e in rec.of("init") if e.type == "Task"}
    eager = {
        e.async_id: e
        for e in rec.of("init")
        if e.type == "Task" and e.label == f"Task {body.__qualname__}"
    }
    assert len(eager) == 20
    inits = Counter(e.async_id for e in rec.of("init"))
    destroys = Counter(e.async_id for e in rec.of("destroy"))
    for async_id in eager:
        assert inits[async_id] == 1
        assert destroys[async_id] == 1
    # Inside the task its own id is the execution id; its trigger is the creator.
    for rid, (_, seen_id) in results.items():
        assert seen_id in eager
        assert eager[seen_id].resource is created_tasks[rid]
    assert all(inits[i] == 1 for i in task_ids)
    assert all(destroys[i] == 1 for i in task_ids)


def test_eager_tasks_created_with_asyncio_create_task_balance_before_and_after() -> None:
    rec = Recorder()
    hook = rec.hook().enable()

    async def main() -> None:
        for _ in range(10):
            await asyncio.create_task(finishes_at_once("x"))
            await asyncio.create_task(suspends_once("y"))

    try:
        _run_eager(main)
        gc.collect()
    finally:
        hook.disable()
    tasks = {e.async_id for e in rec.of("init") if e.type == "Task"}
    assert len(tasks) >= 20
    for kind in ("init", "destroy"):
        counts = Counter(e.async_id for e in rec.of(kind))
        assert all(counts[i] == 1 for i in tasks), kind
    befores = Counter(e.async_id for e in rec.of("before"))
    afters = Counter(e.async_id for e in rec.of("after"))
    assert {i: befores[i] for i in tasks} == {i: afters[i] for i in tasks}
