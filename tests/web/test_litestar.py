"""Litestar under a real uvicorn, wrapped in the ASGI middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from litestar import Litestar, get

from asynclocal import current_request, request_id
from asynclocal.request import RequestRejected
from asynclocal.web.litestar import EXCEPTION_HANDLERS, middleware, wrap
from tests.support.servers import run_uvicorn
from tests.web.conftest import HEX32


class Gone(RequestRejected):
    status_code = 410
    public_message = "gone"


@get("/items/{item_id:int}")
async def item(item_id: int) -> dict[str, object]:
    await asyncio.sleep(0)
    ctx = current_request()
    return {"id": item_id, "request_id": ctx.request_id, "route": ctx.route}


@get("/sync", sync_to_thread=True)
def sync_handler() -> dict[str, object]:
    return {"request_id": request_id()}


@get("/boom")
async def boom() -> None:
    raise RuntimeError("litestar detail")


@get("/gone")
async def gone() -> None:
    raise Gone()


HANDLERS = [item, sync_handler, boom, gone]
pytestmark = pytest.mark.filterwarnings("ignore:.*inferred style")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = Litestar(route_handlers=HANDLERS, exception_handlers={**EXCEPTION_HANDLERS})
    with run_uvicorn(wrap(app)) as url:
        yield url


def test_route_id_and_threads(server: str) -> None:
    r = httpx.get(f"{server}/items/5", headers={"X-Request-ID": "ls-1"})
    assert r.json() == {"id": 5, "request_id": "ls-1", "route": "/items/{item_id}"}
    assert r.headers["x-request-id"] == "ls-1"
    s = httpx.get(f"{server}/sync")
    assert s.json()["request_id"] == s.headers["x-request-id"]
    assert HEX32.fullmatch(s.headers["x-request-id"])


def test_errors_carry_the_id(server: str) -> None:
    boom = httpx.get(f"{server}/boom", headers={"X-Request-ID": "ls-boom"})
    assert (boom.status_code, boom.headers["x-request-id"]) == (500, "ls-boom")
    assert "litestar detail" not in boom.text
    missing = httpx.get(f"{server}/nope")
    assert missing.status_code == 404
    assert HEX32.fullmatch(missing.headers["x-request-id"])
    gone_r = httpx.get(f"{server}/gone", headers={"X-Request-ID": "ls-gone"})
    assert (gone_r.status_code, gone_r.text, gone_r.headers["x-request-id"]) == (
        410,
        "gone",
        "ls-gone",
    )


def test_route_level_middleware() -> None:
    app = Litestar(route_handlers=HANDLERS, middleware=[middleware(header="X-Trace")])
    with run_uvicorn(app) as url:
        r = httpx.get(f"{url}/items/9", headers={"X-Trace": "ls-mw"})
        boom = httpx.get(f"{url}/boom", headers={"X-Trace": "ls-mw-boom"})
    assert r.json()["request_id"] == r.headers["x-trace"] == "ls-mw"
    assert (boom.status_code, boom.headers["x-trace"]) == (500, "ls-mw-boom")
