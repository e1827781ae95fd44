"""Contract review of issue 3 (request scope, web frameworks), written from the issue and README.

Each test uses a README/docs setup snippet as written, serves it with a real server on
127.0.0.1 and checks what a user relies on: the id echoed on every response, the context
visible in handlers (async, threadpool, background tasks, streams, websockets), hostile id
headers sent over raw sockets never echoed, and no mix-ups under concurrent load.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from asynclocal import NoRequestContext, current_request, request_id
from asynclocal.logging import ContextFilter
from asynclocal.request import RequestContext, RequestRejected
from asynclocal.web.fastapi import RequestContextDep  # module level: FastAPI resolves it
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress

HEX32 = re.compile(r"^[0-9a-f]{32}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9\-._~:+=/]{1,128}$")

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


class RawResponse:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes, raw: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def one(self, name: str) -> str:
        found = self.values(name)
        assert len(found) == 1, (name, self.headers)
        return found[0]


def raw_request(base: str, head: bytes, *, timeout: float = 5.0) -> RawResponse:
    """Send `head` (request line + headers, no final CRLF) verbatim; read until close."""
    url = urlsplit(base)
    assert url.hostname == "127.0.0.1"
    assert url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(head + b"\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    header_part, _, body = raw.partition(b"\r\n\r\n")
    lines = header_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return RawResponse(status, headers, body, raw)


def get_head(path: str, *extra: bytes) -> bytes:
    return b"\r\n".join([f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *extra])


class Captured(logging.Handler):
    """Formats every record with `[%(request_id)s] %(message)s` through a ContextFilter."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.lock_ = threading.Lock()
        self.addFilter(ContextFilter())
        self.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self.lock_:
            self.lines.append(line)


@pytest.fixture
def logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


log = logging.getLogger("tests.web.review")


# --------------------------------------------------------------------------- Starlette


def starlette_app(*, use_install: bool, **options: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    seen_in_background: dict[str, str | None] = {}
    background_done = threading.Event()

    async def hello(request: Request) -> JSONResponse:
        ctx = current_request()
        await asyncio.sleep(random.random() / 500)
        log.info("hello %s", request.query_params.get("n", "-"))
        return JSONResponse({"id": ctx.request_id, "route": ctx.route, "path": ctx.path})

    def sync_hello(request: Request) -> JSONResponse:  # run by Starlette in its threadpool
        log.info("sync %s", request.query_params.get("n", "-"))
        return JSONResponse({"id": request_id(), "thread": threading.current_thread().name})

    async def record_later(key: str) -> None:
        await asyncio.sleep(0.01)
        seen_in_background[key] = request_id()
        log.info("background %s", key)
        background_done.set()

    async def with_background(request: Request) -> PlainTextResponse:
        key = request.query_params["key"]
        return PlainTextResponse("queued", background=BackgroundTask(record_later, key))

    async def boom(request: Request) -> PlainTextResponse:
        log.info("about to fail")
        raise RuntimeError("handler detail")

    async def midstream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield f"first:{request_id()}\n".encode()
            await asyncio.sleep(0.01)
            raise RuntimeError("mid-stream failure")

        return StreamingResponse(body(), media_type="text/plain")

    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.002)
                yield f"{i}:{request_id()}\n".encode()

        return StreamingResponse(body(), media_type="text/plain")

    async def reject(request: Request) -> PlainTextResponse:
        raise Forbidden()

    def sync_background(key: str) -> None:  # a sync task: Starlette runs it in a thread
        seen_in_background[key] = request_id()
        background_done.set()

    async def with_sync_background(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            "queued", background=BackgroundTask(sync_background, request.query_params["key"])
        )

    async def echo_body(request: Request) -> JSONResponse:
        return JSONResponse({"id": request_id(), "body": await request.json()})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(current_request().request_id)
        text = await websocket.receive_text()
        await websocket.send_text(f"{text}:{request_id()}")
        await websocket.close(code=4001)

    routes = [
        Route("/hello/{name}", hello, methods=["GET", "HEAD"]),
        Route("/sync", sync_hello),
        Route("/bg", with_background),
        Route("/bg-sync", with_sync_background),
        Route("/echo", echo_body, methods=["POST"]),
        Route("/boom", boom),
        Route("/midstream", midstream),
        Route("/stream", stream),
        Route("/reject", reject),
        WebSocketRoute("/ws", ws),
    ]
    app = Starlette(routes=routes)
    if use_install:
        from asynclocal.web.starlette import install

        install(app, **options)
    else:
        from asynclocal.web.asgi import RequestContextMiddleware

        app.add_middleware(RequestContextMiddleware, **options)
    app.state.seen_in_background = seen_in_background
    app.state.background_done = background_done
    return app


class Forbidden(RequestRejected):
    status_code = 403
    public_message = "go away"


@pytest.mark.parametrize("use_install", [True, False], ids=["install", "add_middleware"])
def test_starlette_setups_echo_and_expose_the_context(use_install: bool, logs: Captured) -> None:
    app = starlette_app(use_install=use_install)
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as client:
        r = client.get("/hello/ann", headers={"X-Request-ID": "client-id-1"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "client-id-1"
        assert r.json() == {"id": "client-id-1", "route": "/hello/{name}", "path": "/hello/ann"}

        r = client.get("/hello/bob")
        fresh = r.headers["x-request-id"]
        assert HEX32.match(fresh)
        assert r.json()["id"] == fresh

        r = client.get("/sync", params={"n": "s1"}, headers={"X-Request-ID": "sync-1"})
        assert r.json()["id"] == "sync-1"
        assert r.json()["thread"] != threading.main_thread().name

        # Not found and unhandled exceptions carry the id too.
        r = client.get("/missing", headers={"X-Request-ID": "nf-1"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == "nf-1"
        # uvicorn closes the connection after an exception reaches it (as with plain
        # Starlette, whose error middleware re-raises too): one connection per 500.
        r = httpx.get(base + "/boom", headers={"X-Request-ID": "boom-1"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "boom-1"
        assert "handler detail" not in r.text
        r = httpx.get(base + "/boom")
        assert r.status_code == 500
        assert HEX32.match(r.headers["x-request-id"])

        r = client.get("/reject", headers={"X-Request-ID": "rej-1"})
        if use_install:  # install() registers the RequestRejected handler
            assert (r.status_code, r.text) == (403, "go away")
        else:  # the middleware itself answers an escaping RequestRejected
            assert r.status_code == 403
        assert r.headers["x-request-id"] == "rej-1"

    text = "\n".join(logs.lines)
    assert "[sync-1] sync s1" in text
    assert "[boom-1] about to fail" in text


@pytest.mark.parametrize("path", ["/bg", "/bg-sync"])
def test_starlette_background_task_sees_the_request_after_the_response(path: str) -> None:
    app = starlette_app(use_install=True)
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as client:
        r = client.get(path, params={"key": "k1"}, headers={"X-Request-ID": "bg-req-1"})
        assert r.text == "queued"
        assert r.headers["x-request-id"] == "bg-req-1"
        assert app.state.background_done.wait(5)
    assert app.state.seen_in_background == {"k1": "bg-req-1"}


def test_request_body_passes_through_the_middleware() -> None:
    app = starlette_app(use_install=True)
    payload = {"items": list(range(2000)), "name": "x" * 5000}
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as client:
        r = client.post("/echo", json=payload, headers={"X-Request-ID": "post-1"})
        assert r.json() == {"id": "post-1", "body": payload}


def test_streaming_keeps_the_context_and_failure_midway_does_not_poison_the_server() -> None:
    app = starlette_app(use_install=True)
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as client:
        r = client.get("/stream", headers={"X-Request-ID": "st-1"})
        assert r.text == "0:st-1\n1:st-1\n2:st-1\n"
        assert r.headers["x-request-id"] == "st-1"

        # The headers were sent with the id; the body breaks off. The client sees
        # either a truncated body or a protocol error, never a second response.
        resp = raw_request(base, get_head("/midstream", b"X-Request-ID: ms-1"))
        assert resp.status == 200
        assert resp.one("x-request-id") == "ms-1"
        assert b"first:ms-1" in resp.body
        assert resp.raw.count(b"HTTP/1.1") == 1

        # The server and the context still work afterwards.
        for i in range(5):
            r = client.get("/hello/x", headers={"X-Request-ID": f"after-{i}"})
            assert r.json()["id"] == f"after-{i}"


def test_head_request_gets_the_id_and_no_body() -> None:
    app = starlette_app(use_install=True)
    with run_uvicorn(app) as base:
        resp = raw_request(
            base, b"HEAD /hello/h HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: head-1"
        )
        assert resp.status == 200
        assert resp.one("x-request-id") == "head-1"
        assert resp.body == b""


def test_websocket_scope_has_the_context_and_closes_cleanly() -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    app = starlette_app(use_install=True)
    with run_uvicorn(app) as base:
        ws_url = base.replace("http://", "ws://") + "/ws"
        with connect(ws_url, additional_headers={"X-Request-ID": "ws-1"}) as ws:
            assert ws.response is not None
            assert ws.response.headers["x-request-id"] == "ws-1"
            assert ws.recv(timeout=5) == "ws-1"
            ws.send("ping")
            assert ws.recv(timeout=5) == "ping:ws-1"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4001


def test_websocket_with_invalid_id_and_reject_invalid_is_closed_1008() -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    app = starlette_app(use_install=True, reject_invalid=True)
    with run_uvicorn(app) as base:
        ws_url = base.replace("http://", "ws://") + "/ws"
        # A close before accept is an HTTP 403 handshake refusal in uvicorn.
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers={"X-Request-ID": "bad id"}).close()
        assert refused.value.response.status_code in (403, 400)


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


# --------------------------------------------------------------------------- options


def plain_asgi_app(**options: Any) -> Any:
    from asynclocal.web.asgi import RequestContextMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        ctx = current_request()
        body = json.dumps({"id": ctx.request_id, "client": ctx.client}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return RequestContextMiddleware(app, **options)


def test_trusted_proxies_decide_whether_incoming_ids_are_used() -> None:
    trusted = plain_asgi_app(trusted_proxies=["127.0.0.0/8"])
    untrusted = plain_asgi_app(trusted_proxies=["10.0.0.0/8"])
    with run_uvicorn(trusted, proxy_headers=False) as base, httpx.Client(base_url=base) as c:
        r = c.get("/", headers={"X-Request-ID": "from-proxy"})
        assert r.headers["x-request-id"] == "from-proxy"
        # X-Forwarded-For is ignored when the server does not rewrite the peer.
        r = c.get("/", headers={"X-Request-ID": "from-proxy", "X-Forwarded-For": "8.8.8.8"})
        assert r.headers["x-request-id"] == "from-proxy"
    with run_uvicorn(untrusted, proxy_headers=False) as base, httpx.Client(base_url=base) as c:
        r = c.get("/", headers={"X-Request-ID": "spoofed"})
        assert HEX32.match(r.headers["x-request-id"])
        # A forged X-Forwarded-For claiming a trusted address changes nothing.
        r = c.get("/", headers={"X-Request-ID": "spoofed", "X-Forwarded-For": "10.1.1.1"})
        assert HEX32.match(r.headers["x-request-id"])


def test_trust_check_sees_the_peer_rewritten_by_the_server() -> None:
    # Documented: with uvicorn --proxy-headers the check sees the rewritten address.
    app = plain_asgi_app(trusted_proxies=["10.0.0.0/8"])
    server = run_uvicorn(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    with server as base, httpx.Client(base_url=base) as c:
        r = c.get("/", headers={"X-Request-ID": "via-lb", "X-Forwarded-For": "10.2.3.4"})
        assert r.headers["x-request-id"] == "via-lb"
        assert r.json()["client"].startswith("10.2.3.4")
        r = c.get("/", headers={"X-Request-ID": "via-lb", "X-Forwarded-For": "8.8.8.8"})
        assert HEX32.match(r.headers["x-request-id"])
        r = c.get("/", headers={"X-Request-ID": "no-xff"})  # peer 127.0.0.1
        assert HEX32.match(r.headers["x-request-id"])


def test_custom_header_name_is_read_and_echoed() -> None:
    app = plain_asgi_app(header="X-Correlation-ID")
    with run_uvicorn(app) as base, httpx.Client(base_url=base) as c:
        r = c.get("/", headers={"X-Correlation-ID": "corr-1", "X-Request-ID": "ignored"})
        assert r.headers["x-correlation-id"] == "corr-1"
        assert "x-request-id" not in r.headers
        assert r.json()["id"] == "corr-1"


def test_custom_generator_is_used_and_an_unsafe_one_fails_loudly() -> None:
    counter = iter(range(1_000_000))
    good = plain_asgi_app(generator=lambda: f"gen-{next(counter)}")
    with run_uvicorn(good) as base, httpx.Client(base_url=base) as c:
        ids = [c.get("/").headers["x-request-id"] for _ in range(3)]
        assert ids == ["gen-0", "gen-1", "gen-2"]
    # An id with CR/LF would split the header: never sent, the request fails.
    bad = plain_asgi_app(generator=lambda: "bad\r\nSet-Cookie: x=1")
    with run_uvicorn(bad) as base, httpx.Client(base_url=base) as c:
        r = httpx.get(base + "/")
        assert r.status_code == 500
        assert "set-cookie" not in r.headers
        assert "Set-Cookie" not in r.text
        # A valid incoming id does not need the generator.
        r = c.get("/", headers={"X-Request-ID": "ok-1"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "ok-1"


def test_custom_generator_error_names_the_generator() -> None:
    from asynclocal import with_request_context

    def bad_generator() -> str:
        return "has space"

    with pytest.raises(ValueError, match="generator"):
        with_request_context({}, lambda: None, generator=bad_generator)


def _reject_server(kind: str) -> Any:
    if kind == "asgi":
        return run_uvicorn(plain_asgi_app(reject_invalid=True))
    if kind == "wsgi":
        from asynclocal.web.wsgi import RequestContextMiddleware

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(request_id()).encode()]

        return run_waitress(RequestContextMiddleware(app, reject_invalid=True), threads=2)
    from aiohttp import web

    from asynclocal.web.aiohttp import setup

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=str(request_id()))

    aio = web.Application()
    setup(aio, reject_invalid=True)
    aio.router.add_get("/", handler)
    return run_aiohttp(aio)


@pytest.mark.parametrize("kind", ["asgi", "wsgi", "aiohttp"])
def test_reject_invalid_answers_400_with_a_fresh_id(kind: str) -> None:
    with _reject_server(kind) as base:
        resp = raw_request(base, get_head("/", b"X-Request-ID: abc%0d%0aSet-Cookie:x"))
        assert resp.status == 400
        assert b"Invalid request id header" in resp.body
        assert HEX32.match(resp.one("x-request-id"))
        assert b"Set-Cookie" not in resp.raw
        with httpx.Client(base_url=base) as c:  # valid and missing ids still pass
            assert c.get("/", headers={"X-Request-ID": "fine"}).status_code == 200
            assert c.get("/").status_code == 200


def test_no_request_context_outside_names_the_middleware() -> None:
    assert request_id() is None
    with pytest.raises(NoRequestContext) as err:
        current_request()
    message = str(err.value)
    assert "asynclocal.web.asgi.RequestContextMiddleware" in message
    assert "asynclocal.web.wsgi.RequestContextMiddleware" in message
    assert "with_request_context" in message


# --------------------------------------------------------------------------- other frameworks


def test_fastapi_install_and_dependency() -> None:
    from fastapi import Depends, FastAPI

    from asynclocal.web.fastapi import get_request_context, install

    seen: list[str | None] = []

    def load_user(ctx: RequestContext) -> None:
        auth = ctx.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            ctx.access_token, ctx.user = auth[7:], {"id": "u-" + auth[7:10]}

    app = FastAPI()
    install(app, on_request=load_user)

    def sync_dep(ctx: RequestContextDep) -> str:
        seen.append(request_id())
        return ctx.request_id

    @app.get("/payments/{pid}")
    async def payment(pid: str, ctx: RequestContextDep) -> dict[str, Any]:
        return {"id": ctx.request_id, "route": ctx.route, "user": ctx.user_id}

    @app.get("/sync/{pid}")
    def sync_payment(pid: str, dep_id: str = Depends(sync_dep)) -> dict[str, Any]:
        ctx = get_request_context()
        assert "tok-secret-value" not in repr(ctx)
        return {"id": request_id(), "dep": dep_id}

    with run_uvicorn(app) as base, httpx.Client(base_url=base) as c:
        r = c.get(
            "/payments/7",
            headers={"X-Request-ID": "fa-1", "Authorization": "Bearer tok-secret-value"},
        )
        assert r.headers["x-request-id"] == "fa-1"
        assert r.json() == {"id": "fa-1", "route": "/payments/{pid}", "user": "u-tok"}
        r = c.get(
            "/sync/7", headers={"X-Request-ID": "fa-2", "Authorization": "Bearer tok-secret-value"}
        )
        assert r.json() == {"id": "fa-2", "dep": "fa-2"}
        r = c.get("/nope", headers={"X-Request-ID": "fa-3"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == "fa-3"
    assert seen == ["fa-2"]


def flask_app() -> Any:
    from flask import Flask, jsonify

    from asynclocal.web.flask import RequestContextExtension

    def load_user(ctx: RequestContext) -> None:
        if ctx.headers.get("x-deny"):
            raise Forbidden()
        ctx.set("tenant", ctx.headers.get("x-tenant", "none"))

    app = Flask("review")
    ext = RequestContextExtension(on_request=load_user)
    ext.init_app(app)

    @app.get("/users/<name>")
    def user(name: str) -> Any:
        time.sleep(random.random() / 200)
        ctx = current_request()
        log.info("flask user %s", name)
        return jsonify(id=ctx.request_id, route=ctx.route, tenant=ctx.get("tenant"), name=name)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("flask detail")

    return app


def test_flask_extension_init_app() -> None:
    with run_waitress(flask_app(), threads=4) as base, httpx.Client(base_url=base) as c:
        r = c.get("/users/ann", headers={"X-Request-ID": "fl-1", "X-Tenant": "t9"})
        assert r.headers["x-request-id"] == "fl-1"
        assert r.json() == {"id": "fl-1", "route": "/users/<name>", "tenant": "t9", "name": "ann"}
        r = c.get("/missing", headers={"X-Request-ID": "fl-2"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == "fl-2"
        r = httpx.get(base + "/boom", headers={"X-Request-ID": "fl-3"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "fl-3"
        assert "flask detail" not in r.text
        r = c.get("/users/x", headers={"X-Request-ID": "fl-4", "X-Deny": "1"})
        assert (r.status_code, r.text) == (403, "go away")
        assert r.headers["x-request-id"] == "fl-4"


def test_aiohttp_setup() -> None:
    from aiohttp import web

    from asynclocal.web.aiohttp import setup

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0)
        ctx = current_request()
        return web.json_response({"id": ctx.request_id, "route": ctx.route})

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(f"id={request_id()}".encode())
        await resp.write_eof()
        return resp

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("aiohttp detail")

    app = web.Application()
    setup(app)
    app.router.add_get("/users/{name}", handler)
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/boom", boom)
    with run_aiohttp(app) as base, httpx.Client(base_url=base) as c:
        r = c.get("/users/ann", headers={"X-Request-ID": "ah-1"})
        assert r.headers["x-request-id"] == "ah-1"
        assert r.json() == {"id": "ah-1", "route": "/users/{name}"}
        r = c.get("/streamed", headers={"X-Request-ID": "ah-2"})
        assert r.headers["x-request-id"] == "ah-2"
        assert r.text == "id=ah-2"
        r = c.get("/missing", headers={"X-Request-ID": "ah-3"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == "ah-3"
        r = httpx.get(base + "/boom", headers={"X-Request-ID": "ah-4"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "ah-4"
        assert "aiohttp detail" not in r.text


# Django: URLconf in this module (ROOT_URLCONF = __name__).


def _django_view(request: Any, name: str) -> Any:
    from django.http import JsonResponse

    ctx = current_request()
    return JsonResponse({"id": ctx.request_id, "route": ctx.route, "user": ctx.user_id})


async def _django_async_view(request: Any, name: str) -> Any:
    from django.http import JsonResponse

    await asyncio.sleep(0)
    return JsonResponse({"id": request_id(), "route": current_request().route})


def _django_boom(request: Any) -> Any:
    raise RuntimeError("django detail")


def django_load_user(ctx: RequestContext) -> None:
    ctx.user = {"id": "dj-user"}


def _urlpatterns() -> list[Any]:
    from django.urls import path

    return [
        path("sync/<str:name>", _django_view),
        path("async/<str:name>", _django_async_view),
        path("boom", _django_boom),
    ]


def __getattr__(name: str) -> Any:  # lazy `urlpatterns` for Django's URL resolver
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


@pytest.fixture(scope="module")
def django_configured() -> Iterator[None]:
    import django
    from django.conf import settings
    from django.test import override_settings

    values: dict[str, Any] = {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1"],
        "ROOT_URLCONF": __name__,
        "MIDDLEWARE": ["asynclocal.web.django.RequestContextMiddleware"],
        "ASYNCLOCAL_REQUEST_CONTEXT": {
            "on_request": f"{__name__}.django_load_user",
            "header": "X-Request-ID",
            "trusted_proxies": ["127.0.0.0/8"],
        },
    }
    if not settings.configured:
        settings.configure(SECRET_KEY="review-only", INSTALLED_APPS=[], USE_TZ=True, **values)
        django.setup()
    with override_settings(**values):
        yield


@pytest.mark.parametrize("kind", ["wsgi", "asgi", "wsgi-wrapped", "asgi-wrapped"])
def test_django_settings_and_middleware(kind: str, django_configured: None) -> None:
    # "-wrapped": the whole application also wrapped in asynclocal's WSGI/ASGI
    # middleware; the MIDDLEWARE entry must join that context, not start a second.
    from asynclocal.web.asgi import RequestContextMiddleware as AsgiMiddleware
    from asynclocal.web.wsgi import RequestContextMiddleware as WsgiMiddleware

    server: Any
    if kind.startswith("wsgi"):
        from django.core.wsgi import get_wsgi_application

        wsgi_app: Any = get_wsgi_application()
        if kind.endswith("wrapped"):
            wsgi_app = WsgiMiddleware(wsgi_app, on_request=django_load_user)
        server = run_waitress(wsgi_app, threads=4)
    else:
        from django.core.asgi import get_asgi_application

        asgi_app: Any = get_asgi_application()
        if kind.endswith("wrapped"):
            asgi_app = AsgiMiddleware(asgi_app, on_request=django_load_user)
        server = run_uvicorn(asgi_app)
    with server as base, httpx.Client(base_url=base) as c:
        r = c.get("/sync/fresh")
        assert len(r.headers.get_list("x-request-id")) == 1
        assert r.json()["id"] == r.headers["x-request-id"]
        r = c.get("/sync/ann", headers={"X-Request-ID": f"dj-{kind}-1"})
        assert r.headers["x-request-id"] == f"dj-{kind}-1"
        assert r.json() == {"id": f"dj-{kind}-1", "route": "sync/<str:name>", "user": "dj-user"}
        r = c.get("/async/bob", headers={"X-Request-ID": f"dj-{kind}-2"})
        assert r.json() == {"id": f"dj-{kind}-2", "route": "async/<str:name>"}
        r = c.get("/missing", headers={"X-Request-ID": f"dj-{kind}-3"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == f"dj-{kind}-3"
        r = httpx.get(base + "/boom", headers={"X-Request-ID": f"dj-{kind}-4"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == f"dj-{kind}-4"
        assert "django detail" not in r.text


# --------------------------------------------------------------------------- load


def _check_load(
    results: list[tuple[str | None, int, str, dict[str, Any]]], lines: list[str]
) -> None:
    by_id: dict[str, list[str]] = {}
    for line in lines:
        m = re.match(r"^\[([^\]]*)\] (?:hello|flask user|sync) (\S+)$", line)
        if m:
            by_id.setdefault(m.group(2), []).append(m.group(1))
    fresh: list[str] = []
    for sent, n, echoed, body in results:
        assert body["id"] == echoed, (sent, echoed, body)
        if sent is not None and SAFE_ID.match(sent):
            assert echoed == sent
        else:
            assert HEX32.match(echoed), (sent, echoed)
            fresh.append(echoed)
        assert by_id.get(str(n)) == [echoed], (n, by_id.get(str(n)), echoed)
    assert len(set(fresh)) == len(fresh)


def _mixed_id(n: int) -> str | None:
    kind = n % 4
    if kind == 0:
        return f"load-{n}"
    if kind == 1:
        return None
    if kind == 2:
        return "x" * 200 if n % 8 == 2 else "bad id;" + str(n)
    return f"ok.{n}:{n}"


async def _fire(base: str, paths: list[str], total: int, parallel: int) -> list[Any]:
    sem = asyncio.Semaphore(parallel)
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(n: int) -> tuple[str | None, int, str, dict[str, Any]]:
            sent = _mixed_id(n)
            headers = {"X-Request-ID": sent} if sent is not None else {}
            async with sem:
                r = await client.get(paths[n % len(paths)].format(n=n), headers=headers)
            assert r.status_code == 200, r.text
            return sent, n, r.headers["x-request-id"], r.json()

        return await asyncio.gather(*(one(n) for n in range(total)))


def test_load_starlette_uvicorn_1000_mixed_requests(logs: Captured) -> None:
    app = starlette_app(use_install=True)
    with run_uvicorn(app) as base:
        results = asyncio.run(_fire(base, ["/hello/a?n={n}", "/sync?n={n}"], 1000, 64))
    _check_load(results, logs.lines)


def test_load_flask_waitress_1000_mixed_requests(logs: Captured) -> None:
    with run_waitress(flask_app(), threads=16) as base:
        results = asyncio.run(_fire(base, ["/users/{n}"], 1000, 48))
    _check_load(results, logs.lines)


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
                assert b"0:gone-1" in sock.recv(4096)
            assert done.wait(10)
            r = httpx.get(base + "/endless", headers={"X-Request-ID": "next-1"}, timeout=10)
            assert r.text.startswith("0:next-1\n")
    finally:
        for lg in watched:
            lg.removeHandler(collect)
    assert finished[0] == "gone-1"
    assert not [e for e in errors if "different Context" in e or "ValueError" in e], errors
