"""`als.scope(store)`: the context-manager form of `run`, safe to close from another context."""

from __future__ import annotations

import asyncio
import contextvars
import gc
from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage


def test_scope_sets_and_restores() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    with als.scope("outer") as store:
        assert store == "outer"
        assert als.get_store() == "outer"
        with als.scope("inner"):
            assert als.get_store() == "inner"
        assert als.get_store() == "outer"
    assert als.get_store() is None


def test_scope_restores_on_exception_and_propagates_it() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    err = KeyError("k")
    with pytest.raises(KeyError) as info, als.scope("x"):
        raise err
    assert info.value is err
    assert als.get_store() is None


def test_scope_is_not_reusable_while_entered() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    scope = als.scope("x")
    with scope, pytest.raises(RuntimeError, match="already entered"), scope:
        pass


def test_sync_generator_closed_in_another_context() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()

    def gen() -> Generator[str | None, None, None]:
        with als.scope("gen"):
            yield als.get_store()
            yield als.get_store()

    g = gen()
    first = contextvars.Context()
    assert first.run(next, g) == "gen"
    second = contextvars.Context()
    second.run(g.close)  # a raw ContextVar.reset would raise ValueError here
    assert second.run(als.get_store) is None


def test_raw_contextvar_reset_fails_where_scope_does_not() -> None:
    # The failure scope() guards against (cpython#118944), shown with a raw ContextVar.
    var: contextvars.ContextVar[str] = contextvars.ContextVar("raw")

    def gen() -> Generator[None, None, None]:
        token = var.set("x")
        try:
            yield
        finally:
            var.reset(token)

    g = gen()
    contextvars.Context().run(next, g)
    with pytest.raises(ValueError, match="different Context"):
        contextvars.Context().run(g.close)


async def _collect_loop_errors() -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    return errors


async def test_async_generator_finalised_by_garbage_collector() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    errors = await _collect_loop_errors()
    finalised = asyncio.Event()

    async def agen() -> AsyncIterator[str | None]:
        try:
            with als.scope("agen"):
                while True:
                    await asyncio.sleep(0)
                    yield als.get_store()
        finally:
            finalised.set()

    async def consume_one() -> str | None:
        g = agen()
        return await g.__anext__()  # then dropped unfinished

    assert await asyncio.create_task(consume_one()) == "agen"
    gc.collect()
    await asyncio.wait_for(finalised.wait(), 10)
    await asyncio.sleep(0.01)
    assert errors == []
    assert als.get_store() is None


async def test_async_generator_closed_by_another_task() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    other: AsyncLocalStorage[str] = AsyncLocalStorage()

    async def agen() -> AsyncIterator[str | None]:
        with als.scope("agen"):
            while True:
                await asyncio.sleep(0)
                yield als.get_store()

    g = agen()

    async def start() -> str | None:
        return await g.__anext__()

    async def close() -> tuple[str | None, str | None]:
        other.enter_with("closer")
        await g.aclose()  # type: ignore[attr-defined]
        return als.get_store(), other.get_store()

    assert await asyncio.create_task(start()) == "agen"
    assert await asyncio.create_task(close()) == (None, "closer")


async def test_streaming_response_consumed_in_another_task() -> None:
    # Like a streaming HTTP response: the body generator is started in the handler's
    # task and iterated to the end by the server's sender task.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    errors = await _collect_loop_errors()

    async def body() -> AsyncIterator[str]:
        with als.scope("stream"):
            for i in range(5):
                await asyncio.sleep(0)
                yield f"{i}:{als.get_store()}"

    async def handler() -> tuple[AsyncIterator[str], str]:
        stream = body()
        return stream, await stream.__anext__()

    async def sender(stream: AsyncIterator[str]) -> tuple[list[str], str | None]:
        chunks = [chunk async for chunk in stream]
        return chunks, als.get_store()

    als.enter_with("request")
    stream, first = await asyncio.create_task(handler())
    chunks, after = await asyncio.create_task(sender(stream))
    # A generator's body runs in the context of whoever drives it: the scope was
    # entered in the handler's task, so the sender's chunks see the sender's store.
    assert [first, *chunks] == ["0:stream"] + [f"{i}:request" for i in range(1, 5)]
    assert after == "request"  # closing the scope there neither raised nor clobbered it
    assert errors == []
    assert als.get_store() == "request"


async def test_scope_in_async_code_restores_across_awaits() -> None:
    als: AsyncLocalStorage[int] = AsyncLocalStorage()

    async def handle(i: int) -> tuple[int | None, int | None]:
        with als.scope(i):
            await asyncio.sleep(0.001 * (i % 3))
            inside = als.get_store()
        return inside, als.get_store()

    results = await asyncio.gather(*(handle(i) for i in range(20)))
    assert results == [(i, None) for i in range(20)]


async def test_stream_handed_to_a_task_started_inside_the_scope() -> None:
    # The sender task is created after the body entered its scope, so it inherits the
    # body's store; when the body finishes there, the sender gets its previous store back.
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    errors = await _collect_loop_errors()

    async def body() -> AsyncIterator[str]:
        with als.scope("stream"):
            for i in range(3):
                await asyncio.sleep(0)
                yield f"{i}:{als.get_store()}"

    async def sender(stream: AsyncIterator[str]) -> tuple[list[str], str | None]:
        chunks = [chunk async for chunk in stream]
        return chunks, als.get_store()

    async def handler() -> tuple[str, list[str], str | None]:
        stream = body()
        first = await stream.__anext__()
        chunks, after = await asyncio.create_task(sender(stream))
        return first, chunks, after

    als.enter_with("request")
    first, chunks, after = await asyncio.create_task(handler())
    assert [first, *chunks] == ["0:stream", "1:stream", "2:stream"]
    assert after == "request"
    assert errors == []
