"""aiohttp server middleware against a real aiohttp server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from asynclocal import current_request, request_id
from asynclocal.request import RequestContext, RequestRejected
from asynclocal.web.aiohttp import request_context_middleware, setup
from tests.support.servers import run_aiohttp
from tests.web.conftest import HEX32, HOSTILE_IDS, CapturedLogs, assert_not_echoed, raw_get


class TooMany(RequestRejected):
    status_code = 429
    public_message = "slow down"


async def on_request(ctx: RequestContext) -> None:
    await asyncio.sleep(0)
    if ctx.headers.get("x-user"):
        ctx.user = ctx.headers["x-user"]


async def whoami(request: web.Request) -> web.Response:
    ctx = current_request()
    await asyncio.sleep(0.001)
    inner = await asyncio.create_task(asyncio.sleep(0, result=request_id()))
    return web.json_response(
        {"request_id": ctx.request_id, "task_saw": inner, "route": ctx.route, "user": ctx.user_id}
    )


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("aiohttp detail")


async def limited(request: web.Request) -> web.Response:
    raise TooMany()


async def streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for i in range(3):
        await response.write(f"{i}:{request_id()}\n".encode())
    await response.write_eof()
    return response


def build(use_setup: bool) -> web.Application:
    if use_setup:
        app = web.Application()
        setup(app, on_request=on_request)
    else:
        app = web.Application(middlewares=[request_context_middleware])
    app.router.add_get("/users/{name}", whoami)
    app.router.add_get("/boom", boom)
    app.router.add_get("/limited", limited)
    app.router.add_get("/streamed", streamed)
    return app


@pytest.fixture(scope="module", params=[True, False], ids=["setup", "middleware"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, bool]]:
    with run_aiohttp(build(request.param)) as url:
        yield url, request.param


def test_context_id_route_and_tasks(server: tuple[str, bool]) -> None:
    url, use_setup = server
    r = httpx.get(f"{url}/users/ann", headers={"X-Request-ID": "aio-1", "X-User": "ann"})
    assert r.headers["x-request-id"] == "aio-1"
    assert r.json() == {
        "request_id": "aio-1",
        "task_saw": "aio-1",
        "route": "/users/{name}",
        "user": "ann" if use_setup else None,
    }


def test_500_404_and_rejection_carry_the_id(server: tuple[str, bool]) -> None:
    url, _ = server
    boom = httpx.get(f"{url}/boom", headers={"X-Request-ID": "aio-boom"})
    assert (boom.status_code, boom.headers["x-request-id"]) == (500, "aio-boom")
    assert "aiohttp detail" not in boom.text
    missing = httpx.get(f"{url}/nope")
    assert missing.status_code == 404
    assert HEX32.fullmatch(missing.headers["x-request-id"])
    limited = httpx.get(f"{url}/limited", headers={"X-Request-ID": "aio-429"})
    assert (limited.status_code, limited.text) == (429, "slow down")
    assert limited.headers["x-request-id"] == "aio-429"


def test_streamed_response(server: tuple[str, bool]) -> None:
    url, use_setup = server
    r = httpx.get(f"{url}/streamed", headers={"X-Request-ID": "aio-stream"})
    assert r.text.splitlines() == [f"{i}:aio-stream" for i in range(3)]
    if use_setup:  # the prepare signal adds headers to self-streamed responses
        assert r.headers["x-request-id"] == "aio-stream"


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=lambda b: repr(b[:20]))
def test_hostile_ids(server: tuple[str, bool], captured_logs: CapturedLogs, hostile: bytes) -> None:
    url, _ = server
    r = raw_get(url, "/users/h", [b"X-Request-ID: " + hostile])
    assert r.status in (200, 400)
    if r.status == 200:
        assert json.loads(r.body)["request_id"] == r.header("x-request-id")
    assert_not_echoed(r, hostile, captured_logs)
