"""Apps and raw-HTTP helpers shared by the web setup tests."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from asynclocal import current_request, request_id
from asynclocal.logging import ContextFilter
from asynclocal.request import RequestContext, RequestRejected


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


log = logging.getLogger("tests.web.apps")


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


def flask_app() -> Any:
    from flask import Flask, jsonify

    from asynclocal.web.flask import RequestContextExtension

    def load_user(ctx: RequestContext) -> None:
        if ctx.headers.get("x-deny"):
            raise Forbidden()
        ctx.set("tenant", ctx.headers.get("x-tenant", "none"))

    app = Flask("framework_setups")
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
