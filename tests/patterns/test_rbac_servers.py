"""RBAC through Flask and aiohttp: 401/403 answers, never 500."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from flask import Flask, jsonify

from asynclocal import RequestContext, current_request
from asynclocal.patterns.rbac import Principal, requires
from asynclocal.web.aiohttp import setup as setup_aiohttp
from asynclocal.web.flask import RequestContextExtension
from tests.support.servers import run_aiohttp, run_waitress

pytestmark = pytest.mark.timeout(60)


# --- RBAC through Flask and aiohttp: 403, never 500 -------------------------------------------


class Room:
    def __init__(self, created_by: str) -> None:
        self.created_by = created_by
        self.name = "room"


def _created_the_room(me: Principal, room: Room, new_name: str) -> bool:
    return room.created_by == me.id


USERS: dict[str, dict[str, Any]] = {
    "alice": {"id": "alice", "roles": ["agent"]},
    "bob": {"id": "bob", "roles": ["agent"]},
    "carol": {"id": "carol", "roles": ["viewer"]},
}
EXPECTED = {"alice": 200, "bob": 403, "carol": 403, "": 401}


def _load_user(ctx: RequestContext) -> None:
    name = ctx.headers.get("x-user", "")
    if name:
        ctx.user = USERS[name]


def _check_rbac(base: str) -> None:
    plan = [name for name in EXPECTED for _ in range(8)]
    random.shuffle(plan)

    def call(name: str) -> tuple[str, httpx.Response]:
        headers = {"x-user": name} if name else {}
        return name, httpx.post(f"{base}/rooms/r1/rename", headers=headers, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        for name, r in pool.map(call, plan):
            assert r.status_code == EXPECTED[name], (name, r.status_code, r.text)
            assert "x-request-id" in r.headers
            if r.status_code == 403:
                assert "created" not in r.text
                assert "agent" not in r.text
            if r.status_code == 200:
                assert r.json() == {"renamed_by": "alice"}


def test_requires_through_flask_gives_403(tmp_path: Path) -> None:
    rooms = {"r1": Room("alice")}

    @requires("agent", policy=_created_the_room)
    def rename_room(room: Room, new_name: str) -> str:
        room.name = new_name
        return current_request().user_id or ""

    app = Flask("rbac_servers")

    @app.post("/rooms/<rid>/rename")
    def rename(rid: str) -> Any:
        return jsonify({"renamed_by": rename_room(rooms[rid], "new")})

    RequestContextExtension(app, on_request=_load_user)
    with run_waitress(app) as base:
        _check_rbac(base)


def test_requires_through_aiohttp_gives_403() -> None:
    rooms = {"r1": Room("alice")}

    @requires("agent", policy=_created_the_room)
    async def rename_room(room: Room, new_name: str) -> str:
        await asyncio.sleep(0)
        return current_request().user_id or ""

    async def rename(request: web.Request) -> web.Response:
        return web.json_response(
            {"renamed_by": await rename_room(rooms[request.match_info["rid"]], "n")}
        )

    app = web.Application()
    setup_aiohttp(app, on_request=_load_user)
    app.router.add_post("/rooms/{rid}/rename", rename)
    with run_aiohttp(app) as base:
        _check_rbac(base)
