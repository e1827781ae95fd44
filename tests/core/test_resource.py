"""`AsyncResource`: a captured context with async ids."""

from __future__ import annotations

import threading

import pytest

from asynclocal import AsyncLocalStorage, AsyncResource


def test_runs_in_the_context_captured_at_construction() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    res = als.run("captured", AsyncResource, "DBQuery")
    assert res.type == "DBQuery"

    def body(x: int, *, y: int) -> tuple[str | None, int]:
        seen = als.get_store()
        als.enter_with("changed")  # discarded once the call returns
        return seen, x + y

    assert als.run("caller", res.run_in_async_scope, body, 1, y=2) == ("captured", 3)
    assert res.run_in_async_scope(body, 2, y=2) == ("captured", 4)
    assert als.get_store() is None


def test_bind_always_runs_in_the_resource_context() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    res = als.run("captured", AsyncResource, "Callback")
    bound = res.bind(lambda: als.get_store())
    als.enter_with("caller")
    assert bound() == "captured"
    assert als.get_store() == "caller"


def test_exception_propagates_unchanged() -> None:
    res = AsyncResource("X")
    err = ValueError("inner")

    def fail() -> None:
        raise err

    with pytest.raises(ValueError, match="inner") as info:
        res.run_in_async_scope(fail)
    assert info.value is err


def test_reentrant_and_concurrent_in_threads() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    res = als.run("res", AsyncResource, "Shared")
    n = 8
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    seen: list[str | None] = []

    def nested(depth: int) -> str | None:
        before = als.get_store()
        als.enter_with(f"d{depth}")
        if depth < 3:
            assert res.run_in_async_scope(nested, depth + 1) == "res"
        return before

    def worker() -> None:
        try:
            barrier.wait(10)
            for _ in range(50):
                seen.append(res.run_in_async_scope(nested, 0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert seen == ["res"] * (n * 50)


def test_async_ids() -> None:
    a = AsyncResource("A")
    b = AsyncResource("B", trigger_async_id=a.async_id())
    assert b.async_id() > a.async_id() > 1
    assert b.trigger_async_id() == a.async_id()
    assert a.trigger_async_id() == 1  # created at the top level
    inner = a.run_in_async_scope(AsyncResource, "Inner")
    assert inner.trigger_async_id() == a.async_id()
    assert a.emit_destroy() is a
    assert "A" in repr(a)


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        AsyncResource(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        AsyncResource("")
    with pytest.raises(TypeError, match="must be an int"):
        AsyncResource("X", trigger_async_id="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        AsyncResource("X", trigger_async_id=-1)
    res = AsyncResource("X")
    with pytest.raises(TypeError, match="expected a callable"):
        res.run_in_async_scope(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a callable"):
        res.bind(None)  # type: ignore[arg-type]
