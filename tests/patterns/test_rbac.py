"""RBAC: roles, permissions and the room-rename rule, in code and through real servers."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asynclocal.patterns.rbac import (
    Forbidden,
    Principal,
    Unauthenticated,
    authorize,
    authorize_async,
    current_principal,
    requires,
)
from asynclocal.request import RequestContext, request_storage
from asynclocal.web.asgi import RequestContextMiddleware
from asynclocal.web.starlette import install
from tests.support.servers import run_uvicorn


@dataclass
class Room:
    id: str
    name: str
    created_by: str


@dataclass
class Agent:
    id: str
    roles: tuple[str, ...] = ("agent",)


def created_the_room(principal: Principal, room: Room, new_name: str) -> bool:
    return room.created_by == principal.id


@requires("agent", policy=created_the_room)
def rename_room(room: Room, new_name: str) -> Room:
    room.name = new_name
    return room


@requires("agent", policy=created_the_room)
async def rename_room_async(room: Room, new_name: str) -> Room:
    await asyncio.sleep(0)
    room.name = new_name
    return room


def as_user(user: Any, fn: Any, *args: Any, **fields: Any) -> Any:
    return request_storage.run(RequestContext("r", user=user, fields=fields), fn, *args)


def test_only_the_creator_renames_the_room() -> None:
    room = Room("1", "old", created_by="alice")
    assert as_user(Agent("alice"), rename_room, room, "new").name == "new"
    with pytest.raises(Forbidden, match="created_the_room denied") as info:
        as_user(Agent("bob"), rename_room, room, "stolen")
    assert (info.value.status_code, info.value.user_id) == (403, "bob")
    assert room.name == "new"  # the body never ran


def test_role_is_checked_before_the_policy() -> None:
    room = Room("1", "old", created_by="carol")
    with pytest.raises(Forbidden, match=r"needs one of the roles \['agent'\]"):
        as_user(Agent("carol", roles=("viewer",)), rename_room, room, "x")


async def test_async_functions_and_async_policies() -> None:
    room = Room("1", "old", created_by="alice")
    ok = await as_user(Agent("alice"), rename_room_async, room, "new")
    assert ok.name == "new"
    with pytest.raises(Forbidden):
        await as_user(Agent("bob"), rename_room_async, room, "stolen")

    async def owns(principal: Principal, room: Room) -> bool:
        await asyncio.sleep(0)
        return room.created_by == principal.id

    @requires(policy=owns)
    async def delete(room: Room) -> str:
        return "deleted"

    assert await as_user({"id": "alice"}, delete, room) == "deleted"
    with pytest.raises(Forbidden):
        await as_user({"id": "eve"}, delete, room)

    @requires(policy=owns)
    def sync_delete(room: Room) -> str:
        return "deleted"

    with pytest.raises(TypeError, match="async policy needs an async caller"):
        as_user({"id": "alice"}, sync_delete, room)


def test_permissions_from_context_fields_override_the_user() -> None:
    @requires(permissions=["rooms:write", "rooms:read"])
    def write() -> str:
        return "ok"

    user = {"id": "u1", "permissions": ["rooms:read"]}
    with pytest.raises(Forbidden, match=r"missing permissions \['rooms:write'\]"):
        as_user(user, write)
    assert as_user(user, write, permissions=["rooms:read", "rooms:write"]) == "ok"


def test_no_user_or_no_request_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated) as info:
        authorize("admin")
    assert info.value.status_code == 401
    with pytest.raises(Unauthenticated, match="has no user"):
        as_user(None, authorize, "admin")


def test_authorize_function_with_resource() -> None:
    room = Room("1", "n", created_by="alice")

    def check() -> Principal:
        return authorize("agent", policy=lambda p, r: r.created_by == p.id, resource=room)

    principal = as_user(Agent("alice", roles=("agent", "admin")), check)
    assert principal.id == "alice"
    assert principal.has_role("admin")
    with pytest.raises(Forbidden):
        as_user(Agent("bob"), check)
    assert as_user({"id": "x", "roles": "agent"}, current_principal).roles == {"agent"}


async def test_authorize_async_and_bad_policy_results() -> None:
    async def yes(p: Principal) -> bool:
        return True

    assert (await as_user({"id": "a"}, lambda: authorize_async(policy=yes))).id == "a"
    with pytest.raises(TypeError, match="expected True or False"):
        as_user({"id": "a"}, lambda: authorize(policy=lambda p: None))


def test_decorator_validates_arguments() -> None:
    with pytest.raises(TypeError, match="at least one role"):
        requires()
    with pytest.raises(TypeError, match="non-empty strings"):
        requires("")
    with pytest.raises(TypeError, match="policy must be a callable"):
        requires(policy="owner")  # type: ignore[arg-type]


def test_forbidden_becomes_403_through_the_middleware() -> None:
    rooms = {str(i): Room(str(i), f"room{i}", created_by=f"agent{i % 5}") for i in range(20)}

    async def rename(request: Request) -> Response:
        room = rooms[request.path_params["room_id"]]
        await asyncio.sleep(random.uniform(0, 0.01))
        renamed = await rename_room_async(room, request.query_params["name"])
        return JSONResponse({"name": renamed.name})

    def on_request(ctx: RequestContext) -> None:
        agent = ctx.headers.get("x-agent")
        ctx.user = Agent(agent) if agent else None

    app = Starlette(routes=[Route("/rooms/{room_id}", rename, methods=["POST"])])
    install(app, on_request=on_request)
    cases = [(rid, f"agent{a}") for rid in rooms for a in range(5)]
    random.shuffle(cases)
    with run_uvicorn(app) as base:

        async def go() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                jobs = [
                    client.post(
                        f"/rooms/{rid}",
                        params={"name": f"{agent}-{rid}"},
                        headers={"x-agent": agent},
                    )
                    for rid, agent in cases
                ]
                jobs.append(client.post("/rooms/1", params={"name": "anon"}))
                return await asyncio.gather(*jobs)

        answers = asyncio.run(go())
    for (rid, agent), answer in zip(cases, answers):
        if rooms[rid].created_by == agent:
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"name": f"{agent}-{rid}"}
        else:
            assert answer.status_code == 403
            assert answer.text == "Forbidden"  # the public message, never the reason
    assert answers[-1].status_code == 401
    assert all(room.name == f"{room.created_by}-{room.id}" for room in rooms.values())


def test_forbidden_from_a_pure_asgi_app() -> None:
    """Without Starlette's error middleware, the ASGI middleware itself answers 403/401."""

    @requires("admin")
    async def admin_only() -> str:
        return "secret"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = (await admin_only()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def on_request(ctx: RequestContext) -> None:
        role = ctx.headers.get("x-role")
        ctx.user = {"id": "u", "roles": [role]} if role else None

    with (
        run_uvicorn(RequestContextMiddleware(app, on_request=on_request)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        assert client.get("/", headers={"x-role": "admin"}).text == "secret"
        denied = client.get("/", headers={"x-role": "guest"})
        anonymous = client.get("/")
    assert (denied.status_code, denied.text) == (403, "Forbidden")
    assert (anonymous.status_code, anonymous.text) == (401, "Unauthorized")
