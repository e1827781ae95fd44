"""AsyncLocalStorage and AsyncResource semantics as a user relies on them.

Every test uses the public names (`AsyncLocalStorage`, `AsyncResource`) and asserts
the documented behaviour, including edge cases the API implies. The module runs against
the C accelerator (the default) and, in `test_pure_python_fallback_passes_these_modules`,
against the pure-Python fallback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, AsyncResource, threads

PURE = os.environ.get("ASYNCLOCAL_PURE_PYTHON") == "1"


def in_fresh_context(fn: Callable[[], Any]) -> Any:
    """Run `fn` in a copy of the current context, so `enter_with` cannot leak into other tests."""
    return contextvars.copy_context().run(fn)


# --------------------------------------------------------------------------- names


def test_name_is_kept_and_generated_when_omitted() -> None:
    assert AsyncLocalStorage(name="request").name == "request"
    a: AsyncLocalStorage[int] = AsyncLocalStorage()
    b: AsyncLocalStorage[int] = AsyncLocalStorage()
    assert isinstance(a.name, str)
    assert a.name.strip()
    assert a.name != b.name


def test_get_store_returns_default_when_none_is_set() -> None:
    assert AsyncLocalStorage().get_store() is None
    sentinel = object()
    assert AsyncLocalStorage(default=sentinel).get_store() is sentinel


def test_generic_subscription_constructs_an_instance() -> None:
    als = AsyncLocalStorage[dict](name="typed")  # type: ignore[type-arg]
    assert als.run({"a": 1}, als.get_store) == {"a": 1}


# ------------------------------------------------------------------------------ run


def test_run_passes_args_and_kwargs_and_returns_the_result() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def fn(a: int, b: int, *, c: int) -> tuple[str | None, int]:
        return als.get_store(), a + b + c

    assert als.run("s", fn, 1, 2, c=3) == ("s", 6)
    assert als.get_store() is None


def test_run_restores_after_an_exception_and_propagates_the_same_object() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="dflt")
    error = KeyError("boom")

    def fn() -> None:
        assert als.get_store() == "s"
        raise error

    with pytest.raises(KeyError) as info:
        als.run("s", fn)
    assert info.value is error
    assert als.get_store() == "dflt"


def test_base_exceptions_also_restore() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def fn() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        als.run("s", fn)
    assert als.get_store() is None


def test_none_is_a_store_and_hides_the_outer_store() -> None:
    als: AsyncLocalStorage[str | None] = AsyncLocalStorage(default="dflt")
    seen: list[str | None] = []

    def outer() -> None:
        als.run(None, lambda: seen.append(als.get_store()))
        seen.append(als.get_store())

    als.run("outer", outer)
    assert seen == [None, "outer"]
    assert als.get_store() == "dflt"


def test_the_same_store_in_nested_runs() -> None:
    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage()
    store = {"n": 0}
    seen: list[Any] = []

    def inner() -> None:
        store["n"] += 1
        seen.append(als.get_store())

    def outer() -> None:
        als.run(store, inner)
        seen.append(als.get_store())
        als.run(store, inner)

    als.run(store, outer)
    assert all(s is store for s in seen)
    assert len(seen) == 3
    assert store["n"] == 2
    assert als.get_store() is None


def test_run_inside_run_of_the_same_instance_with_an_inner_exception() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen: list[str | None] = []

    def inner() -> None:
        seen.append(als.get_store())
        raise ValueError("inner")

    def outer() -> str:
        try:
            als.run("inner", inner)
        except ValueError:
            seen.append(als.get_store())
        return "done"

    assert als.run("outer", outer) == "done"
    assert seen == ["inner", "outer"]
    assert als.get_store() is None


def test_an_inner_run_of_another_instance_keeps_the_outer_visible() -> None:
    a: AsyncLocalStorage[str] = AsyncLocalStorage()
    b: AsyncLocalStorage[str] = AsyncLocalStorage()

    def inner() -> tuple[str | None, str | None]:
        return a.get_store(), b.get_store()

    assert a.run("A", b.run, "B", inner) == ("A", "B")
    assert a.run("A", b.get_store) is None
    assert b.run("B", a.get_store) is None


def test_stores_are_the_same_object_and_mutations_are_visible() -> None:
    als: AsyncLocalStorage[dict[str, Any]] = AsyncLocalStorage()
    store: dict[str, Any] = {}

    async def child() -> None:
        als.get_store()["child"] = True  # type: ignore[index]

    async def main() -> None:
        assert als.get_store() is store
        await asyncio.create_task(child())
        await asyncio.to_thread(lambda: None)

    asyncio.run(als.run(store, main))
    assert store == {"child": True}


def test_run_rejects_a_non_callable_with_a_helpful_type_error() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    with pytest.raises(TypeError, match="callable"):
        als.run(1, "not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        als.exit(42)  # type: ignore[arg-type]
    assert als.get_store() is None


def test_a_type_error_raised_by_fn_itself_is_not_rewritten() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    def fn() -> None:
        raise TypeError("mine")

    with pytest.raises(TypeError, match=r"^mine$"):
        als.run(1, fn)


@pytest.mark.parametrize("bad", [3, b"x", ["n"]])
def test_name_must_be_a_string(bad: Any) -> None:
    with pytest.raises(TypeError, match="str"):
        AsyncLocalStorage(name=bad)


@pytest.mark.parametrize("bad", ["", "   "])
def test_name_must_not_be_blank(bad: str) -> None:
    with pytest.raises(ValueError, match="empty or blank"):
        AsyncLocalStorage(name=bad)


def test_asyncresource_validates_its_type() -> None:
    with pytest.raises(TypeError):
        AsyncResource(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        AsyncResource("")


# ------------------------------------------------------------------- async functions


async def test_run_with_an_async_fn_awaited_and_as_a_task() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def body(tag: str) -> tuple[str, str | None, str | None]:
        first = als.get_store()
        await asyncio.sleep(0)
        return tag, first, als.get_store()

    assert await als.run("awaited", body, "a") == ("a", "awaited", "awaited")
    task = asyncio.create_task(als.run("task", body, tag="t"))
    assert await task == ("t", "task", "task")
    assert als.get_store() is None


async def test_run_with_an_async_fn_restores_after_it_raises() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="d")

    async def body() -> None:
        await asyncio.sleep(0)
        raise LookupError("x")

    with pytest.raises(LookupError):
        await als.run("s", body)
    assert als.get_store() == "d"


async def test_exit_inside_run_with_an_async_fn() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="d")

    async def body() -> tuple[str | None, str | None]:
        first = als.get_store()
        await asyncio.sleep(0)
        return first, als.get_store()

    assert await als.run("s", als.exit, body) == ("d", "d")
    assert await als.run("s", lambda: als.exit(body)) == ("d", "d")

    async def caller() -> tuple[Any, str | None]:
        inner = await als.exit(body)
        return inner, als.get_store()

    assert await als.run("s", caller) == (("d", "d"), "s")
    assert await asyncio.create_task(als.run("s", als.exit, body)) == ("d", "d")


async def test_an_inner_run_with_async_fn_leaves_the_outer_store_after_await() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def inner() -> str | None:
        await asyncio.sleep(0)
        return als.get_store()

    async def outer() -> tuple[str | None, str | None, str | None]:
        before = als.get_store()
        got = await als.run("inner", inner)
        return before, got, als.get_store()

    assert await als.run("outer", outer) == ("outer", "inner", "outer")


# ------------------------------------------------------------------------ enter_with


def test_enter_with_then_run_then_exit() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="d")

    def scenario() -> list[str | None]:
        als.enter_with("entered")
        seen = [als.get_store(), als.run("ran", als.get_store), als.get_store()]
        seen += [als.exit(als.get_store), als.get_store()]
        return seen

    assert in_fresh_context(scenario) == ["entered", "ran", "entered", "d", "entered"]
    assert als.get_store() == "d"


def test_run_keeps_an_enter_with_of_another_instance_made_inside_it() -> None:
    a: AsyncLocalStorage[str] = AsyncLocalStorage()
    b: AsyncLocalStorage[str] = AsyncLocalStorage()

    def scenario() -> tuple[str | None, str | None]:
        a.run("A", b.enter_with, "B")
        return a.get_store(), b.get_store()

    assert in_fresh_context(scenario) == (None, "B")


def test_enter_with_inside_run_of_the_same_instance_is_undone_by_run() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def scenario() -> tuple[str | None, str | None]:
        als.enter_with("before")
        als.run("ran", als.enter_with, "inside")
        return als.get_store(), als.run("x", lambda: None)

    assert in_fresh_context(scenario) == ("before", None)


async def test_enter_with_in_a_task_reaches_its_children_not_parent_or_siblings() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    entered = asyncio.Event()
    seen: dict[str, str | None] = {}

    async def grandchild() -> None:
        seen["grandchild"] = als.get_store()

    async def child() -> None:
        early = asyncio.create_task(read("early-child"))
        als.enter_with("child")
        entered.set()
        await asyncio.create_task(grandchild())
        await early
        await asyncio.sleep(0)
        seen["child-later"] = als.get_store()

    async def read(key: str) -> None:
        await asyncio.sleep(0)
        seen[key] = als.get_store()

    async def sibling() -> None:
        await entered.wait()
        seen["sibling"] = als.get_store()

    await asyncio.gather(child(), sibling())
    seen["parent"] = als.get_store()
    assert seen == {
        "grandchild": "child",
        "early-child": None,  # created before the enter_with
        "child-later": "child",
        "sibling": None,
        "parent": None,
    }


def test_enter_with_in_a_thread_lasts_for_the_rest_of_the_thread() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen: list[str | None] = []

    def step_one() -> None:
        als.enter_with("thread")

    def step_two() -> None:
        seen.append(als.get_store())

        async def main() -> None:
            seen.append(als.get_store())

        asyncio.run(main())

    def target() -> None:
        step_one()
        step_two()

    t = threading.Thread(target=target)
    t.start()
    t.join()
    assert seen == ["thread", "thread"]
    assert als.get_store() is None


async def test_direct_await_shares_the_callers_context_documented_divergence() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def callee() -> None:
        await asyncio.sleep(0)
        als.enter_with("callee")

    async def caller_awaits_directly() -> str | None:
        await callee()
        return als.get_store()

    async def caller_uses_a_task() -> str | None:
        await asyncio.create_task(callee())
        return als.get_store()

    assert await asyncio.create_task(caller_awaits_directly()) == "callee"
    assert await asyncio.create_task(caller_uses_a_task()) is None


# -------------------------------------------------------------------------- disable


async def test_disable_hides_earlier_stores_in_tasks_and_threads() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="d")
    saw_store = asyncio.Event()
    disabled = asyncio.Event()
    thread_saw: list[str | None] = []
    thread_ready = threading.Event()
    thread_go = threading.Event()

    async def task_body() -> tuple[str | None, str | None]:
        first = als.get_store()
        saw_store.set()
        await disabled.wait()
        return first, als.get_store()

    def thread_body() -> None:
        thread_saw.append(als.get_store())
        thread_ready.set()
        thread_go.wait(10)
        thread_saw.append(als.get_store())

    task = asyncio.create_task(als.run("req", task_body))
    thread = threads.Thread(target=als.run, args=("req", thread_body))
    thread.start()
    await saw_store.wait()
    assert await asyncio.to_thread(thread_ready.wait, 10)
    als.disable()
    disabled.set()
    thread_go.set()
    assert await task == ("req", "d")
    await asyncio.to_thread(thread.join, 10)
    assert thread_saw == ["req", "d"]
    assert als.get_store() == "d"
    assert als.run("again", als.get_store) == "again"


def test_disable_then_enter_with_works_again() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def scenario() -> list[str | None]:
        als.enter_with("first")
        runner = AsyncLocalStorage.snapshot()  # saw "first"
        als.disable()
        seen = [als.get_store(), runner(als.get_store)]
        als.enter_with("second")
        seen += [als.get_store(), runner(als.get_store)]
        return seen

    assert in_fresh_context(scenario) == [None, None, "second", None]


def test_disable_inside_run_leaves_default_after_run() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="d")

    def inside() -> str | None:
        als.disable()
        return als.get_store()

    assert als.run("s", inside) == "d"
    assert als.get_store() == "d"
    assert als.run("t", als.get_store) == "t"


# ---------------------------------------------------------------------------- scope


def test_scope_sets_and_restores_also_on_error() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="d")
    with als.scope("a") as entered:
        assert entered == "a"
        assert als.get_store() == "a"
        seen: list[str | None] = []

        def fail_inside() -> None:
            with als.scope("b"):
                seen.append(als.get_store())
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_inside()
        assert seen == ["b"]
        assert als.get_store() == "a"
    assert als.get_store() == "d"


async def test_scope_closed_from_another_task_does_not_raise() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _l, c: loop_errors.append(c))

    async def stream() -> AsyncIterator[str | None]:
        with als.scope("streaming"):
            for _ in range(3):
                yield als.get_store()

    gen = stream()

    async def first_chunk() -> str | None:
        return await gen.__anext__()

    assert await asyncio.create_task(first_chunk()) == "streaming"

    async def close_elsewhere() -> str | None:
        await gen.aclose()  # finalised in another task's context
        return als.get_store()

    assert await asyncio.create_task(close_elsewhere()) is None
    assert als.get_store() is None
    assert loop_errors == []


def test_interleaved_generator_scopes_restore_when_closed_in_reverse_order() -> None:
    # docs/core.md: scopes of one storage exit in reverse order of entry within a
    # context; closed in creation order the first store stays visible (documented).
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="d")

    def body(store: str) -> Iterator[str | None]:
        with als.scope(store):
            yield als.get_store()

    def scenario(close_in_creation_order: bool) -> str | None:
        first, second = body("a"), body("b")
        assert next(first) == "a"
        assert next(second) == "b"
        for gen in (first, second) if close_in_creation_order else (second, first):
            gen.close()
        return als.get_store()

    assert in_fresh_context(lambda: scenario(close_in_creation_order=False)) == "d"
    assert in_fresh_context(lambda: scenario(close_in_creation_order=True)) == "a"


async def test_scope_in_an_abandoned_async_generator_finalised_by_gc() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _l, c: loop_errors.append(c))
    finalised = asyncio.Event()

    async def stream() -> AsyncIterator[int]:
        try:
            with als.scope("streaming"):
                yield 1
                yield 2
        finally:
            finalised.set()

    async def consumer() -> str | None:
        gen = stream()
        assert await gen.__anext__() == 1
        del gen  # abandoned mid-iteration: the loop's finaliser closes it
        gc.collect()
        return als.get_store()

    await asyncio.create_task(consumer())
    await asyncio.wait_for(finalised.wait(), 10)
    await asyncio.sleep(0)
    assert loop_errors == []
    assert als.get_store() is None


def test_generators_follow_whoever_drives_them() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def gen() -> Iterator[str | None]:
        while True:
            yield als.get_store()

    g = als.run("creator", gen)
    assert next(g) is None  # created inside run, driven outside
    assert als.run("driver", next, g) == "driver"
    assert next(g) is None


# ----------------------------------------------------------------- snapshot and bind


async def test_snapshot_taken_in_a_task_runs_in_a_plain_thread() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def handler() -> Callable[..., Any]:
        await asyncio.sleep(0)
        return AsyncLocalStorage.snapshot()

    runner = await asyncio.create_task(als.run("req", handler))
    results: list[Any] = []

    def in_thread() -> None:
        def body() -> str | None:
            als.enter_with("changed inside")
            return als.get_store()

        results.append(
            (als.get_store(), runner(als.get_store), runner(body), runner(als.get_store))
        )

    t = threading.Thread(target=in_thread)  # plain: no propagation of its own
    t.start()
    await asyncio.to_thread(t.join, 10)
    assert results == [(None, "req", "changed inside", "req")]


def test_a_snapshot_runs_concurrently_in_threads_and_reentrantly() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    runner = als.run(7, AsyncLocalStorage.snapshot)
    barrier = threading.Barrier(4)

    def job(i: int) -> tuple[int | None, int | None]:
        def body() -> tuple[int | None, int | None]:
            barrier.wait(10)
            inner = runner(als.get_store)  # re-entrant
            als.enter_with(i)
            return inner, als.get_store()

        return runner(body)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(job, range(4)))
    assert results == [(7, i) for i in range(4)]
    assert runner(als.get_store) == 7


def test_snapshot_passes_args_and_kwargs() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    runner = als.run("s", AsyncLocalStorage.snapshot)
    assert runner(lambda a, *, b: (als.get_store(), a, b), 1, b=2) == ("s", 1, 2)
    with pytest.raises(TypeError):
        runner(None)


async def test_bind_on_an_async_function_keeps_the_whole_body_in_the_context() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    other: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def work(tag: str) -> tuple[str, str | None, str | None]:
        first = als.get_store()
        await asyncio.sleep(0)
        other.enter_with("inside")  # must not leak out of the bound call
        await asyncio.sleep(0)
        return tag, first, als.get_store()

    bound = als.run("bound", AsyncLocalStorage.bind, work)
    assert bound.__name__ == "work"
    assert await als.run("caller", bound, "x") == ("x", "bound", "bound")
    assert other.get_store() is None
    assert await asyncio.create_task(bound("t")) == ("t", "bound", "bound")


def test_bind_on_methods() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    class Service:
        def __init__(self) -> None:
            self.calls = 0

        def handle(self, x: int) -> tuple[str | None, int, int]:
            self.calls += 1
            return als.get_store(), x, self.calls

    service = Service()
    bound_method = als.run("req", AsyncLocalStorage.bind, service.handle)
    assert bound_method(5) == ("req", 5, 1)

    def plain(self: Any, x: int) -> tuple[str | None, Any, int]:
        return als.get_store(), self, x

    class Holder:
        method = als.run("cls", AsyncLocalStorage.bind, plain)

    h = Holder()
    # Documented: a bound callable stored on a class binds like a method.
    assert h.method(3) == ("cls", h, 3)
    assert Holder.method(h, 4) == ("cls", h, 4)


async def test_bind_of_a_coroutine_function_is_a_coroutine_function() -> None:
    # Frameworks pick sync vs async with these checks (Starlette/FastAPI endpoints,
    # pytest-asyncio); a bound `async def` must still be recognised as one.
    import inspect

    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def endpoint(x: int) -> tuple[str | None, int]:
        await asyncio.sleep(0)
        return als.get_store(), x

    class Handler:
        async def handle(self, x: int) -> tuple[str | None, Any, int]:
            await asyncio.sleep(0)
            return als.get_store(), self, x

        bound_on_class = als.run("cls", AsyncLocalStorage.bind, handle)

    handler = Handler()
    resource = als.run("res", AsyncResource, "Endpoint")
    bound = {
        "als": als.run("als", AsyncLocalStorage.bind, endpoint),
        "resource": resource.bind(endpoint),
        "method": als.run("method", AsyncLocalStorage.bind, handler.handle),
    }
    for name, fn in bound.items():
        assert inspect.iscoroutinefunction(fn), name
        assert asyncio.iscoroutinefunction(fn), name
    assert bound["als"].__wrapped__ is endpoint  # type: ignore[attr-defined]
    assert await bound["als"](1) == ("als", 1)
    assert await bound["resource"](2) == ("res", 2)
    assert await bound["method"](3) == ("method", handler, 3)
    assert await handler.bound_on_class(4) == ("cls", handler, 4)
    assert not inspect.iscoroutinefunction(AsyncLocalStorage.bind(lambda: None))


def test_bind_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="callable"):
        AsyncLocalStorage.bind(3)  # type: ignore[arg-type]


def test_bind_discards_changes_and_is_reentrant() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()
    depth: list[int | None] = []

    def recurse(n: int) -> None:
        depth.append(als.get_store())
        als.enter_with(n)
        if n < 3:
            bound(n + 1)

    bound = als.run(0, AsyncLocalStorage.bind, recurse)
    bound(1)
    assert depth == [0, 0, 0]
    assert als.get_store() is None


# ------------------------------------------------------------------- AsyncResource


async def test_async_resource_made_in_one_task_used_in_another() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def maker() -> AsyncResource:
        await asyncio.sleep(0)
        return AsyncResource("DBQuery")

    resource = await asyncio.create_task(als.run("maker", maker))
    assert resource.async_id() > 1
    assert isinstance(resource.trigger_async_id(), int)

    async def user() -> tuple[str | None, str | None, str | None]:
        inside = resource.run_in_async_scope(als.get_store)
        bound = resource.bind(lambda: als.get_store())
        return als.get_store(), inside, bound()

    assert await asyncio.create_task(als.run("user", user)) == ("user", "maker", "maker")

    async def async_body() -> str | None:
        await asyncio.sleep(0)
        return als.get_store()

    assert await als.run("user", resource.run_in_async_scope, async_body) == "maker"


def test_async_resource_discards_changes_and_runs_from_many_threads() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    resource = als.run("captured", AsyncResource, "Job")
    barrier = threading.Barrier(3)

    def body(i: int) -> tuple[str | None, str | None]:
        first = als.get_store()
        barrier.wait(10)
        als.enter_with(f"job-{i}")
        return first, als.get_store()

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(resource.run_in_async_scope, body, i) for i in range(3)]
        results = [f.result(10) for f in futures]
    assert results == [("captured", f"job-{i}") for i in range(3)]
    assert resource.run_in_async_scope(als.get_store) == "captured"


def test_async_resource_ids_are_unique_and_increasing() -> None:
    ids = [AsyncResource("X").async_id() for _ in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert ids[0] > 1


def test_async_resource_explicit_trigger() -> None:
    resource = AsyncResource("X", trigger_async_id=42)
    assert resource.trigger_async_id() == 42
    with pytest.raises(TypeError):
        AsyncResource("X", trigger_async_id="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        AsyncResource("X", trigger_async_id=-5)


def test_async_resource_rejects_non_callables() -> None:
    resource = AsyncResource("X")
    with pytest.raises(TypeError, match="callable"):
        resource.run_in_async_scope(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        resource.bind(5)  # type: ignore[arg-type]


# ----------------------------------------------------------- many overlapping requests


async def test_overlapping_requests_never_mix() -> None:
    import random

    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage()
    rng = random.Random(1234)
    mixups: list[tuple[int, Any]] = []

    def check(rid: int) -> None:
        store = als.get_store()
        if store is None or store["id"] != rid:
            mixups.append((rid, store))

    async def child(rid: int) -> None:
        await asyncio.sleep(rng.random() / 1000)
        check(rid)

    async def request(rid: int) -> None:
        loop = asyncio.get_running_loop()
        check(rid)
        done = loop.create_future()
        loop.call_soon(check, rid)
        loop.call_later(rng.random() / 1000, lambda: (check(rid), done.set_result(None)))
        await asyncio.gather(child(rid), child(rid))
        await done
        try:
            await asyncio.wait_for(asyncio.sleep(1), timeout=rng.random() / 1000)
        except asyncio.TimeoutError:
            pass
        check(rid)
        await loop.run_in_executor(None, check, rid)  # default pool; ok only with install
        check(rid)

    was = threads.installed()
    threads.install()
    try:
        await asyncio.gather(*(als.run({"id": i}, request, i) for i in range(300)))
    finally:
        if not was:
            threads.uninstall()
    assert mixups == []


# -------------------------------------------------------- the pure-Python fallback


@pytest.mark.skipif(PURE, reason="already running on the pure-Python fallback")
def test_pure_python_fallback_passes_these_modules() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ASYNCLOCAL_PURE_PYTHON": "1"}
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(Path(__file__).relative_to(root)),
            str(Path(__file__).with_name("test_thread_boundaries.py").relative_to(root)),
        ],
        cwd=root, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_this_run_uses_the_implementation_it_claims() -> None:
    from asynclocal import _storage

    assert _storage.SPEEDUPS is (not PURE)


def test_collected_storages_release_their_stores() -> None:
    import weakref

    als: AsyncLocalStorage[Any] = AsyncLocalStorage()

    class Store:
        pass

    store = Store()
    ref = weakref.ref(store)
    als.run(store, lambda: None)
    del store
    gc.collect()
    assert ref() is None
