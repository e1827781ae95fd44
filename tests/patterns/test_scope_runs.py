"""`RequestScope` and `run_with_context`: concurrent runs never share."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from asynclocal import current_request, request_storage, with_request_context
from asynclocal.patterns import RequestScope, run_with_context
from asynclocal.patterns.scope import ScopeNotActive

pytestmark = pytest.mark.timeout(60)


# --- RequestScope and run_with_context --------------------------------------------------------


async def test_request_scope_concurrent_runs_never_share() -> None:
    scope = RequestScope("scope-runs")

    async def handler(i: int) -> tuple[int, Any, Any, Any]:
        scope.set("step", i)
        scope.set_if_absent("cart", [i])
        scope.set_if_absent("cart", ["other"])  # already set: kept
        await asyncio.sleep(random.random() * 0.01)

        async def child() -> Any:
            await asyncio.sleep(0)
            return scope.get("tenant")

        return i, scope.get("tenant"), scope.get("cart"), await asyncio.create_task(child())

    values = {"tenant": "t"}
    results = await asyncio.gather(*(scope.run({"tenant": f"t{i}"}, handler, i) for i in range(30)))
    for i, tenant, cart, child_tenant in results:
        assert tenant == child_tenant == f"t{i}"
        assert cart == [i]
    scope.run(values, lambda: scope.set("tenant", "changed"))
    assert values == {"tenant": "t"}  # run works on a copy
    with pytest.raises(ScopeNotActive):
        scope.get("tenant")


async def test_run_with_context_runs_tasks_in_order_in_one_request() -> None:
    order: list[tuple[str, str]] = []

    async def load() -> str:
        order.append(("load", current_request().request_id))
        current_request().set("user_loaded", True)
        return "loaded"

    def render() -> str:
        assert current_request().get("user_loaded") is True
        order.append(("render", current_request().request_id))
        return "rendered"

    assert await run_with_context({"x-request-id": "rw-1"}, load, render) == ["loaded", "rendered"]
    assert [name for name, _ in order] == ["load", "render"]
    assert {rid for _, rid in order} == {"rw-1"}
    assert request_storage.get_store() is None
    assert with_request_context({"x-request-id": "plain"}, lambda: current_request().request_id)
