"""Transactions through a real Starlette app on SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from asynclocal.transactions import (
    TransactionManager,
)
from tests.support.servers import run_uvicorn
from tests.transactions._orders_app import orders_app

pytestmark = pytest.mark.timeout(60)


# --- transactions through a real Starlette app on SQLite -------------------------------------


@pytest.fixture
def tx_app(tmp_path: Path) -> tuple[Starlette, TransactionManager[Any], Any]:
    return orders_app(tmp_path / "orders.db")


def test_transactions_through_starlette_on_sqlite(
    tx_app: tuple[Starlette, TransactionManager[Any], Any],
) -> None:
    app, _tm, engine = tx_app
    plan = [(f"item{i}", i % 3 == 1, i % 4 == 2) for i in range(12)]
    with run_uvicorn(app) as base:

        def call(p: tuple[str, bool, bool]) -> tuple[tuple[str, bool, bool], httpx.Response]:
            item, fail, nested_fail = p
            params = {"item": item, "fail": int(fail), "nested_fail": int(nested_fail)}
            return p, httpx.post(f"{base}/order", params=params, timeout=30)

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, plan))
        mandatory = httpx.get(f"{base}/mandatory", timeout=10)
    assert mandatory.status_code == 500
    assert mandatory.json() == {"error": "no transaction"}

    async def rows(table: str) -> dict[str, list[str]]:
        async with engine.connect() as conn:
            out: dict[str, list[str]] = {}
            for rid, item in await conn.execute(text(f"SELECT request_id, item FROM {table}")):
                out.setdefault(item, []).append(rid)
            return out

    async def read() -> tuple[dict[str, list[str]], dict[str, list[str]], int]:
        o, a = await rows("orders"), await rows("audit")
        checked_out = engine.sync_engine.pool.checkedout()
        await engine.dispose()
        return o, a, checked_out

    orders, audit, checked_out = asyncio.run(read())
    assert checked_out == 0
    for (item, fail, nested_fail), r in results:
        rid = r.headers["x-request-id"]
        assert audit[item] == [rid]  # REQUIRES_NEW: committed whatever the outer did
        if fail:
            assert r.status_code == 409
            assert item not in orders
            assert f"{item}-extra" not in orders
            continue
        assert r.status_code == 200
        assert r.json() == {"tx_request_id": rid}
        assert orders[item] == [rid]
        if nested_fail:
            assert f"{item}-extra" not in orders
        else:
            assert orders[f"{item}-extra"] == [rid]
