"""The hook API: enable/disable, several hooks, errors in callbacks, no cost when off."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from types import CoroutineType
from typing import Any

import pytest

from asynclocal import AsyncResource, hooks
from asynclocal.errors import ConfigurationWarning

from .._optional import LOOP_CLASSES
from .conftest import Recorder

Run = Callable[[Coroutine[Any, Any, Any]], Any]
LOOP_METHODS = (
    "create_task",
    "create_future",
    "call_soon",
    "call_soon_threadsafe",
    "call_later",
    "call_at",
    "run_in_executor",
    "create_server",
)


def loop_class_state() -> dict[tuple[str, str], object]:
    return {
        (cls.__name__, name): cls.__dict__.get(name)
        for cls in LOOP_CLASSES
        for name in LOOP_METHODS
    }


async def child() -> int:
    await asyncio.sleep(0)
    return hooks.execution_async_id()


def test_create_hook_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match=r"create_hook\(before=\.\.\.\) must be a callable"):
        hooks.create_hook(before=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="init"):
        hooks.create_hook(init="print")  # type: ignore[arg-type]


def test_enable_and_disable_are_chainable_and_idempotent() -> None:
    hook = hooks.create_hook()
    assert not hook.enabled
    assert hooks.enabled_hooks() == []
    assert hook.enable() is hook
    assert hook.enable() is hook
    assert hook.enabled
    assert hooks.enabled_hooks() == [hook]
    assert hook.disable() is hook
    assert hook.disable() is hook
    assert not hook.enabled
    assert hooks.enabled_hooks() == []


def test_nothing_installed_while_every_hook_is_disabled(run: Run) -> None:
    pristine = loop_class_state()
    first = hooks.create_hook().enable()
    second = hooks.create_hook().enable()
    assert hooks.installed()
    assert loop_class_state() != pristine
    first.disable()
    assert hooks.installed()  # one hook is still enabled
    second.disable()
    assert not hooks.installed()
    assert loop_class_state() == pristine

    async def main() -> tuple[Any, Any, Any, int]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(child())
        handle = loop.call_soon(print)
        shown = repr(handle)
        handle.cancel()
        return loop.get_task_factory(), task.get_coro(), shown, await task

    factory, coro, handle, child_id = run(main())
    assert factory is None
    assert type(coro) is CoroutineType  # the app's own coroutine, unwrapped
    assert "print" in handle
    assert "Immediate" not in handle
    assert child_id == 1  # nothing tracks tasks while no hook is enabled


def test_several_hooks_each_see_every_event(run: Run) -> None:
    first, second = Recorder(), Recorder()
    hook1 = first.hook().enable()
    hook2 = second.hook().enable()
    run(child())
    hook1.disable()
    run(child())
    hook2.disable()
    assert len(first.of("init")) >= 1
    assert [(e.kind, e.async_id) for e in first.events] == [
        (e.kind, e.async_id) for e in second.events[: len(first.events)]
    ]
    assert len(second.of("init")) > len(first.of("init"))  # only the 2nd saw the 2nd run


def test_top_level_ids_and_resource() -> None:
    assert hooks.execution_async_id() == 1
    assert hooks.trigger_async_id() == 0
    assert hooks.execution_async_resource() is hooks.TOP_LEVEL_RESOURCE


def test_hook_errors_are_logged_and_do_not_break_tasks(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("hook bug")

    rec = Recorder()
    bad = hooks.create_hook(init=explode, before=explode, after=explode, destroy=explode)
    bad.enable()
    good = rec.hook().enable()
    with caplog.at_level(logging.ERROR, logger="asynclocal.hooks"):
        result = run(child())
    bad.disable()
    good.disable()
    assert result > 1  # the task ran, under its own id
    messages = [r for r in caplog.records if r.name == "asynclocal.hooks"]
    assert any("exception in async hook init" in r.getMessage() for r in messages)
    assert any("exception in async hook before" in r.getMessage() for r in messages)
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in messages)
    # the other hook still received everything
    assert len(rec.of("before")) == len(rec.of("after")) >= 2


async def test_enabling_inside_a_running_loop_tracks_later_work() -> None:
    untracked = await asyncio.create_task(child())
    rec = Recorder()
    hook = rec.hook().enable()
    try:
        parent = hooks.execution_async_id()
        task = asyncio.create_task(child())
        tracked = await task
    finally:
        hook.disable()
    assert untracked == parent  # tasks made before enabling run under their creator's id
    inits = rec.inits()
    assert inits[tracked].type == "Task"
    assert inits[tracked].resource is task
    assert inits[tracked].trigger == parent


def test_execution_resource_carries_app_state(run: Run, recorder: Recorder) -> None:
    async def counter(n: int) -> int:
        resource = hooks.execution_async_resource()
        resource.count = 0  # type: ignore[attr-defined]
        for _ in range(n):
            await asyncio.sleep(0)
            resource.count += 1  # type: ignore[attr-defined]
        assert hooks.execution_async_resource() is asyncio.current_task()
        return resource.count  # type: ignore[attr-defined,no-any-return]

    async def main() -> list[int]:
        return await asyncio.gather(*(counter(n) for n in (3, 1, 4, 2)))

    assert run(main()) == [3, 1, 4, 2]


def test_async_resource_events_and_scope(recorder: Recorder) -> None:
    outer = AsyncResource("DBQuery")
    inside: list[tuple[int, int, object]] = []

    def body() -> None:
        inside.append(
            (hooks.execution_async_id(), hooks.trigger_async_id(), hooks.execution_async_resource())
        )
        hooks.execution_async_resource().rows = 3  # type: ignore[attr-defined]

    outer.run_in_async_scope(body)
    nested = outer.run_in_async_scope(lambda: AsyncResource("Child"))
    outer.emit_destroy()
    outer.emit_destroy()
    assert inside == [(outer.async_id(), 1, outer)]
    assert outer.rows == 3  # type: ignore[attr-defined]
    inits = recorder.inits()
    assert inits[outer.async_id()].type == "DBQuery"
    assert inits[outer.async_id()].trigger == 1
    assert inits[nested.async_id()].trigger == outer.async_id()
    kinds = [(e.kind, e.async_id) for e in recorder.events if e.async_id == outer.async_id()]
    assert kinds == [
        ("init", outer.async_id()),
        ("before", outer.async_id()),
        ("after", outer.async_id()),
        ("before", outer.async_id()),
        ("after", outer.async_id()),
        ("destroy", outer.async_id()),
    ]


def test_future_resolve_is_reported_when_the_result_is_set(run: Run, recorder: Recorder) -> None:
    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fut_id = recorder.of("init")[-1].async_id
        before = len(recorder.of("promise_resolve"))
        fut.set_result(1)
        after = len(recorder.of("promise_resolve"))
        cancelled = loop.create_future()
        cancelled.cancel()
        return fut_id, before, after

    fut_id, before, after = run(main())
    assert after == before + 1
    assert recorder.of("promise_resolve")[before].async_id == fut_id
    futures = [e for e in recorder.of("init") if e.type == "Future"]
    resolved = {e.async_id for e in recorder.of("promise_resolve")}
    destroyed = {e.async_id for e in recorder.of("destroy")}
    assert futures[0].async_id in resolved
    assert futures[1].async_id not in resolved
    assert {f.async_id for f in futures} <= destroyed


def test_enable_from_env_values() -> None:
    assert hooks.enable_from_env({}) is None
    assert hooks.enable_from_env({"ASYNCLOCAL_HOOKS": "0"}) is None
    hook = hooks.enable_from_env({"ASYNCLOCAL_HOOKS": "1"})
    assert hook is not None
    assert hook.enabled
    hook.disable()
    with pytest.warns(ConfigurationWarning, match="ASYNCLOCAL_HOOKS='bogus'"):
        assert hooks.enable_from_env({"ASYNCLOCAL_HOOKS": "bogus"}) is None
    assert hooks.enabled_hooks() == []


def test_environment_variable_turns_tracking_on_when_asked() -> None:
    code = (
        "import asyncio, asynclocal\n"
        "from asynclocal import hooks\n"
        "assert hooks.enabled_hooks() == []  # importing reads no environment\n"
        "assert asynclocal.enable_from_env() == ['hooks']\n"
        "async def main():\n"
        "    return hooks.execution_async_id(), hooks.trigger_async_id()\n"
        "print(*asyncio.run(main()), len(hooks.enabled_hooks()))\n"
    )
    env = {**os.environ, "ASYNCLOCAL_HOOKS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    task_id, trigger, enabled = map(int, out.stdout.split())
    assert task_id > 1
    assert trigger == 1
    assert enabled == 1


def test_exact_event_sequence_of_a_tiny_program(run: Run, recorder: Recorder) -> None:
    ran: list[int] = []

    def callback() -> None:
        ran.append(hooks.execution_async_id())

    async def main() -> None:
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0)  # one loop turn: the callback runs, then main resumes

    run(main())
    inits = recorder.of("init")
    main_id, cb_id = (e.async_id for e in inits)
    assert [(e.type, e.trigger) for e in inits] == [("Task", 1), ("Immediate", main_id)]
    assert ran == [cb_id]
    assert [(e.kind, e.async_id) for e in recorder.events] == [
        ("init", main_id),
        ("before", main_id),
        ("init", cb_id),
        ("after", main_id),
        ("before", cb_id),
        ("after", cb_id),
        ("destroy", cb_id),
        ("before", main_id),
        ("promise_resolve", main_id),
        ("after", main_id),
        ("destroy", main_id),
    ]


def test_trace_hook_logs_every_event(run: Run, caplog: pytest.LogCaptureFixture) -> None:
    hook = hooks.enable_from_env({"ASYNCLOCAL_HOOKS": "trace"})
    assert hook is not None
    with caplog.at_level(logging.DEBUG, logger="asynclocal.hooks.trace"):
        task_id = run(child())
    hook.disable()
    lines = [r.getMessage() for r in caplog.records if r.name == "asynclocal.hooks.trace"]
    assert lines[0].startswith("init Task(")
    assert lines[0].endswith("trigger=1")
    assert f"before {task_id}" in lines
    assert f"destroy {task_id}" in lines
    with pytest.raises(TypeError, match=r"logging\.Logger"):
        hooks.trace_hook("asynclocal")  # type: ignore[arg-type]
