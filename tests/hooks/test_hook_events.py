"""Hook events (`asynclocal.hooks`): ids, triggers, event order and counts.

Each test enables hooks around a small asyncio program (on the default loop and on
uvloop where the loop matters) and checks ids, triggers, event order and counts
against Node's documented `async_hooks` behaviour, as far as it carries over to
asyncio:

* the top level is id 1 with trigger 0; ids are unique and increase in creation order;
* `init`'s trigger is the id of the code that created the resource
  (`execution_async_id()` at creation), and inside the resource
  `execution_async_id()` is its own id and `trigger_async_id()` that trigger;
* `before`/`after` surround every step and are balanced and nested per thread;
* `destroy` comes exactly once per `init`, also for a timer cleared before it ran
  (`clearTimeout(setTimeout(...))`: init, then destroy, never before);
* `AsyncResource(type, trigger_async_id=...)` reports the given trigger;
* several hooks may be enabled at once; `enable()`/`disable()` are chainable.

Documented divergence checked here: an exception in a hook callback is logged and
the application continues (Node prints it and exits the process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, AsyncResource, hooks, threads

from .._optional import new_uvloop_loop, run_on_uvloop, uvloop

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": new_uvloop_loop,
}


@dataclass
class Recorder:
    """Every event, in order, with the thread it came from; resources held weakly."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    types: dict[int, str] = field(default_factory=dict)
    triggers: dict[int, int] = field(default_factory=dict)
    resources: dict[int, Callable[[], Any]] = field(default_factory=dict)
    hook: hooks.AsyncHook | None = None

    def init(self, async_id: int, type: str, trigger: int, resource: object) -> None:
        self.events.append(("init", async_id, threading.get_ident()))
        self.types[async_id] = type
        self.triggers[async_id] = trigger
        try:
            self.resources[async_id] = weakref.ref(resource)
        except TypeError:
            self.resources[async_id] = lambda r=resource: r  # type: ignore[misc]

    def before(self, async_id: int) -> None:
        self.events.append(("before", async_id, threading.get_ident()))

    def after(self, async_id: int) -> None:
        self.events.append(("after", async_id, threading.get_ident()))

    def destroy(self, async_id: int) -> None:
        self.events.append(("destroy", async_id, threading.get_ident()))

    def promise_resolve(self, async_id: int) -> None:
        self.events.append(("promise_resolve", async_id, threading.get_ident()))

    def make_hook(self) -> hooks.AsyncHook:
        self.hook = hooks.create_hook(
            init=self.init,
            before=self.before,
            after=self.after,
            destroy=self.destroy,
            promise_resolve=self.promise_resolve,
        )
        return self.hook

    # -- queries ----------------------------------------------------------

    def ids(self, kind: str, async_id: int | None = None) -> list[int]:
        return [
            e[1] for e in self.events if e[0] == kind and (async_id is None or e[1] == async_id)
        ]

    def count(self, kind: str, async_id: int) -> int:
        return len(self.ids(kind, async_id))

    def of_type(self, type: str) -> list[int]:
        return [i for i in self.ids("init") if self.types[i] == type]

    def id_of(self, resource: object) -> int:
        for async_id, ref in self.resources.items():
            if ref() is resource:
                return async_id
        raise AssertionError(f"{resource!r} was never reported to init")

    def assert_balanced_per_thread(self) -> None:
        stacks: dict[int, list[int]] = {}
        for kind, async_id, thread in self.events:
            stack = stacks.setdefault(thread, [])
            if kind == "before":
                stack.append(async_id)
            elif kind == "after":
                assert stack, f"after({async_id}) without a before"
                assert stack[-1] == async_id, f"after({async_id}) with stack {stack}"
                stack.pop()
        assert all(not s for s in stacks.values()), stacks

    def assert_destroyed_once_each(self) -> None:
        inits = self.ids("init")
        assert len(inits) == len(set(inits)), "an id was initialised twice"
        for async_id in inits:
            assert self.count("destroy", async_id) == 1, (async_id, self.types[async_id])
        assert set(self.ids("destroy")) <= set(inits)


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    hook = recorder.make_hook().enable()
    try:
        yield recorder
    finally:
        hook.disable()


def run_on(loop_name: str, main: Callable[[], Any]) -> Any:
    """Run `main()` on a new loop of that kind, as an application would."""
    if loop_name == "uvloop":
        return run_on_uvloop(main())
    return asyncio.run(main())


loops = pytest.mark.parametrize("loop_name", list(LOOPS))


# --------------------------------------------------------------- top level and ids


def test_top_level_is_id_1_with_trigger_0() -> None:
    assert hooks.execution_async_id() == 1
    assert hooks.trigger_async_id() == 0
    hook = hooks.create_hook().enable()
    try:
        assert hooks.execution_async_id() == 1
        assert hooks.trigger_async_id() == 0
        assert hooks.execution_async_resource() is hooks.TOP_LEVEL_RESOURCE
    finally:
        hook.disable()


@loops
def test_main_task_of_asyncio_run_created_later_is_tracked(rec: Recorder, loop_name: str) -> None:
    inside: dict[str, Any] = {}

    async def main() -> None:
        inside["eid"] = hooks.execution_async_id()
        inside["tid"] = hooks.trigger_async_id()
        inside["resource"] = hooks.execution_async_resource()
        inside["task"] = asyncio.current_task()

    run_on(loop_name, main)
    assert inside["resource"] is inside["task"]
    assert rec.types[inside["eid"]] == "Task"
    assert rec.triggers[inside["eid"]] == 1 == inside["tid"]
    assert inside["eid"] == rec.id_of(inside["task"])


@loops
def test_ids_are_unique_positive_and_increasing_in_creation_order(
    rec: Recorder, loop_name: str
) -> None:
    async def leaf() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            loop.call_soon(lambda: None)
            await asyncio.gather(leaf(), leaf())
            fut = loop.create_future()
            loop.call_later(0.001, fut.set_result, None)
            await fut
            AsyncResource("Mine")
            await loop.run_in_executor(None, lambda: None)

    run_on(loop_name, main)
    inits = rec.ids("init")
    assert len(inits) > 15
    assert all(i > 1 for i in inits)
    assert inits == sorted(inits)
    assert len(set(inits)) == len(inits)


@loops
def test_init_type_strings(rec: Recorder, loop_name: str) -> None:
    async def child() -> None:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.create_task(child())
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 1)  # asyncio plumbing: not an Immediate (documented)
        await fut
        done = loop.create_future()
        loop.call_soon(lambda: done.set_result(None))
        await done
        timer_done = loop.create_future()
        loop.call_later(0.001, lambda: timer_done.set_result(None))
        await timer_done
        at_done = loop.create_future()
        loop.call_at(loop.time() + 0.001, lambda: at_done.set_result(None))
        await at_done
        threadsafe = loop.create_future()
        await asyncio.to_thread(loop.call_soon_threadsafe, lambda: threadsafe.set_result(None))
        await threadsafe
        await loop.run_in_executor(None, lambda: None)
        AsyncResource("DBQuery").emit_destroy()

    run_on(loop_name, main)
    types = set(rec.types.values())
    assert {"Task", "Future", "Immediate", "Timeout", "Executor", "DBQuery"} <= types
    assert types <= {*hooks.RESOURCE_TYPES, "DBQuery"}
    assert len(rec.of_type("Timeout")) >= 2  # call_later and call_at
    assert len(rec.of_type("Immediate")) >= 2  # call_soon and call_soon_threadsafe


# -------------------------------------------------------------------- trigger ids


@loops
def test_trigger_of_a_task_created_inside_another_tasks_step(rec: Recorder, loop_name: str) -> None:
    seen: dict[str, Any] = {}

    async def grandchild() -> None:
        seen["grandchild"] = (hooks.execution_async_id(), hooks.trigger_async_id())

    async def child() -> None:
        seen["child"] = (hooks.execution_async_id(), hooks.trigger_async_id())
        await asyncio.sleep(0)  # a later step, not the first one
        await asyncio.create_task(grandchild())
        await asyncio.gather(grandchild())  # gather's task: same rule

    async def main() -> None:
        seen["main"] = hooks.execution_async_id()
        await asyncio.create_task(child())

    run_on(loop_name, main)
    main_id = seen["main"]
    child_id, child_trigger = seen["child"]
    assert child_trigger == main_id == rec.triggers[child_id]
    grandchild_id, grandchild_trigger = seen["grandchild"]
    assert grandchild_trigger == child_id == rec.triggers[grandchild_id]
    grandchildren = [i for i in rec.of_type("Task") if rec.triggers[i] == child_id]
    assert len(grandchildren) == 2


@loops
def test_execution_id_inside_a_call_soon_callback_is_the_callbacks_id(
    rec: Recorder, loop_name: str
) -> None:
    seen: dict[str, Any] = {}

    def callback(done: asyncio.Future[None]) -> None:
        seen["eid"] = hooks.execution_async_id()
        seen["tid"] = hooks.trigger_async_id()
        seen["resource"] = hooks.execution_async_resource()
        # A task created inside a callback has the callback as its trigger.
        seen["task"] = asyncio.get_running_loop().create_task(inner(done))

    async def inner(done: asyncio.Future[None]) -> None:
        seen["inner_tid"] = hooks.trigger_async_id()
        done.set_result(None)

    async def main() -> None:
        seen["main"] = hooks.execution_async_id()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        handle = loop.call_soon(callback, done)
        seen["handle"] = handle
        await done

    run_on(loop_name, main)
    immediates = rec.of_type("Immediate")
    assert seen["eid"] in immediates
    assert seen["tid"] == seen["main"] == rec.triggers[seen["eid"]]
    assert rec.resources[seen["eid"]]() is seen["resource"]
    assert seen["resource"] is not hooks.TOP_LEVEL_RESOURCE
    assert seen["inner_tid"] == seen["eid"]
    assert rec.count("before", seen["eid"]) == 1 == rec.count("after", seen["eid"])
    assert rec.count("destroy", seen["eid"]) == 1


@loops
def test_timer_cleared_before_it_ran_is_destroyed_without_before(
    rec: Recorder, loop_name: str
) -> None:
    ran: list[int] = []
    ids: dict[str, int] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = set(rec.of_type("Timeout"))
        handle = loop.call_later(10, ran.append, 1)
        (ids["later"],) = set(rec.of_type("Timeout")) - before
        handle.cancel()
        del handle
        before = set(rec.of_type("Timeout"))
        handle2 = loop.call_at(loop.time() + 10, ran.append, 2)
        (ids["at"],) = set(rec.of_type("Timeout")) - before
        handle2.cancel()
        del handle2
        before_imm = set(rec.of_type("Immediate"))
        handle3 = loop.call_soon(ran.append, 3)
        (ids["soon"],) = set(rec.of_type("Immediate")) - before_imm
        handle3.cancel()
        del handle3
        await asyncio.sleep(0.01)

    run_on(loop_name, main)
    gc.collect()
    assert ran == []
    for name, async_id in ids.items():
        assert rec.count("destroy", async_id) == 1, name
        assert rec.count("before", async_id) == 0, name


# ------------------------------------------------------- steps, balance, destroy


@loops
def test_each_resumption_is_one_step_and_events_are_balanced(rec: Recorder, loop_name: str) -> None:
    task_ids: dict[str, int] = {}

    async def worker(n: int) -> int:
        task_ids[f"w{n}"] = hooks.execution_async_id()
        for _ in range(n):
            await asyncio.sleep(0)
        return n

    async def main() -> None:
        assert await asyncio.gather(worker(0), worker(3), worker(5)) == [0, 3, 5]

    run_on(loop_name, main)
    gc.collect()
    assert rec.count("before", task_ids["w0"]) == 1
    assert rec.count("before", task_ids["w3"]) == 4
    assert rec.count("before", task_ids["w5"]) == 6
    rec.assert_balanced_per_thread()
    for async_id in task_ids.values():
        assert rec.count("after", async_id) == rec.count("before", async_id)
        # promise_resolve after the last step, destroy last of all.
        mine = [e[0] for e in rec.events if e[1] == async_id]
        assert mine[0] == "init"
        assert mine[-1] == "destroy"
        assert mine.count("promise_resolve") == 1


@loops
def test_destroy_exactly_once_for_finished_failed_and_cancelled_tasks(
    rec: Recorder, loop_name: str
) -> None:
    ids: dict[str, int] = {}

    async def ok() -> str:
        ids["ok"] = hooks.execution_async_id()
        await asyncio.sleep(0)
        return "ok"

    async def fails() -> None:
        ids["fails"] = hooks.execution_async_id()
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def cancelled_while_waiting() -> None:
        ids["cancelled"] = hooks.execution_async_id()
        await asyncio.sleep(10)

    async def never_started() -> None:
        raise AssertionError("must not run")

    async def main() -> None:
        assert await asyncio.create_task(ok()) == "ok"
        with pytest.raises(ValueError, match="boom"):
            await asyncio.create_task(fails())
        waiting = asyncio.create_task(cancelled_while_waiting())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        before = set(rec.of_type("Task"))
        unstarted = asyncio.create_task(never_started())
        (ids["unstarted"],) = set(rec.of_type("Task")) - before
        unstarted.cancel()
        with pytest.raises(asyncio.CancelledError):
            await unstarted

    run_on(loop_name, main)
    gc.collect()
    rec.assert_balanced_per_thread()
    rec.assert_destroyed_once_each()
    assert rec.count("promise_resolve", ids["ok"]) == 1
    assert rec.count("promise_resolve", ids["fails"]) == 1  # an exception is a result
    assert rec.count("promise_resolve", ids["cancelled"]) == 0
    assert rec.count("promise_resolve", ids["unstarted"]) == 0


@loops
def test_future_promise_resolve_fires_when_the_result_is_set(rec: Recorder, loop_name: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        (fut_id,) = [i for i in rec.of_type("Future") if rec.resources[i]() is fut]
        assert rec.count("promise_resolve", fut_id) == 0
        fut.set_result(5)
        assert rec.count("promise_resolve", fut_id) == 1  # at the moment it is set
        cancelled = loop.create_future()
        (c_id,) = [i for i in rec.of_type("Future") if rec.resources[i]() is cancelled]
        cancelled.cancel()
        await asyncio.sleep(0)
        assert rec.count("promise_resolve", c_id) == 0
        assert rec.count("destroy", c_id) == 1
        assert await fut == 5

    run_on(loop_name, main)


@loops
def test_executor_job_runs_under_its_own_id_in_the_worker_thread(
    rec: Recorder, loop_name: str
) -> None:
    seen: dict[str, Any] = {}

    def job() -> int:
        seen["eid"] = hooks.execution_async_id()
        seen["tid"] = hooks.trigger_async_id()
        seen["thread"] = threading.get_ident()
        return 7

    async def main() -> None:
        seen["main"] = hooks.execution_async_id()
        assert await asyncio.get_running_loop().run_in_executor(None, job) == 7
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert await asyncio.get_running_loop().run_in_executor(pool, job) == 7

    run_on(loop_name, main)
    executors = rec.of_type("Executor")
    assert len(executors) == 2
    assert seen["eid"] == executors[-1]
    assert seen["tid"] == seen["main"] == rec.triggers[seen["eid"]]
    befores = [e for e in rec.events if e[0] == "before" and e[1] == seen["eid"]]
    assert [e[2] for e in befores] == [seen["thread"]] != [threading.get_ident()]
    rec.assert_balanced_per_thread()


@loops
def test_to_thread_job_runs_under_its_executor_id(rec: Recorder, loop_name: str) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen: list[tuple[int, int, object, str | None, int]] = []
    main_id: list[int] = []

    def job(x: int, *, y: int) -> None:
        seen.append(
            (
                hooks.execution_async_id(),
                hooks.trigger_async_id(),
                hooks.execution_async_resource(),
                als.get_store(),  # to_thread's own context propagation still works
                x + y,
            )
        )

    async def main() -> None:
        main_id.append(hooks.execution_async_id())
        await als.run("req", asyncio.to_thread, job, 1, y=2)

    run_on(loop_name, main)
    ((eid, tid, resource, store, total),) = seen
    assert rec.types[eid] == "Executor"
    assert tid == main_id[0] == rec.triggers[eid]
    assert resource is rec.resources[eid]()
    assert (store, total) == ("req", 3)
    assert rec.count("before", eid) == 1 == rec.count("destroy", eid)


@loops
def test_executor_job_with_threads_installed_keeps_store_and_ids(
    rec: Recorder, loop_name: str
) -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    was = threads.installed()
    threads.install()
    try:

        def job() -> tuple[str | None, int]:
            return als.get_store(), hooks.trigger_async_id()

        async def request(rid: str) -> tuple[str | None, int, int]:
            store, trigger = await asyncio.get_running_loop().run_in_executor(None, job)
            return store, trigger, hooks.execution_async_id()

        async def main() -> list[tuple[str | None, int, int]]:
            return await asyncio.gather(*(als.run(f"r{i}", request, f"r{i}") for i in range(5)))

        results = run_on(loop_name, main)
    finally:
        if not was:
            threads.uninstall()
    for i, (store, trigger, task_id) in enumerate(results):
        assert store == f"r{i}"
        assert trigger == task_id


# ----------------------------------------------------------- the execution resource


@loops
def test_execution_resource_keeps_attributes_per_task(rec: Recorder, loop_name: str) -> None:
    async def counter(n: int) -> int:
        resource = hooks.execution_async_resource()
        resource.count = 0  # type: ignore[attr-defined]
        for _ in range(n):
            await asyncio.sleep(0)
            hooks.execution_async_resource().count += 1  # type: ignore[attr-defined]
        return hooks.execution_async_resource().count  # type: ignore[attr-defined,no-any-return]

    async def main() -> list[int]:
        return await asyncio.gather(*(counter(n) for n in (1, 4, 2)))

    assert run_on(loop_name, main) == [1, 4, 2]


@loops
def test_tcp_connection_is_the_trigger_of_its_handler_task(rec: Recorder, loop_name: str) -> None:
    handler_triggers: list[int] = []
    server_creator: dict[str, int] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler_triggers.append(hooks.trigger_async_id())
        await reader.readline()
        writer.write(b"ok\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def client(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return line

    async def main() -> None:
        server_creator["id"] = hooks.execution_async_id()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            assert await asyncio.gather(*(client(port) for _ in range(3))) == [b"ok\n"] * 3
        await asyncio.sleep(0.01)

    run_on(loop_name, main)
    connections = rec.of_type("TCPConnection")
    assert len(connections) == 3
    assert all(rec.triggers[c] == server_creator["id"] for c in connections)
    assert sorted(handler_triggers) == sorted(connections)
    gc.collect()
    for c in connections:
        assert rec.count("destroy", c) == 1


# ---------------------------------------------------------------- AsyncResource


def test_async_resource_with_explicit_trigger(rec: Recorder) -> None:
    resource = AsyncResource("DBQuery", trigger_async_id=1234)
    async_id = resource.async_id()
    assert rec.types[async_id] == "DBQuery"
    assert rec.triggers[async_id] == 1234 == resource.trigger_async_id()
    assert rec.resources[async_id]() is resource

    def inside() -> tuple[int, int, object]:
        return (
            hooks.execution_async_id(),
            hooks.trigger_async_id(),
            hooks.execution_async_resource(),
        )

    assert resource.run_in_async_scope(inside) == (async_id, 1234, resource)
    assert rec.count("before", async_id) == 1 == rec.count("after", async_id)
    assert hooks.execution_async_id() == 1  # restored afterwards
    resource.emit_destroy()
    resource.emit_destroy()
    assert rec.count("destroy", async_id) == 1


def test_async_resource_default_trigger_is_the_creating_code(rec: Recorder) -> None:
    seen: dict[str, int] = {}

    async def main() -> None:
        seen["main"] = hooks.execution_async_id()
        resource = AsyncResource("Job")
        seen["trigger"] = resource.trigger_async_id()
        seen["id"] = resource.async_id()

    asyncio.run(main())
    assert seen["trigger"] == seen["main"] == rec.triggers[seen["id"]]
    assert seen["main"] > 1


def test_async_resource_destroy_on_collection_unless_manual(rec: Recorder) -> None:
    auto = AsyncResource("Auto")
    manual = AsyncResource("Manual", require_manual_destroy=True)
    auto_id, manual_id = auto.async_id(), manual.async_id()
    del auto, manual
    gc.collect()
    assert rec.count("destroy", auto_id) == 1
    assert rec.count("destroy", manual_id) == 0


def test_before_after_balanced_when_the_scope_raises(rec: Recorder) -> None:
    resource = AsyncResource("Raises")

    def fail() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        resource.run_in_async_scope(fail)
    assert rec.count("after", resource.async_id()) == 1
    rec.assert_balanced_per_thread()


# ------------------------------------------------------------- enabling and disabling


def _loop_class_state() -> dict[str, dict[str, Any]]:
    return {
        "BaseEventLoop": dict(vars(asyncio.BaseEventLoop)),
        "uvloop.Loop": dict(vars(uvloop.Loop)) if uvloop is not None else {},
    }


def test_nested_enable_disable_of_two_hooks() -> None:
    if hooks.enabled_hooks():
        pytest.skip("another hook is enabled for the whole session")
    pristine = _loop_class_state()
    first, second = Recorder(), Recorder()
    h1 = first.make_hook()
    h2 = second.make_hook()
    assert h1.enable() is h1
    assert h1.enable() is h1
    h2.enable()

    async def no_await() -> None:
        pass

    def both() -> None:
        asyncio.run(no_await())  # the main task: one step

    both()
    assert first.ids("init") == second.ids("init") != []
    assert first.count("before", first.ids("init")[0]) == 1  # not twice for a double enable
    assert h1.disable() is h1
    n_first = len(first.events)
    both()
    assert len(first.events) == n_first  # disabled: nothing more
    assert len(second.ids("init")) > len(first.ids("init"))
    assert _loop_class_state() != pristine  # h2 still enabled: still instrumented
    h2.disable().disable()
    assert _loop_class_state() == pristine  # no hook: the classes are as they were
    n_second = len(second.events)
    both()
    assert len(second.events) == n_second
    assert hooks.execution_async_id() == 1


def test_enabling_inside_a_running_loop_tracks_work_created_afterwards() -> None:
    recorder = Recorder()
    seen: dict[str, int] = {}

    async def child() -> None:
        seen["child"] = hooks.execution_async_id()
        seen["child_trigger"] = hooks.trigger_async_id()

    async def main() -> None:
        hook = recorder.make_hook().enable()
        try:
            await asyncio.create_task(child())
        finally:
            hook.disable()

    asyncio.run(main())
    assert recorder.types[seen["child"]] == "Task"
    # The main task predates the hook: its code runs under its creator's id.
    assert seen["child_trigger"] == 1 == recorder.triggers[seen["child"]]


def test_create_hook_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="init"):
        hooks.create_hook(init=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="destroy"):
        hooks.create_hook(destroy="x")  # type: ignore[arg-type]


# ----------------------------------------------------------- exceptions in hooks


@loops
def test_an_exception_in_a_hook_is_logged_and_the_app_continues(
    loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = Recorder()

    def explode(*_args: Any) -> None:
        raise RuntimeError("hook bug")

    bad = hooks.create_hook(init=explode, before=explode, after=explode, destroy=explode)
    bad.enable()
    good.make_hook().enable()
    results: list[int] = []

    async def child(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def main() -> None:
        loop = asyncio.get_running_loop()
        results.extend(await asyncio.gather(*(child(i) for i in range(3))))
        done = loop.create_future()
        loop.call_soon(lambda: done.set_result(None))
        await done

    try:
        with caplog.at_level(logging.ERROR, logger="asynclocal.hooks"):
            run_on(loop_name, main)
    finally:
        bad.disable()
        assert good.hook is not None
        good.hook.disable()
    assert results == [0, 1, 2]
    errors = [r for r in caplog.records if r.name == "asynclocal.hooks"]
    assert errors
    assert all(r.levelno == logging.ERROR and r.exc_info for r in errors)
    assert any("hook bug" in str(r.exc_info[1]) for r in errors if r.exc_info)
    # The other hook still received every event, balanced.
    assert len(good.of_type("Task")) >= 4
    good.assert_balanced_per_thread()


# ------------------------------------------------------------------- a whole graph


@loops
def test_resource_graph_of_a_small_program(rec: Recorder, loop_name: str) -> None:
    names: dict[int, str] = {}

    def name(label: str) -> None:
        names[hooks.execution_async_id()] = label

    async def fetch(label: str) -> None:
        name(label)
        await asyncio.sleep(0.001)

    async def handler() -> None:
        name("handler")
        loop = asyncio.get_running_loop()
        await asyncio.gather(fetch("db"), fetch("cache"))
        done = loop.create_future()
        loop.call_soon(lambda: (name("callback"), done.set_result(None)))
        await done
        await loop.run_in_executor(None, name, "job")

    async def main() -> None:
        name("main")
        await asyncio.create_task(handler())

    run_on(loop_name, main)
    gc.collect()
    by_name = {label: async_id for async_id, label in names.items()}
    parent = {label: names.get(rec.triggers[async_id], rec.triggers[async_id])
              for label, async_id in by_name.items()}  # fmt: skip
    assert parent == {
        "main": 1,
        "handler": "main",
        "db": "handler",
        "cache": "handler",
        "callback": "handler",
        "job": "handler",
    }
    assert rec.types[by_name["job"]] == "Executor"
    assert rec.types[by_name["callback"]] == "Immediate"
    rec.assert_balanced_per_thread()
    rec.assert_destroyed_once_each()


# ------------------------------------------------------- interplay with the app's loop


@loops
def test_the_apps_task_factory_is_kept_and_its_tasks_tracked(rec: Recorder, loop_name: str) -> None:
    made: list[object] = []
    seen: dict[str, int] = {}

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    async def child() -> None:
        seen["child"] = hooks.execution_async_id()
        seen["trigger"] = hooks.trigger_async_id()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen["main"] = hooks.execution_async_id()
        loop.set_task_factory(factory)
        try:
            assert loop.get_task_factory() is factory
            await asyncio.create_task(child())
        finally:
            loop.set_task_factory(None)

    run_on(loop_name, main)
    assert len(made) == 1
    assert rec.id_of(made[0]) == seen["child"]
    assert seen["trigger"] == seen["main"]


@loops
def test_call_soon_threadsafe_from_an_executor_job_has_the_job_as_trigger(
    rec: Recorder, loop_name: str
) -> None:
    seen: dict[str, int] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def callback() -> None:
            seen["cb"] = hooks.execution_async_id()
            seen["cb_trigger"] = hooks.trigger_async_id()
            done.set_result(None)

        def job() -> None:
            seen["job"] = hooks.execution_async_id()
            loop.call_soon_threadsafe(callback)

        await loop.run_in_executor(None, job)
        await done

    run_on(loop_name, main)
    assert rec.types[seen["job"]] == "Executor"
    assert rec.types[seen["cb"]] == "Immediate"
    assert seen["cb_trigger"] == seen["job"] == rec.triggers[seen["cb"]]


def test_a_hook_may_disable_itself_from_its_own_callback() -> None:
    if hooks.enabled_hooks():
        pytest.skip("another hook is enabled for the whole session")
    destroyed: list[int] = []

    def destroy(async_id: int) -> None:
        destroyed.append(async_id)
        hook.disable()

    hook = hooks.create_hook(destroy=destroy).enable()

    async def child() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(child(), child(), child())

    asyncio.run(main())
    assert len(destroyed) == 1
    assert not hook.enabled
    assert hooks.enabled_hooks() == []
    assert not hooks.installed()


@pytest.mark.parametrize(
    ("value", "expect"),
    [("1", "tracked"), ("trace", "tracked"), ("0", "off"), ("bogus", "warned")],
)
def test_hooks_from_the_environment(value: str, expect: str) -> None:
    import os
    import subprocess
    import sys

    script = (
        "import asyncio, warnings\n"
        "import asynclocal\n"
        "from asynclocal import hooks\n"
        "async def main():\n"
        "    return hooks.execution_async_id()\n"
        "before = 'tracked' if asyncio.run(main()) > 1 else 'off'\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    asynclocal.enable_from_env()\n"
        "after = 'tracked' if asyncio.run(main()) > 1 else 'off'\n"
        "warned = any('ASYNCLOCAL_HOOKS' in str(w.message) for w in caught)\n"
        "print(before, 'warned' if warned else after)\n"
    )
    env = {**os.environ, "ASYNCLOCAL_HOOKS": value}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    # Importing reads nothing; the explicit call turns tracking on (or warns).
    assert proc.stdout.strip() == f"off {expect}", proc.stderr[-2000:]


def test_bind_and_snapshot_are_not_resources_documented_divergence(rec: Recorder) -> None:
    # Node wraps each bind()/snapshot() in an AsyncResource ("bound-anonymous-fn"); here
    # (docs/hooks.md, Limits) the bound code runs under the id captured with its context.
    # AsyncResource(type).bind(fn) is the way to get a resource of its own.
    seen: dict[str, Any] = {}

    async def main() -> None:
        seen["main"] = hooks.execution_async_id()
        bound = AsyncLocalStorage.bind(hooks.execution_async_id)
        snapshot = AsyncLocalStorage.snapshot()
        resource = AsyncResource("Bound")
        own = resource.bind(hooks.execution_async_id)
        seen["resource"] = resource.async_id()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def callback() -> None:
            seen["callback"] = hooks.execution_async_id()
            seen["bound"] = bound()
            seen["snapshot"] = snapshot(hooks.execution_async_id)
            seen["own"] = own()
            done.set_result(None)

        loop.call_soon(callback)
        await done

    asyncio.run(main())
    assert seen["bound"] == seen["snapshot"] == seen["main"] != seen["callback"]
    assert seen["own"] == seen["resource"]
    assert "bound-anonymous-fn" not in rec.types.values()


@loops
def test_asyncio_methods_scheduled_directly_are_plumbing_documented(
    rec: Recorder, loop_name: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = len(rec.of_type("Immediate"))
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 1)  # a future's own method: not reported
        await fut
        assert len(rec.of_type("Immediate")) == before
        wrapped = loop.create_future()
        loop.call_soon(lambda: wrapped.set_result(1))  # wrapped: an Immediate
        await wrapped
        assert len(rec.of_type("Immediate")) == before + 1

    run_on(loop_name, main)


@loops
def test_destroy_once_and_balanced_across_asyncio_features(rec: Recorder, loop_name: str) -> None:
    async def slow() -> None:
        await asyncio.sleep(1)

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("child failed")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"y\n")
        await writer.drain()
        writer.close()

    async def run_group(group: Any) -> None:
        async with group as tg:
            tg.create_task(fail())
            tg.create_task(slow())

    async def python_311_features() -> None:
        try:
            async with asyncio.timeout(0.001):  # type: ignore[attr-defined]
                await slow()
        except TimeoutError:
            pass
        async with asyncio.timeout(1):  # type: ignore[attr-defined]
            await asyncio.sleep(0)  # the timer is cancelled unfired
        group = asyncio.TaskGroup()  # type: ignore[attr-defined]
        with pytest.raises(BaseException, match="unhandled errors") as info:
            await run_group(group)
        assert type(info.value).__name__ == "ExceptionGroup"  # 3.11+ only name

    async def program(port: int) -> None:
        if sys.version_info >= (3, 11):
            await python_311_features()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.001)
        await asyncio.gather(fail(), asyncio.sleep(0), return_exceptions=True)
        inner = asyncio.create_task(slow())
        await asyncio.sleep(0)
        shielded = asyncio.shield(inner)
        inner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await shielded
        await asyncio.to_thread(lambda: None)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x\n")
        assert await reader.readline() == b"y\n"
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        async with server:
            await program(server.sockets[0].getsockname()[1])
        await asyncio.sleep(0.02)

    run_on(loop_name, main)
    gc.collect()
    kinds = set(rec.types.values())
    assert {"Task", "Future", "Timeout", "Executor", "TCPConnection"} <= kinds
    rec.assert_balanced_per_thread()
    rec.assert_destroyed_once_each()
