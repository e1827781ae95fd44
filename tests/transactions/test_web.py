"""Through a real server: Starlette under uvicorn, the request middleware, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asynclocal.request import current_request
from asynclocal.transactions import TransactionManager
from asynclocal.web.asgi import RequestContextMiddleware
from tests.support.servers import run_uvicorn

from .conftest import PostgresServer, _reset_pg_tables, items


def make_app(url: str, state: dict[str, Any]) -> Starlette:
    """An order service: controller -> service -> repository, no session passed around."""

    async def repository(label: str) -> None:
        tm: TransactionManager[Any] = state["tm"]
        await asyncio.sleep(random.random() * 0.003)
        await tm.current_session().execute(
            insert(items).values(request_id=current_request().request_id, label=label)
        )

    async def service(n: int) -> None:
        await repository(f"order-{n}")
        await repository(f"line-{n}")
        if n % 4 == 0:
            raise HTTPException(409, "out of stock")  # rolls the request's transaction back

    async def create_order(request: Request) -> JSONResponse:
        n = int(request.path_params["n"])

        @state["tm"].transactional
        async def controller() -> None:
            await service(n)

        await controller()
        return JSONResponse({"n": n, "request_id": current_request().request_id})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The engine belongs to the server's event loop, so it is made here.
        engine = create_async_engine(url, pool_size=5, max_overflow=20)
        state["engine"] = engine
        state["tm"] = TransactionManager(engine)
        yield
        state["checked_out"] = engine.pool.checkedout()
        await engine.dispose()

    return Starlette(
        routes=[Route("/orders/{n:int}", create_order, methods=["POST"])],
        middleware=[Middleware(RequestContextMiddleware)],
        lifespan=lifespan,
    )


@pytest.mark.postgres
async def test_requests_through_uvicorn_commit_or_roll_back_alone(
    postgres_server: PostgresServer,
) -> None:
    reader = _reset_pg_tables(postgres_server)
    state: dict[str, Any] = {}
    count = 24
    try:
        with run_uvicorn(make_app(postgres_server.url("asyncpg"), state)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                responses = await asyncio.gather(
                    *(
                        client.post(f"/orders/{n}", headers={"x-request-id": f"web-{n:03d}"})
                        for n in range(count)
                    )
                )
        assert state["checked_out"] == 0
        for n, response in enumerate(responses):
            assert response.headers["x-request-id"] == f"web-{n:03d}"
            if n % 4 == 0:
                assert response.status_code == 409
            else:
                assert response.status_code == 200
                assert response.json() == {"n": n, "request_id": f"web-{n:03d}"}
        with reader.connect() as conn:
            rows = sorted(
                conn.execute(
                    items.select().with_only_columns(items.c.request_id, items.c.label)
                ).all()
            )
        expected = sorted(
            (f"web-{n:03d}", f"{kind}-{n}")
            for n in range(count)
            if n % 4
            for kind in ("order", "line")
        )
        assert rows == expected
    finally:
        reader.dispose()
