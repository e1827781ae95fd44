"""Middleware edges: lifespan, async hooks that reject, WSGI generator bodies, nesting, reuse."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from asynclocal import request_id
from asynclocal.request import RequestContext
from tests.support.servers import run_uvicorn, run_waitress
from tests.web._apps import Forbidden, flask_app, get_head, plain_asgi_app, raw_request

HEX32 = re.compile(r"^[0-9a-f]{32}$")

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- more edges


def test_lifespan_passes_through_without_a_request_context() -> None:
    from asynclocal.web.asgi import RequestContextMiddleware

    events: list[tuple[str, str | None]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append((message["type"], request_id()))
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with run_uvicorn(RequestContextMiddleware(app)) as base:
        r = httpx.get(base + "/", headers={"X-Request-ID": "life-1"})
        assert r.status_code == 204
        assert r.headers["x-request-id"] == "life-1"
    assert events == [("lifespan.startup", None), ("lifespan.shutdown", None)]


def test_async_on_request_hook_can_reject_under_asgi() -> None:
    async def load_user(ctx: RequestContext) -> None:
        await asyncio.sleep(0)
        if ctx.headers.get("authorization") != "Bearer good-token":
            raise Forbidden()
        ctx.access_token, ctx.user = "good-token", {"id": "u-1"}

    app = plain_asgi_app(on_request=load_user)
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as c:
        r = c.get("/", headers={"X-Request-ID": "h-1"})
        assert (r.status_code, r.text, r.headers["x-request-id"]) == (403, "go away", "h-1")
        r = c.get("/", headers={"X-Request-ID": "h-2", "Authorization": "Bearer good-token"})
        assert r.status_code == 200
        assert r.json()["id"] == "h-2"


def test_wsgi_generator_body_keeps_the_context_and_head_has_the_id() -> None:
    from asynclocal.web.wsgi import RequestContextMiddleware

    closed: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            try:
                for i in range(3):
                    time.sleep(0.001)
                    yield f"{i}:{request_id()}\n".encode()
            finally:
                closed.append(request_id())

        def failing() -> Iterator[bytes]:
            yield f"first:{request_id()}\n".encode()
            raise RuntimeError("wsgi mid-stream failure")

        if environ["PATH_INFO"] == "/fail":
            return failing()
        return body() if environ["REQUEST_METHOD"] != "HEAD" else iter([])

    server = run_waitress(RequestContextMiddleware(app), threads=2)
    with server as base, httpx.Client(base_url=base) as c:
        r = c.get("/", headers={"X-Request-ID": "gen-1"})
        assert r.text == "0:gen-1\n1:gen-1\n2:gen-1\n"
        r = c.head("/", headers={"X-Request-ID": "head-2"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "head-2"
        # A body failing mid-way: headers (with the id) are out, the body is cut.
        resp = raw_request(base, get_head("/fail", b"X-Request-ID: fail-1"))
        assert resp.one("x-request-id") == "fail-1"
        assert b"first:fail-1" in resp.body
        # The next request on the same worker thread sees only its own id.
        r = c.get("/")
        assert HEX32.match(r.headers["x-request-id"])
        assert r.text.splitlines()[0] == "0:" + r.headers["x-request-id"]
    assert closed[:1] == ["gen-1"]


def test_an_id_header_set_by_the_app_is_replaced_not_doubled() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from asynclocal.web.starlette import install
    from asynclocal.web.wsgi import RequestContextMiddleware

    async def own(request: Any) -> PlainTextResponse:
        return PlainTextResponse("x", headers={"X-Request-ID": "app-set"})

    asgi = Starlette(routes=[Route("/", own)])
    install(asgi)

    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("x-request-id", "app-set")])
        return [b"x"]

    with run_uvicorn(asgi) as a_base, run_waitress(RequestContextMiddleware(wsgi)) as w_base:
        for base in (a_base, w_base):
            resp = raw_request(base, get_head("/", b"X-Request-ID: client-1"))
            assert resp.values("x-request-id") == ["client-1"], base


def test_nested_middlewares_share_one_context_and_one_header() -> None:
    """A mounted sub-app with its own install(), or Flask's extension under a WSGI wrapper."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from asynclocal.web.starlette import install
    from asynclocal.web.wsgi import RequestContextMiddleware

    async def endpoint(request: Any) -> JSONResponse:
        return JSONResponse({"id": request_id()})

    inner = Starlette(routes=[Route("/i", endpoint)])
    install(inner)
    outer = Starlette(routes=[Mount("/sub", app=inner)])
    install(outer)
    wsgi = RequestContextMiddleware(flask_app().wsgi_app)  # the extension wraps it too

    with run_uvicorn(outer) as a_base, run_waitress(wsgi) as w_base:
        for url in (a_base + "/sub/i", w_base + "/users/n"):
            for headers in ({}, {"X-Request-ID": "nest-1"}):
                r = httpx.get(url, headers=headers)
                assert r.status_code == 200, url
                ids = r.headers.get_list("x-request-id")
                assert len(ids) == 1, (url, ids)
                assert r.json()["id"] == ids[0]
                assert ids[0] == headers.get("X-Request-ID", ids[0])


async def test_a_reused_scope_dict_still_gets_a_context_per_call() -> None:
    # Test harnesses reuse scope dicts; the nested-middleware check must not skip a call.
    from asynclocal.web.asgi import RequestContextMiddleware

    seen: list[str | None] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(request_id())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = RequestContextMiddleware(app)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await middleware(scope, receive, send)
    await middleware(scope, receive, send)
    assert len(seen) == 2
    assert all(s is not None for s in seen)
    assert seen[0] != seen[1]
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [dict(m["headers"])[b"x-request-id"].decode() for m in starts] == seen


def test_abandoned_stream_is_cleaned_up_in_its_own_context() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from asynclocal.web.starlette import install

    finished: list[str | None] = []
    done = threading.Event()
    errors: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(
                record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
            )

    async def endless(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                for i in range(150):
                    yield f"{i}:{request_id()}\n".encode()
                    await asyncio.sleep(0.003)
            finally:
                finished.append(request_id())
                done.set()

        return StreamingResponse(body(), media_type="text/plain")

    app = Starlette(routes=[Route("/endless", endless)])
    install(app)
    collect = Collect(level=logging.WARNING)
    watched = [logging.getLogger(n) for n in ("uvicorn.error", "asyncio")]
    for lg in watched:
        lg.addHandler(collect)
    try:
        with run_uvicorn(app) as base:
            url = urlsplit(base)
            assert url.port is not None
            with socket.create_connection(("127.0.0.1", url.port), timeout=5) as sock:
                sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\nX-Request-ID: gone-1\r\n\r\n")
                # The headers and the first chunk may arrive in separate segments.
                received = b""
                while b"0:gone-1" not in received:
                    chunk = sock.recv(4096)
                    assert chunk, received
                    received += chunk
            assert done.wait(10)
            r = httpx.get(base + "/endless", headers={"X-Request-ID": "next-1"}, timeout=10)
            assert r.text.startswith("0:next-1\n")
    finally:
        for lg in watched:
            lg.removeHandler(collect)
    assert finished[0] == "gone-1"
    assert not [e for e in errors if "different Context" in e or "ValueError" in e], errors
