"""RequestScope, read-only views and run_with_context."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from asynclocal import AsyncLocalStorage
from asynclocal.patterns.scope import (
    ReadOnlyError,
    ReadOnlyMapping,
    RequestScope,
    ScopeNotActive,
    readonly,
    readonly_request,
    run_with_context,
)
from asynclocal.request import RequestContext, current_request, request_storage


async def test_each_run_has_its_own_values_under_concurrency() -> None:
    scope = RequestScope("test-scope")

    async def deep() -> str:
        await asyncio.sleep(random.uniform(0, 0.005))
        return f"{scope.get('user')}:{scope.get('step')}"

    async def handler(i: int) -> list[str]:
        out = []
        for step in range(3):
            scope.set("step", step)
            out.append(await deep())
        assert scope.set_if_absent("user", "someone-else") == f"u{i}"
        assert scope.set_if_absent("fresh", i) == i
        return out

    results = await asyncio.gather(*(scope.run({"user": f"u{i}"}, handler, i) for i in range(50)))
    assert results == [[f"u{i}:0", f"u{i}:1", f"u{i}:2"] for i in range(50)]
    assert not scope.active


def test_scope_errors_and_values_are_copied() -> None:
    scope = RequestScope(storage=AsyncLocalStorage(name="mine"))
    with pytest.raises(ScopeNotActive, match="outside a scope of 'mine'"):
        scope.get("x")
    with pytest.raises(ScopeNotActive):
        scope.set("x", 1)
    initial = {"a": 1}
    with scope.scope(initial):
        scope.set("a", 2)
        assert scope.get("a") == 2
        with pytest.raises(KeyError, match="pass a default"):
            scope.get("missing")
        assert scope.get("missing", None) is None
        scope.delete("a")
        assert "a" not in scope.readonly()
        with pytest.raises(TypeError, match="key must be a str"):
            scope.set(1, 1)  # type: ignore[arg-type]
    assert initial == {"a": 1}  # the caller's mapping is never mutated
    with pytest.raises(TypeError, match="mapping or None"):
        scope.run([("a", 1)], lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncLocalStorage"):
        RequestScope(storage={})  # type: ignore[arg-type]


@dataclass
class User:
    id: str
    tags: list[str]


def test_readonly_views_refuse_every_mutation() -> None:
    store = {"user": User("u1", ["a"]), "limits": {"rpm": 10}, "ids": [1, 2], "s": {1}}
    view = readonly(store)
    assert isinstance(view, ReadOnlyMapping)
    with pytest.raises(ReadOnlyError, match="read-only view"):
        view["x"] = 1  # type: ignore[index]
    with pytest.raises(ReadOnlyError):
        del view["user"]  # type: ignore[attr-defined]
    with pytest.raises(ReadOnlyError):
        view["limits"]["rpm"] = 99
    with pytest.raises(AttributeError):
        view["ids"].append(3)
    with pytest.raises(ReadOnlyError):
        view["user"].id = "evil"
    with pytest.raises(AttributeError):
        view["user"].tags.append("evil")
    assert view["s"] == frozenset({1})
    assert store == {"user": User("u1", ["a"]), "limits": {"rpm": 10}, "ids": [1, 2], "s": {1}}
    store["limits"]["rpm"] = 20
    assert view["limits"]["rpm"] == 20  # a live view, not a copy
    assert readonly("text") == "text"
    assert readonly(None) is None


def test_readonly_request_context() -> None:
    ctx = RequestContext("r1", user={"id": "u1", "roles": ["a"]}, fields={"cart": ["x"]})

    def reader() -> None:
        view = readonly_request()
        assert (view.request_id, view.user_id) == ("r1", "u1")
        assert view.get("cart") == ("x",)
        assert "cart" in view
        for mutate in (
            lambda: setattr(view, "user", None),
            lambda: view.set("cart", []),
            lambda: view.delete("cart"),
            lambda: view.add_response_header("x", "y"),
            lambda: view.user.__setitem__("id", "evil"),
        ):
            with pytest.raises(ReadOnlyError):
                mutate()

    request_storage.run(ctx, reader)
    assert ctx.user == {"id": "u1", "roles": ["a"]}
    assert ctx.get("cart") == ["x"]


async def test_run_with_context_runs_tasks_in_order_in_one_request() -> None:
    seen: list[tuple[str, str]] = []

    async def load_user() -> str:
        ctx = current_request()
        ctx.set("user", "alice")
        await asyncio.sleep(0.001)
        seen.append(("load", ctx.request_id))
        return "loaded"

    def render() -> str:  # sync tasks are fine too
        ctx = current_request()
        seen.append(("render", ctx.request_id))
        return f"hello {ctx.get('user')}"

    out = await run_with_context({"X-Request-ID": "req-42"}, load_user, render)
    assert out == ["loaded", "hello alice"]
    assert seen == [("load", "req-42"), ("render", "req-42")]

    ctx = RequestContext("given")
    assert await run_with_context(ctx, lambda: current_request()) == [ctx]

    ran: list[str] = []

    async def boom() -> None:
        raise ValueError("stop")

    with pytest.raises(ValueError, match="stop"):
        await run_with_context({}, boom, lambda: ran.append("never"))
    assert ran == []


async def test_run_with_context_isolates_concurrent_requests() -> None:
    async def step() -> str:
        await asyncio.sleep(random.uniform(0, 0.005))
        return current_request().request_id

    results = await asyncio.gather(
        *(run_with_context({"x-request-id": f"id-{i}"}, step, step) for i in range(40))
    )
    assert results == [[f"id-{i}", f"id-{i}"] for i in range(40)]


async def test_run_with_context_validates() -> None:
    with pytest.raises(TypeError, match="not a callable"):
        await run_with_context({}, "load_user")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RequestContext or a mapping"):
        await run_with_context(42)  # type: ignore[arg-type]


async def test_run_with_context_takes_explicit_policy_and_hook() -> None:
    from asynclocal.request import RequestIdPolicy

    def tag(ctx: RequestContext) -> None:
        ctx.set("tagged", True)

    def read() -> tuple[str, object]:
        ctx = current_request()
        return ctx.request_id, ctx.get("tagged")

    policy = RequestIdPolicy(generator=lambda: "made-here")
    assert await run_with_context({}, read, policy=policy, on_request=tag) == [("made-here", True)]


async def test_run_with_context_rejects_unknown_and_conflicting_options() -> None:
    from asynclocal.request import RequestContextFactory

    with pytest.raises(TypeError, match="on_requests"):
        await run_with_context({}, lambda: None, on_requests=print)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not both"):
        await run_with_context({}, lambda: None, factory=RequestContextFactory(), on_request=print)
    with pytest.raises(TypeError, match="ready RequestContext"):
        await run_with_context(RequestContext("r"), lambda: None, on_request=print)


def test_request_scope_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="storag"):
        RequestScope("s", storag=None)  # type: ignore[call-arg]
