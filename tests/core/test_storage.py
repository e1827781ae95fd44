"""AsyncLocalStorage semantics, one test per documented rule."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage


class Boom(Exception):
    pass


# -- attributes ----------------------------------------------------------------


def test_name_and_default() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(name="request", default="none")
    assert als.name == "request"
    assert als.default == "none"
    assert als.get_store() == "none"
    assert als.has_store() is False
    assert "request" in repr(als)


def test_subscripted_construction_and_subclass_override() -> None:
    typed = AsyncLocalStorage[dict[str, int]](name="typed")
    assert typed.run({"a": 1}, typed.get_store) == {"a": 1}

    class Upper(AsyncLocalStorage[str]):
        def get_store(self) -> str | None:
            store = self.context_var.get()
            return None if store is None else store.upper()

    upper = Upper(name="upper")
    assert upper.run("abc", upper.get_store) == "ABC"
    upper.disable()
    assert upper.run("xyz", upper.get_store) == "XYZ"


def test_generated_names_are_unique() -> None:
    a: AsyncLocalStorage[int] = AsyncLocalStorage()
    b: AsyncLocalStorage[int] = AsyncLocalStorage()
    assert a.name
    assert b.name
    assert a.name != b.name
    assert a.get_store() is None


# -- run: sync ---------------------------------------------------------------------


def test_run_makes_store_visible_and_restores_previous() -> None:
    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage(name="t")
    store = {"id": 1}

    def handler(a: int, *, b: int) -> tuple[Any, int]:
        return als.get_store(), a + b

    assert als.run(store, handler, 1, b=2) == (store, 3)
    assert als.get_store() is None


def test_run_passes_through_keyword_arguments_named_like_its_parameters() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    def handler(store: str, fn: str) -> tuple[str, str, int | None]:
        return store, fn, als.get_store()

    assert als.run(5, handler, store="s", fn="f") == ("s", "f", 5)


def test_run_restores_and_propagates_exception_unchanged() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    err = Boom("inner")

    def fail() -> None:
        assert als.get_store() == "inner"
        raise err

    als.enter_with("outer")
    with pytest.raises(Boom) as info:
        als.run("inner", fail)
    assert info.value is err
    assert als.get_store() == "outer"


def test_run_propagates_a_type_error_raised_by_fn_unchanged() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    err = TypeError("from the handler")

    def fail() -> None:
        raise err

    with pytest.raises(TypeError) as info:
        als.run("x", fail)
    assert info.value is err


def test_nested_runs_of_one_instance() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    seen: list[str | None] = []

    def inner() -> None:
        seen.append(als.get_store())

    def outer() -> None:
        seen.append(als.get_store())
        als.run("inner", inner)
        seen.append(als.get_store())

    als.run("outer", outer)
    assert seen == ["outer", "inner", "outer"]
    assert als.get_store() is None


def test_nested_runs_of_two_instances_see_each_own_store() -> None:
    a: AsyncLocalStorage[str] = AsyncLocalStorage(name="a")
    b: AsyncLocalStorage[str] = AsyncLocalStorage(name="b")

    def inner() -> tuple[str | None, str | None]:
        return a.get_store(), b.get_store()

    def outer() -> tuple[Any, ...]:
        return (a.get_store(), b.get_store(), b.run("B", inner), a.get_store(), b.get_store())

    assert a.run("A", outer) == ("A", None, ("A", "B"), "A", None)


def test_store_is_never_copied() -> None:
    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage()
    store: dict[str, int] = {}

    def deep() -> None:
        s = als.get_store()
        assert s is store
        s["n"] = 1

    als.run(store, deep)
    assert store == {"n": 1}


# -- run: async ----------------------------------------------------------------------


async def test_run_async_fn_awaited_sees_store() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def handler(x: int) -> tuple[str | None, int]:
        await asyncio.sleep(0)
        return als.get_store(), x

    coro = als.run("req", handler, 7)
    assert asyncio.iscoroutine(coro)
    assert als.get_store() is None  # nothing leaks before the coroutine runs
    assert await coro == ("req", 7)
    assert als.get_store() is None


async def test_run_async_fn_as_task_sees_store() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def handler() -> str | None:
        await asyncio.sleep(0)
        return als.get_store()

    tasks = [asyncio.create_task(als.run(f"r{i}", handler)) for i in range(5)]
    assert await asyncio.gather(*tasks) == [f"r{i}" for i in range(5)]
    assert als.get_store() is None


async def test_run_async_restores_on_exception() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    err = Boom()

    async def fail() -> None:
        await asyncio.sleep(0)
        raise err

    als.enter_with("outer")
    with pytest.raises(Boom) as info:
        await als.run("inner", fail)
    assert info.value is err
    assert als.get_store() == "outer"


async def test_run_store_reaches_tasks_and_callbacks_started_inside() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    loop = asyncio.get_running_loop()
    seen: list[str | None] = []
    done = asyncio.Event()

    def callback() -> None:
        seen.append(als.get_store())
        done.set()

    async def child() -> None:
        await asyncio.sleep(0)
        seen.append(als.get_store())

    async def handler() -> None:
        task = asyncio.create_task(child())
        loop.call_soon(callback)
        await task

    await als.run("req", handler)
    await done.wait()
    assert seen == ["req", "req"]


async def test_exit_async_sees_default() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="dflt")

    async def peek() -> str | None:
        await asyncio.sleep(0)
        return als.get_store()

    als.enter_with("req")
    assert await als.exit(peek) == "dflt"
    assert await asyncio.create_task(als.exit(peek)) == "dflt"
    assert als.get_store() == "req"


# -- generators ------------------------------------------------------------------------


def test_generator_sees_the_store_of_whoever_drives_it() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def gen() -> Iterator[str | None]:
        while True:
            yield als.get_store()

    made_inside = als.run("inside", gen)
    assert next(made_inside) is None  # created inside, driven outside
    outside = gen()
    assert als.run("inside", next, outside) == "inside"  # created outside, driven inside
    assert next(outside) is None


async def test_async_generator_sees_the_store_of_whoever_drives_it() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def agen() -> AsyncIterator[str | None]:
        while True:
            await asyncio.sleep(0)
            yield als.get_store()

    async def drive(g: AsyncIterator[str | None]) -> str | None:
        return await g.__anext__()

    outside = agen()
    assert await als.run("inside", drive, outside) == "inside"
    assert await drive(outside) is None
    made_inside = als.run("made", agen)
    assert await drive(made_inside) is None
    assert await als.run("other", drive, made_inside) == "other"
    await outside.aclose()  # type: ignore[attr-defined]
    await made_inside.aclose()  # type: ignore[attr-defined]


# -- enter_with ----------------------------------------------------------------------


async def test_enter_with_in_a_task_never_reaches_parent_or_siblings() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    als.enter_with("parent")
    entered = asyncio.Event()
    release = asyncio.Event()
    seen: dict[str, str | None] = {}

    async def grandchild() -> None:
        seen["grandchild"] = als.get_store()

    async def child() -> None:
        seen["child-before"] = als.get_store()
        als.enter_with("child")
        seen["child-after"] = als.get_store()
        entered.set()
        await release.wait()
        await asyncio.create_task(grandchild())

    async def sibling() -> None:
        await entered.wait()
        seen["sibling"] = als.get_store()

    t1 = asyncio.create_task(child())
    t2 = asyncio.create_task(sibling())
    await entered.wait()
    seen["parent"] = als.get_store()
    release.set()
    await asyncio.gather(t1, t2)
    assert seen == {
        "child-before": "parent",
        "child-after": "child",
        "sibling": "parent",
        "parent": "parent",
        "grandchild": "child",
    }
    assert als.get_store() == "parent"


async def test_enter_with_affects_only_tasks_created_afterwards() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    go = asyncio.Event()

    async def peek() -> str | None:
        await go.wait()
        return als.get_store()

    async def body() -> list[str | None]:
        before = asyncio.create_task(peek())
        als.enter_with("later")
        after = asyncio.create_task(peek())
        go.set()
        return list(await asyncio.gather(before, after))

    assert await asyncio.create_task(body()) == [None, "later"]


def test_enter_with_persists_for_the_rest_of_a_context_run() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    ctx = contextvars.Context()
    ctx.run(als.enter_with, "top")
    assert ctx.run(als.get_store) == "top"  # persists across separate entries
    assert als.get_store() is None  # never leaks out of that context


def test_enter_with_at_module_top_level_persists() -> None:
    script = textwrap.dedent(
        """
        import asyncio, threading
        from asynclocal import AsyncLocalStorage
        from asynclocal.threads import Thread

        als = AsyncLocalStorage(name="top")
        als.enter_with("module")

        def later():
            return als.get_store()

        async def main():
            await asyncio.sleep(0)
            return later()

        out = []
        t = Thread(target=lambda: out.append(later()))
        t.start(); t.join()
        print(later(), asyncio.run(main()), out[0])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["module", "module", "module"]


async def test_awaited_coroutine_shares_callers_context_documented_divergence() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def callee() -> None:
        await asyncio.sleep(0)
        als.enter_with("callee")

    async def caller() -> tuple[str | None, str | None]:
        await callee()  # awaited directly: same context (Node would isolate this)
        direct = als.get_store()
        als.enter_with("caller")
        await asyncio.create_task(callee())  # as a task: isolated, as in Node
        return direct, als.get_store()

    assert await asyncio.create_task(caller()) == ("callee", "caller")


# -- run restores only its own instance; exit ---------------------------------------


def test_run_restores_only_its_own_instance() -> None:
    a: AsyncLocalStorage[str] = AsyncLocalStorage(name="a")
    b: AsyncLocalStorage[str] = AsyncLocalStorage(name="b")

    def inside() -> None:
        b.enter_with("b-inside")

    a.run("a", inside)
    assert a.get_store() is None
    assert b.get_store() == "b-inside"


def test_exit_runs_with_default_and_restores() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="dflt")
    other: AsyncLocalStorage[str] = AsyncLocalStorage()
    other.enter_with("other")

    def peek() -> tuple[str | None, str | None]:
        return als.get_store(), other.get_store()

    als.enter_with("req")
    assert als.exit(peek) == ("dflt", "other")
    assert als.get_store() == "req"
    with pytest.raises(Boom):
        als.exit(lambda: (_ for _ in ()).throw(Boom()))
    assert als.get_store() == "req"


# -- disable -------------------------------------------------------------------------


async def test_disable_hides_stores_in_every_task_and_thread() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(default="dflt")
    disabled = asyncio.Event()
    thread_saw_store = threading.Event()
    thread_go = threading.Event()
    thread_result: list[str | None] = []

    def thread_body() -> None:
        als.enter_with("thread")
        thread_saw_store.set()
        thread_go.wait(10)
        thread_result.append(als.get_store())

    async def task_body(name: str) -> tuple[str | None, str | None]:
        before = als.get_store()
        await disabled.wait()
        return before, als.get_store()

    als.enter_with("top")
    t = threading.Thread(target=thread_body)
    t.start()
    tasks = [asyncio.create_task(als.run(f"t{i}", task_body, f"t{i}")) for i in range(3)]
    assert await asyncio.to_thread(thread_saw_store.wait, 10)
    await asyncio.sleep(0)
    als.disable()
    disabled.set()
    results = await asyncio.gather(*tasks)
    thread_go.set()
    await asyncio.to_thread(t.join, 10)
    assert results == [(f"t{i}", "dflt") for i in range(3)]
    assert thread_result == ["dflt"]
    assert als.get_store() == "dflt"
    assert als.has_store() is False
    # A later run / enter_with works again.
    assert als.run("again", als.get_store) == "again"
    als.enter_with("later")
    assert als.get_store() == "later"


def test_disable_inside_run_does_not_break_restore() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def inside() -> str | None:
        als.disable()
        return als.get_store()

    assert als.run("x", inside) is None
    assert als.get_store() is None
    assert als.run("y", als.get_store) == "y"


def test_context_var_is_the_backing_variable() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    var = als.context_var
    als.enter_with("x")
    assert var.get() == "x"
    als.disable()
    assert als.context_var is not var


# -- snapshot / bind -----------------------------------------------------------------


def test_snapshot_restores_captured_context_and_discards_changes() -> None:
    a: AsyncLocalStorage[str] = AsyncLocalStorage(name="a")
    b: AsyncLocalStorage[str] = AsyncLocalStorage(name="b")
    runner = a.run("A", lambda: b.run("B", AsyncLocalStorage.snapshot))

    def body(tag: str) -> tuple[str | None, str | None, str]:
        seen = (a.get_store(), b.get_store())
        a.enter_with("changed")
        return (*seen, tag)

    assert runner(body, "1") == ("A", "B", "1")
    assert runner(body, tag="2") == ("A", "B", "2")  # the change was discarded
    assert a.get_store() is None
    assert b.get_store() is None


def test_bind_runs_in_the_bound_context_and_discards_changes() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def body(x: int, y: int = 0, *rest: int) -> tuple[str | None, int]:
        seen = als.get_store()
        als.enter_with("changed")
        return seen, x + y + sum(rest)

    bound = als.run("bound", AsyncLocalStorage.bind, body)
    als.enter_with("caller")
    assert bound(1) == ("bound", 1)
    assert bound(1, 2) == ("bound", 3)
    assert bound(1, y=5) == ("bound", 6)
    assert bound(1, 2, 3, 4) == ("bound", 10)
    assert als.get_store() == "caller"
    assert bound.__name__ == "body"


def test_snapshot_is_reentrant_and_runs_concurrently_in_threads() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    runner = als.run("snap", AsyncLocalStorage.snapshot)
    n = 8
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    results: list[tuple[str | None, str | None]] = []

    def nested(depth: int) -> str | None:
        als.enter_with(f"depth{depth}")
        if depth < 3:
            # Re-entrant: the same runner inside itself starts from the captured state.
            assert runner(als.get_store) == "snap"
            runner(nested, depth + 1)
        return als.get_store()

    def worker(i: int) -> None:
        try:
            barrier.wait(10)
            for _ in range(50):
                results.append((runner(als.get_store), runner(nested, 0)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(results) == n * 50
    assert set(results) == {("snap", "depth0")}


# -- bad input ---------------------------------------------------------------------


def test_bad_input_raises_helpful_errors() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    with pytest.raises(TypeError, match=r"run\(\) expected a callable.*got int"):
        als.run("s", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"exit\(\) expected a callable"):
        als.exit("nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"name=.*must be a str.*got int"):
        AsyncLocalStorage(name=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        AsyncLocalStorage(name="  ")
    with pytest.raises(TypeError, match="cross_process"):
        AsyncLocalStorage(name="x", cross_process="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs an explicit name"):
        AsyncLocalStorage(cross_process=True)
    with pytest.raises(TypeError, match=r"bind\(\) expected a callable"):
        AsyncLocalStorage.bind(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="snapshot runner expected a callable"):
        AsyncLocalStorage.snapshot()(42)
    assert als.get_store() is None  # a failed run restores


def test_duplicate_cross_process_name_is_rejected() -> None:
    keep: AsyncLocalStorage[int] = AsyncLocalStorage(name="tests.core.dup", cross_process=True)
    with pytest.raises(ValueError, match="already exists"):
        AsyncLocalStorage(name="tests.core.dup", cross_process=True)
    assert keep.cross_process is True


# -- snapshot / bind / resources with async functions ------------------------------


async def test_snapshot_runs_an_async_fn_wholly_in_the_captured_context() -> None:
    from asynclocal import AsyncResource

    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    runner = als.run("snap", AsyncLocalStorage.snapshot)
    bound_peek: Any = None
    resource = als.run("res", AsyncResource, "Job")

    async def peek(tag: str) -> tuple[str, str | None, str | None]:
        before = als.get_store()
        await asyncio.sleep(0)
        child = await asyncio.create_task(_read(als))  # tasks started inside inherit it
        als.enter_with("changed")  # discarded after return
        await asyncio.sleep(0)
        assert als.get_store() == "changed"
        return tag, before, child

    bound_peek = als.run("bound", AsyncLocalStorage.bind, peek)
    als.enter_with("caller")
    assert await runner(peek, "a") == ("a", "snap", "snap")
    assert await asyncio.create_task(runner(peek, "b")) == ("b", "snap", "snap")
    assert await bound_peek("c") == ("c", "bound", "bound")
    assert await resource.run_in_async_scope(peek, "d") == ("d", "res", "res")
    assert als.get_store() == "caller"


async def _read(als: AsyncLocalStorage[str]) -> str | None:
    await asyncio.sleep(0)
    return als.get_store()


async def test_snapshot_async_fn_propagates_exceptions_and_cancellation() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    runner = als.run("snap", AsyncLocalStorage.snapshot)
    started = asyncio.Event()
    cleaned: list[str | None] = []
    err = Boom()

    async def fail() -> None:
        await asyncio.sleep(0)
        raise err

    async def forever() -> None:
        try:
            started.set()
            await asyncio.sleep(60)
        finally:
            cleaned.append(als.get_store())

    with pytest.raises(Boom) as info:
        await runner(fail)
    assert info.value is err
    task = asyncio.create_task(runner(forever))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["snap"]
