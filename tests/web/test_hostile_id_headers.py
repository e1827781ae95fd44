"""Hostile request-id headers sent over raw sockets are replaced and never echoed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from asynclocal import request_id
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress
from tests.web._apps import Captured, get_head, log, raw_request, starlette_app

HEX32 = re.compile(r"^[0-9a-f]{32}$")

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- hostile headers

HOSTILE: dict[str, bytes] = {
    "only-spaces": b"X-Request-ID:      ",
    "129-chars": b"X-Request-ID: " + b"a" * 129,
    "percent-crlf": b"X-Request-ID: abc%0d%0aSet-Cookie:%20x=1",
    "homoglyph": "X-Request-ID: re\u0071uest-\u0456d".encode(),  # Cyrillic i
    "tab-inside": b"X-Request-ID: abc\tdef",
    "semicolon": b"X-Request-ID: abc;def",
    "nul-escape": b"X-Request-ID: abc\\x00def",
    "ansi": b"X-Request-ID: \x1b[31mred",
}


@pytest.fixture(scope="module")
def asgi_server() -> Iterator[str]:
    app = starlette_app(use_install=True)
    with run_uvicorn(app) as base:
        yield base


@pytest.fixture(scope="module")
def wsgi_server() -> Iterator[str]:
    from asynclocal.web.wsgi import RequestContextMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        log.info("wsgi %s", environ.get("PATH_INFO"))
        body = json.dumps({"id": request_id()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    with run_waitress(RequestContextMiddleware(app), threads=4) as base:
        yield base


@pytest.mark.parametrize("server", ["asgi_server", "wsgi_server", "aiohttp_server"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_id_is_replaced_never_echoed(
    server: str, case: str, request: pytest.FixtureRequest, logs: Captured
) -> None:
    base = request.getfixturevalue(server)
    path = "/hello/x" if server == "asgi_server" else "/x"
    resp = raw_request(base, get_head(path, HOSTILE[case]))
    if resp.status == 400:  # the server itself refused the bytes: fine, nothing echoed
        assert HOSTILE[case].split(b":", 1)[1].strip() not in resp.raw or case == "only-spaces"
        return
    assert resp.status == 200, resp.raw[:200]
    echoed = resp.one("x-request-id")
    assert HEX32.match(echoed), (case, echoed)
    assert json.loads(resp.body)["id"] == echoed
    hostile_value = HOSTILE[case].split(b":", 1)[1].strip()
    if hostile_value:
        assert hostile_value not in resp.raw
        assert hostile_value.decode("latin-1") not in "\n".join(logs.lines)


@pytest.mark.parametrize("server", ["asgi_server", "wsgi_server", "aiohttp_server"])
def test_exactly_128_characters_is_valid_and_echoed(
    server: str, request: pytest.FixtureRequest
) -> None:
    base = request.getfixturevalue(server)
    path = "/hello/x" if server == "asgi_server" else "/x"
    value = ("Ab0-._~:+=/" * 12)[:128]
    resp = raw_request(base, get_head(path, b"X-Request-ID: " + value.encode()))
    assert resp.one("x-request-id") == value
    assert json.loads(resp.body)["id"] == value


@pytest.fixture(scope="module")
def aiohttp_server() -> Iterator[str]:
    from aiohttp import web

    from asynclocal.web.aiohttp import setup

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"id": request_id()})

    app = web.Application()
    setup(app)
    app.router.add_get("/x", handler)
    with run_aiohttp(app) as base:
        yield base


@pytest.mark.parametrize("server", ["asgi_server", "wsgi_server", "aiohttp_server"])
def test_repeated_id_header_is_invalid_on_every_server(
    server: str, request: pytest.FixtureRequest
) -> None:
    # WSGI servers (and Django) join repeated headers into one value, which is
    # invalid; every integration must then agree: a fresh id, neither value used.
    base = request.getfixturevalue(server)
    path = "/hello/x" if server == "asgi_server" else "/x"
    resp = raw_request(base, get_head(path, b"X-Request-ID: first-id", b"X-Request-ID: second-id"))
    assert resp.status == 200
    echoed = resp.one("x-request-id")
    assert HEX32.match(echoed), echoed
    assert json.loads(resp.body)["id"] == echoed
