"""All patterns in one app: cookie -> user, policy, transaction, refreshed call, Server-Timing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asynclocal import RequestContext, current_request
from asynclocal.patterns.auth import ContextBearerAuth, refresh_count
from asynclocal.patterns.rbac import Principal, requires
from asynclocal.patterns.timing import timed
from asynclocal.transactions import (
    TransactionManager,
)
from asynclocal.web.starlette import install as install_starlette
from tests.patterns._token_world import TokenWorld
from tests.support.servers import run_uvicorn
from tests.transactions._orders_app import orders_app

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("timing_reports")]


# --- a real token server and API server -----------------------------------------------------


@pytest.fixture(scope="module")
def tokens() -> Iterator[tuple[TokenWorld, str, str]]:
    world = TokenWorld()
    with run_uvicorn(world.token_app()) as token_url, run_uvicorn(world.api_app()) as api_url:
        yield world, f"{token_url}/token", api_url


# --- RBAC through Flask and aiohttp: 403, never 500 -------------------------------------------


class Room:
    def __init__(self, created_by: str) -> None:
        self.created_by = created_by
        self.name = "room"


def _created_the_room(me: Principal, room: Room, new_name: str) -> bool:
    return room.created_by == me.id


# --- @timed: Server-Timing through Flask and bare WSGI ----------------------------------------


def _timing_entries(header: str) -> list[str]:
    return [entry.split(";")[0].strip() for entry in header.split(",")]


# --- transactions through a real Starlette app on SQLite -------------------------------------


# --- everything at once: cookie -> user, policy, transaction, refreshed call, Server-Timing ----


@pytest.fixture
def tx_app(tmp_path: Path) -> tuple[Starlette, TransactionManager[Any], Any]:
    return orders_app(tmp_path / "orders.db")


def test_all_patterns_in_concurrent_requests_through_starlette(
    tokens: tuple[TokenWorld, str, str],
    tx_app: tuple[Starlette, TransactionManager[Any], Any],
) -> None:
    world, token_url, api_url = tokens
    _, tm, engine = tx_app  # the SQLite engine with the orders/audit tables
    rooms = {"r1": Room("web0"), "r2": Room("web1")}
    token_client = httpx.AsyncClient()
    api = httpx.AsyncClient(
        base_url=api_url, auth=ContextBearerAuth(token_url=token_url, token_client=token_client)
    )

    @timed("repository")
    async def save(item: str) -> None:
        await tm.current_session().execute(
            text("INSERT INTO orders (request_id, item) VALUES (:r, :i)"),
            {"r": current_request().request_id, "i": item},
        )

    @timed("service")
    @requires("agent", policy=_created_the_room)
    @tm.transactional
    async def rename_room(room: Room, new_name: str) -> dict[str, Any]:
        await save(new_name)
        me = await asyncio.gather(api.get("/me"), api.get("/me"))
        return {"users": sorted({r.json()["user"] for r in me})}

    @timed("controller")
    async def controller(request: Request) -> Response:
        result = await rename_room(rooms[request.path_params["rid"]], request.query_params["n"])
        return JSONResponse({**result, "refreshes": refresh_count()})

    def from_cookies(ctx: RequestContext) -> None:
        user = ctx.cookies.get("user")
        if user:
            ctx.user = {"id": user, "roles": ["agent"]}
            ctx.access_token = ctx.cookies.get("access_token")
            ctx.refresh_token = ctx.cookies.get("refresh_token")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await api.aclose()  # in the loop that used the clients
        await token_client.aclose()

    app = Starlette(
        routes=[Route("/rooms/{rid}/rename", controller, methods=["POST"])], lifespan=lifespan
    )
    install_starlette(app, on_request=from_cookies)
    plan = [(f"web{i % 4}", f"r{1 + i % 2}", f"name{i}") for i in range(16)]
    with run_uvicorn(app) as base:

        def call(p: tuple[str, str, str]) -> tuple[tuple[str, str, str], httpx.Response]:
            user, rid, name = p
            cookies = {
                "user": user,
                "access_token": f"expired-{user}",
                "refresh_token": f"rt-{user}",
            }
            with httpx.Client(base_url=base, cookies=cookies) as client:
                return p, client.post(f"/rooms/{rid}/rename", params={"n": name}, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, plan))

    async def saved() -> dict[str, str]:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT item, request_id FROM orders"))
            out = {item: rid for item, rid in rows}
        await engine.dispose()
        return out

    rows = asyncio.run(saved())
    allowed = 0
    for (user, rid, name), r in results:
        owner = rooms[rid].created_by
        timing = r.headers.get("server-timing", "")
        assert "controller;dur=" in timing
        assert "total;dur=" in timing
        if user != owner:
            assert r.status_code == 403
            assert name not in rows
            assert "service;dur=" in timing
            assert "repository" not in timing
            continue
        allowed += 1
        assert r.status_code == 200, r.text
        assert r.json() == {"users": [user], "refreshes": 1}
        assert rows[name] == r.headers["x-request-id"]
        assert _timing_entries(timing) == ["controller", "service", "repository", "total"]
    assert allowed == 8
    assert sum(world.refreshes[f"web{i}"] for i in range(4)) == 8  # one per allowed request
