"""An orders service on SQLite (aiosqlite) whose code uses transactions without a session."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asynclocal import current_request
from asynclocal.transactions import (
    NoActiveTransaction,
    Propagation,
    TransactionManager,
)
from asynclocal.web.starlette import install as install_starlette


class Conflict(Exception):
    pass


def orders_app(db_path: Path) -> tuple[Starlette, TransactionManager[Any], Any]:
    """The app, its transaction manager and its engine, with `orders` and `audit` tables."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{db_path}", connect_args={"timeout": 20})

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    tm: TransactionManager[Any] = TransactionManager(engine)

    async def save_row(table: str, item: str) -> None:  # the repository: no session argument
        rid = current_request().request_id
        await tm.current_session().execute(
            text(f"INSERT INTO {table} (request_id, item) VALUES (:r, :i)"), {"r": rid, "i": item}
        )

    async def place_order(item: str) -> None:  # the service
        await save_row("orders", item)

    @tm.transactional(Propagation.REQUIRES_NEW)
    async def write_audit(item: str) -> None:
        await save_row("audit", item)

    @tm.transactional
    async def checkout(item: str, fail: bool, nested_fail: bool) -> str:
        await write_audit(item)  # independent: kept even if checkout rolls back
        await place_order(item)
        try:
            async with tm.transaction(Propagation.NESTED):
                await place_order(f"{item}-extra")
                if nested_fail:
                    raise ValueError("only the savepoint rolls back")
        except ValueError:
            pass
        record = tm.current_transaction()
        assert record is not None
        if fail:
            raise Conflict(item)
        return str(record.request_id)

    @tm.transactional(Propagation.MANDATORY)
    async def needs_tx() -> None:
        pass

    async def order(request: Request) -> Response:
        q = request.query_params
        await asyncio.sleep(random.random() * 0.01)
        try:
            rid = await checkout(q["item"], q.get("fail") == "1", q.get("nested_fail") == "1")
        except Conflict:
            return JSONResponse({"error": "conflict"}, status_code=409)
        return JSONResponse({"tx_request_id": rid})

    async def mandatory(request: Request) -> Response:
        try:
            await needs_tx()
        except NoActiveTransaction:
            return JSONResponse({"error": "no transaction"}, status_code=500)
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/order", order, methods=["POST"]), Route("/mandatory", mandatory)]
    )
    install_starlette(app)

    async def create() -> None:
        async with engine.begin() as conn:
            for table in ("orders", "audit"):
                await conn.execute(
                    text(
                        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, request_id TEXT, item TEXT)"
                    )
                )

    asyncio.run(create())
    return app, tm, engine
