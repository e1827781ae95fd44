"""The resource graph of a small program, its event order, and exactly-once destroy.

The program mixes tasks creating tasks, gather, timers (`call_later` and
`asyncio.sleep`), `call_soon`, futures, executor jobs, a failing task, a task
cancelled while running and one cancelled before its first step. The tests
rebuild the parent-child tree from the `init` events and compare it with the
tree the program's code implies, on the default loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

from asynclocal import hooks

from .conftest import Event, Recorder

Run = Callable[[Coroutine[Any, Any, Any]], Any]
Tree = tuple[str, tuple[Any, ...]]

seen: list[tuple[str, int, int, object]] = []


def note(name: str) -> None:
    seen.append(
        (
            name,
            hooks.execution_async_id(),
            hooks.trigger_async_id(),
            hooks.execution_async_resource(),
        )
    )


def blocking(tag: str) -> str:
    note("blocking")
    return tag.upper()


async def leaf(tag: str) -> str:
    note("leaf")
    await asyncio.sleep(0.001)
    return tag


async def worker(tag: str) -> str:
    note("worker")
    loop = asyncio.get_running_loop()
    child = asyncio.create_task(leaf(tag))
    upper = await loop.run_in_executor(None, blocking, tag)
    note("worker")  # a later step of the same task
    return upper + await child


async def failing() -> None:
    await asyncio.sleep(0)
    raise ValueError("boom")


async def sleeper() -> None:
    await asyncio.sleep(10)


def on_timer(fut: asyncio.Future[str]) -> None:
    note("on_timer")
    asyncio.get_running_loop().call_soon(on_soon, fut)


def on_soon(fut: asyncio.Future[str]) -> None:
    note("on_soon")
    fut.set_result("timer")


async def program() -> list[Any]:
    note("program")
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.001, on_timer, fut)
    results = await asyncio.gather(worker("a"), worker("b"), failing(), return_exceptions=True)
    running = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    running.cancel()
    unstarted = asyncio.create_task(sleeper())
    unstarted.cancel()
    loop.call_later(10, on_soon, fut).cancel()
    await asyncio.gather(running, unstarted, return_exceptions=True)
    return [*results, await fut]


def label(event: Event) -> str:
    return event.label


def tree_of(rec: Recorder, root: int) -> Tree:
    inits = rec.inits()
    children: dict[int, list[int]] = defaultdict(list)
    for e in inits.values():
        children[e.trigger].append(e.async_id)

    def build(node: int) -> Tree:
        return (label(inits[node]), tuple(sorted(build(c) for c in children[node])))

    return build(root)


def node(name: str, *kids: Tree) -> Tree:
    return (name, tuple(sorted(kids)))


SLEEP = (node("Future"), node("Timeout _set_result_unless_cancelled"))
EXPECTED = node(
    "Task program",
    node("Future"),
    node("Timeout on_timer", node("Immediate on_soon")),
    *[
        node(
            "Task worker",
            node("Task leaf", *SLEEP),
            node("Executor blocking"),
            node("Future"),  # the asyncio future wrapping the executor's
        )
        for _ in "ab"
    ],
    node("Task failing"),
    node("Task sleeper", *SLEEP),
    node("Task sleeper"),
    node("Timeout on_soon"),
)


def run_program(run: Run, rec: Recorder) -> tuple[list[Any], int]:
    seen.clear()
    results = run(program())
    gc.collect()
    assert hooks.execution_async_id() == 1
    assert hooks.trigger_async_id() == 0
    roots = [e for e in rec.of("init") if e.type == "Task" and label(e) == "Task program"]
    assert len(roots) == 1
    return results, roots[0].async_id


def test_resource_tree_matches_the_program(run: Run, recorder: Recorder) -> None:
    results, root = run_program(run, recorder)
    assert results[:2] == ["Aa", "Bb"]
    assert isinstance(results[2], ValueError)
    assert results[3] == "timer"
    assert recorder.inits()[root].trigger == 1  # created at the top level
    assert tree_of(recorder, root) == EXPECTED


def test_code_runs_under_its_own_resource(run: Run, recorder: Recorder) -> None:
    run_program(run, recorder)
    inits = recorder.inits()
    assert {name for name, *_ in seen} == {
        "program", "worker", "leaf", "blocking", "on_timer", "on_soon"
    }  # fmt: skip
    for name, async_id, trigger, resource in seen:
        event = inits[async_id]
        assert trigger == event.trigger, name
        assert resource is event.resource, name
        assert label(event).endswith(name), (name, label(event))
    # the two notes of one worker come from two steps of the same task
    worker_ids = Counter(async_id for name, async_id, *_ in seen if name == "worker")
    seen.clear()  # let the resources go
    assert sorted(worker_ids.values()) == [2, 2]


def test_before_after_balanced_and_nested_per_thread(run: Run, recorder: Recorder) -> None:
    run_program(run, recorder)
    loop_thread = threading.get_ident()
    stacks: dict[int, list[int]] = defaultdict(list)
    inited: set[int] = set()
    destroyed: set[int] = set()
    for e in recorder.events:
        if e.kind == "init":
            inited.add(e.async_id)
        elif e.kind == "before":
            assert e.async_id in inited
            assert e.async_id not in destroyed
            stacks[e.thread].append(e.async_id)
        elif e.kind == "after":
            assert stacks[e.thread], f"after({e.async_id}) without before"
            assert stacks[e.thread].pop() == e.async_id, "after does not match the innermost before"
        elif e.kind == "destroy":
            destroyed.add(e.async_id)
    assert all(not stack for stack in stacks.values())
    inits = recorder.inits()
    executor_threads = {
        e.thread for e in recorder.of("before") if inits[e.async_id].type == "Executor"
    }
    assert executor_threads
    assert loop_thread not in executor_threads
    task_steps = Counter(
        e.async_id for e in recorder.of("before") if inits[e.async_id].type == "Task"
    )
    assert all(n >= 1 for n in task_steps.values())


def test_destroy_exactly_once_per_init(run: Run, recorder: Recorder) -> None:
    run_program(run, recorder)
    inits = recorder.inits()
    destroys = Counter(e.async_id for e in recorder.of("destroy"))
    assert set(destroys) == set(inits)
    assert set(destroys.values()) == {1}
    by_label = Counter(label(e) for e in inits.values())
    assert by_label["Task sleeper"] == 2  # cancelled while running, and before starting
    assert by_label["Task failing"] == 1
    assert by_label["Timeout on_soon"] == 1  # cancelled timer
    # no event for an id that was never initialised
    assert {e.async_id for e in recorder.events} <= set(inits)


def test_ids_unique_increasing_and_promise_resolve(run: Run, recorder: Recorder) -> None:
    run_program(run, recorder)
    ids = [e.async_id for e in recorder.of("init")]
    assert ids == sorted(set(ids))
    assert ids[0] > 1
    inits = recorder.inits()
    resolved = Counter(e.async_id for e in recorder.of("promise_resolve"))
    assert set(resolved.values()) <= {1}
    for async_id, e in inits.items():
        name = label(e)
        if name in ("Task program", "Task worker", "Task leaf", "Task failing"):
            assert resolved[async_id] == 1, name  # a result or an exception
        elif name == "Task sleeper":
            assert resolved[async_id] == 0, name  # cancelled: no result
    # the future resolved by on_soon reports it inside on_soon's step
    program_id = next(i for i, e in inits.items() if label(e) == "Task program")
    fut_id = next(i for i, e in inits.items() if e.type == "Future" and e.trigger == program_id)
    soon_id = next(i for i, e in inits.items() if label(e) == "Immediate on_soon")
    order = [(e.kind, e.async_id) for e in recorder.events]
    at = order.index(("promise_resolve", fut_id))
    assert order.index(("before", soon_id)) < at < order.index(("after", soon_id))
