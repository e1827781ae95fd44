"""Tiny pure-ASGI services for the propagation tests.

`service_app(name, downstream=None)` answers every request with JSON: the
headers it received, its own request context (ids, trace) and, when it has a
downstream (a callable returning the next URL), the downstream's answer,
fetched through an instrumented httpx client. ``/redirect?to=URL`` answers
302 to URL. Each service logs one line per request through `logger`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx

from asynclocal.integrations import httpx as al_httpx
from asynclocal.request import request_storage
from asynclocal.web.asgi import RequestContextMiddleware

logger = logging.getLogger("tests.propagation.services")


def context_snapshot() -> dict[str, Any] | None:
    ctx = request_storage.get_store()
    if ctx is None:
        return None
    return {
        "request_id": ctx.request_id,
        "root_request_id": ctx.root_request_id,
        "parent_request_id": ctx.parent_request_id,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
        "fields": dict(ctx.fields),
        "user": ctx.user,
        "access_token": ctx.access_token,
    }


async def _json(send: Any, status: int, payload: Any, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan_or_redirect(scope: dict[str, Any], receive: Any, send: Any) -> bool:
    """Serve a lifespan scope or ``/redirect?to=URL`` (302); True when it answered."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return True
    if scope["path"] == "/redirect":
        query = parse_qs(scope.get("query_string", b"").decode())
        target = query["to"][0].encode()
        await send(
            {"type": "http.response.start", "status": 302, "headers": [(b"location", target)]}
        )
        await send({"type": "http.response.body", "body": b""})
        return True
    return False


def service_app(
    name: str, downstream: Callable[[], str | None] | None = None, *, jitter: float = 0.0
) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await _lifespan_or_redirect(scope, receive, send):
            return
        received = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if jitter:
            await asyncio.sleep(random.uniform(0, jitter))
        logger.info("%s handling %s", name, scope["path"])
        payload: dict[str, Any] = {"service": name, "received": received, "ctx": context_snapshot()}
        url = downstream() if downstream else None
        if url:
            async with al_httpx.instrument(httpx.AsyncClient(timeout=10)) as client:
                answer = await client.get(url)
            payload["downstream"] = answer.json()
            payload["downstream_response_headers"] = dict(answer.headers)
        await _json(send, 200, payload, [])

    return RequestContextMiddleware(app)


def echo_app() -> Any:
    """A third-party-like server without asynclocal: echoes the headers it received."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await _lifespan_or_redirect(scope, receive, send):
            return
        received = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        await _json(send, 200, {"received": received}, [])

    return app


def wsgi_service_app(name: str) -> Any:
    """A WSGI service (served by waitress's worker threads) answering like `service_app`."""
    from asynclocal.web.wsgi import RequestContextMiddleware as WsgiMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        received = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        logger.info("%s handling %s", name, environ.get("PATH_INFO"))
        payload = {"service": name, "received": received, "ctx": context_snapshot()}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(payload).encode()]

    return WsgiMiddleware(app)
