"""Starlette under a real uvicorn: ids, echo, 500s, rejection, streaming, websockets, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asynclocal import current_request, request_id
from asynclocal.request import RequestContext, RequestRejected
from asynclocal.web.asgi import RequestContextMiddleware
from asynclocal.web.starlette import install, request_rejected_handler
from tests.support.servers import run_uvicorn
from tests.web.conftest import HEX32, HOSTILE_IDS, CapturedLogs, assert_not_echoed, raw_get

log = logging.getLogger("tests.web.starlette")


class PaymentRequired(RequestRejected):
    status_code = 402
    public_message = "pay first"


async def whoami(request: Request) -> Response:
    ctx = current_request()
    await asyncio.sleep(0)
    log.info("whoami handled")
    ctx.add_response_header("X-Extra", "yes")
    return JSONResponse(
        {
            "request_id": ctx.request_id,
            "route": ctx.route,
            "path": ctx.path,
            "method": ctx.method,
            "user": ctx.user,
            "token_seen": ctx.access_token,
            "client_is_loopback": (ctx.client or "").startswith("127.0.0.1:"),
        }
    )


async def boom(request: Request) -> Response:
    log.info("about to fail")
    raise RuntimeError("kaboom")


async def reject(request: Request) -> Response:
    raise PaymentRequired()


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[str]:
        for i in range(5):
            await asyncio.sleep(0.005)
            yield f"{i}:{request_id()}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


async def abandoned_stream(request: Request) -> Response:
    # A generator the client abandons: its cleanup runs wherever it is closed.
    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                await asyncio.sleep(0.01)
                yield (request_id() or "none").encode() + b"\n"
        finally:
            log.info("stream closed")

    return StreamingResponse(chunks(), media_type="text/plain")


async def ws_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    message = await websocket.receive_text()
    await websocket.send_text(json.dumps({"echo": message, "request_id": request_id()}))
    await websocket.close()


def on_request(ctx: RequestContext) -> None:
    token = ctx.cookies.get("access_token")
    if token == "forbidden":
        raise PaymentRequired()
    if token:
        ctx.access_token = token
        ctx.user = {"id": "u-" + token[:3]}


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # lifespan must reach the app untouched, with no request context.
    app.state.started_without_request = request_id() is None
    yield


def build(mode: str, **options: Any) -> Any:
    routes = [
        Route("/whoami/{name}", whoami),
        Route("/boom", boom),
        Route("/reject", reject),
        Route("/stream", stream),
        Route("/abandoned", abandoned_stream),
        WebSocketRoute("/ws", ws_endpoint),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    options.setdefault("on_request", on_request)
    if mode == "install":
        install(app, **options)
        return app
    if mode == "add_middleware":
        app.add_middleware(RequestContextMiddleware, **options)
        return app
    # Plain ASGI wrap around the whole app: Starlette's ServerErrorMiddleware sits
    # inside, so RequestRejected needs Starlette's handler (install() adds it).
    app.add_exception_handler(RequestRejected, request_rejected_handler)
    return RequestContextMiddleware(app, **options)


@pytest.fixture(scope="module", params=["install", "add_middleware", "wrap"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    with run_uvicorn(build(request.param)) as url:
        yield url


def test_generated_id_is_echoed_and_seen_by_handler(
    server: str, captured_logs: CapturedLogs
) -> None:
    r = httpx.get(f"{server}/whoami/alice")
    assert r.status_code == 200
    body = r.json()
    assert HEX32.fullmatch(r.headers["x-request-id"])
    assert body["request_id"] == r.headers["x-request-id"]
    assert body["route"] == "/whoami/{name}"
    assert body["path"] == "/whoami/alice"
    assert body["method"] == "GET"
    assert body["client_is_loopback"] is True
    assert r.headers["x-extra"] == "yes"
    assert captured_logs.lines_with("whoami handled") == [(body["request_id"], "whoami handled")]


def test_valid_incoming_id_is_kept(server: str) -> None:
    incoming = "abc-123._~:+=/XYZ"
    r = httpx.get(f"{server}/whoami/bob", headers={"X-Request-ID": incoming})
    assert r.headers["x-request-id"] == incoming
    assert r.json()["request_id"] == incoming
    assert r.headers.get_list("x-request-id") == [incoming]


def test_on_request_hook_fills_user_and_token(server: str) -> None:
    r = httpx.get(f"{server}/whoami/x", headers={"Cookie": "theme=dark; access_token=tok123"})
    assert r.json()["user"] == {"id": "u-tok"}
    assert r.json()["token_seen"] == "tok123"


def test_rejection_from_hook_answers_its_status_with_id(server: str) -> None:
    r = httpx.get(f"{server}/whoami/x", headers={"Cookie": "access_token=forbidden"})
    assert r.status_code == 402
    assert r.text == "pay first"
    assert HEX32.fullmatch(r.headers["x-request-id"])


def test_rejection_from_route_answers_its_status_with_id(server: str) -> None:
    r = httpx.get(f"{server}/reject", headers={"X-Request-ID": "rej-1"})
    assert (r.status_code, r.text, r.headers["x-request-id"]) == (402, "pay first", "rej-1")


def test_unhandled_exception_500_carries_the_id(server: str, captured_logs: CapturedLogs) -> None:
    r = httpx.get(f"{server}/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "boom-1"
    assert "kaboom" not in r.text
    assert ("boom-1", "about to fail") in captured_logs.lines_with("about to fail")


def test_404_carries_a_fresh_id(server: str) -> None:
    r = httpx.get(f"{server}/nowhere")
    assert r.status_code == 404
    assert HEX32.fullmatch(r.headers["x-request-id"])


def test_streaming_body_keeps_context_to_the_last_chunk(server: str) -> None:
    r = httpx.get(f"{server}/stream", headers={"X-Request-ID": "stream-1"})
    assert r.headers["x-request-id"] == "stream-1"
    assert r.text.splitlines() == [f"{i}:stream-1" for i in range(5)]


def test_abandoned_stream_cleans_up_inside_its_request(
    server: str, captured_logs: CapturedLogs
) -> None:
    with httpx.stream("GET", f"{server}/abandoned", headers={"X-Request-ID": "gone-1"}) as r:
        lines = r.iter_lines()
        assert next(lines) == "gone-1"
    for _ in range(200):  # the server notices the disconnect asynchronously
        if captured_logs.lines_with("stream closed"):
            break
        time.sleep(0.01)
    assert captured_logs.lines_with("stream closed") == [("gone-1", "stream closed")]
    assert "different Context" not in captured_logs.text()


def test_websocket_scope_gets_context_and_accept_header(server: str) -> None:
    ws_url = server.replace("http://", "ws://") + "/ws"
    import websockets.sync.client as wsc

    with wsc.connect(ws_url, additional_headers={"X-Request-ID": "ws-1"}) as ws:
        assert ws.response is not None
        assert ws.response.headers["x-request-id"] == "ws-1"
        ws.send("hello")
        assert json.loads(ws.recv()) == {"echo": "hello", "request_id": "ws-1"}


def test_lifespan_passes_through() -> None:
    app = build("wrap")
    with run_uvicorn(app) as url:
        assert httpx.get(f"{url}/whoami/a").status_code == 200
    inner = app.app
    assert inner.state.started_without_request is True


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=lambda b: repr(b[:20]))
def test_hostile_ids_are_replaced_never_echoed_nor_logged(
    server: str, captured_logs: CapturedLogs, hostile: bytes
) -> None:
    r = raw_get(server, "/whoami/h", [b"X-Request-ID: " + hostile])
    # uvicorn itself may refuse bytes it cannot parse (400, no app involved).
    assert r.status in (200, 400)
    if r.status == 200:
        assert json.loads(r.body)["request_id"] == r.header("x-request-id")
    assert_not_echoed(r, hostile, captured_logs)


def test_reject_invalid_answers_400_with_a_fresh_id(captured_logs: CapturedLogs) -> None:
    with run_uvicorn(build("wrap", reject_invalid=True)) as url:
        r = httpx.get(f"{url}/whoami/a", headers={"X-Request-ID": "bad value"})
        ok = httpx.get(f"{url}/whoami/a", headers={"X-Request-ID": "good"})
    assert r.status_code == 400
    assert "bad value" not in r.text
    assert HEX32.fullmatch(r.headers["x-request-id"])
    assert ok.headers["x-request-id"] == "good"
    assert "bad value" not in captured_logs.text()


def test_trust_policy_accepts_ids_only_from_configured_networks() -> None:
    with run_uvicorn(build("wrap", trusted_proxies=["10.0.0.0/8"])) as url:
        untrusted = httpx.get(f"{url}/whoami/a", headers={"X-Request-ID": "from-outside"})
    with run_uvicorn(build("wrap", trusted_proxies=["127.0.0.0/8", "::1"])) as url:
        trusted = httpx.get(f"{url}/whoami/a", headers={"X-Request-ID": "from-proxy"})
    assert untrusted.headers["x-request-id"] != "from-outside"
    assert HEX32.fullmatch(untrusted.headers["x-request-id"])
    assert trusted.headers["x-request-id"] == "from-proxy"


def test_custom_header_and_generator() -> None:
    counter = iter(range(1000))
    with run_uvicorn(
        build("install", header="X-Correlation-ID", generator=lambda: f"gen-{next(counter)}")
    ) as url:
        r1 = httpx.get(f"{url}/whoami/a")
        r2 = httpx.get(f"{url}/whoami/a", headers={"X-Correlation-ID": "mine"})
    assert r1.headers["x-correlation-id"].startswith("gen-")
    assert r1.json()["request_id"] == r1.headers["x-correlation-id"]
    assert "x-request-id" not in r1.headers
    assert r2.headers["x-correlation-id"] == "mine"


def test_plain_text_errors_under_starlette_debug_page_keep_the_id() -> None:
    app = Starlette(debug=True, routes=[Route("/boom", boom)])
    install(app)
    with run_uvicorn(app) as url:
        r = httpx.get(f"{url}/boom", headers={"X-Request-ID": "dbg-1", "Accept": "text/plain"})
    assert r.status_code == 500
    assert "kaboom" in r.text  # Starlette's own debug page went out...
    assert r.headers["x-request-id"] == "dbg-1"  # ...with our header


def test_install_twice_is_an_error() -> None:
    app = Starlette()
    install(app)
    with pytest.raises(RuntimeError, match="already installed"):
        install(app)
    with pytest.raises(TypeError, match="Starlette or FastAPI"):
        install(PlainTextResponse("x"))  # type: ignore[arg-type]


def test_websocket_rejected_by_hook_is_refused(server: str) -> None:
    import websockets.exceptions
    import websockets.sync.client as wsc

    ws_url = server.replace("http://", "ws://") + "/ws"
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        wsc.connect(ws_url, additional_headers={"Cookie": "access_token=forbidden"})
    assert info.value.response.status_code == 403


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes need 3.11")
async def test_escaping_exception_names_its_request() -> None:
    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        raise LookupError("inner")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", b"n-1")]}
    with pytest.raises(LookupError) as info:
        await RequestContextMiddleware(failing_app)(scope, receive, send)
    assert "request_id=n-1" in info.value.__notes__
    assert sent[0]["status"] == 500
    assert (b"x-request-id", b"n-1") in sent[0]["headers"]
    assert request_id() is None
