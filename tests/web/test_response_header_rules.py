"""`ctx.add_response_header` checks names and values at the call; every 500 carries the id.

Under real uvicorn: a bad header fails in the code that adds it (`ValueError`,
the value never repeated), so the response is the middleware's 500 with the
request id instead of a server error without it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from asynclocal import current_request
from tests.support.servers import run_uvicorn
from tests.web.conftest import raw_get

pytestmark = pytest.mark.timeout(60)

BAD = [
    ("X-T", "Café €"),  # not Latin-1
    ("X-A: b", "v"),  # a colon in the name
    ("X A", "v"),  # a space in the name
    ("X-T", "a\r\nSet-Cookie: x=1"),  # CR/LF
    ("", "v"),  # empty name
    ("X-T", "nul\x00"),  # control character
]


def test_bad_names_and_values_raise_at_the_call() -> None:
    from asynclocal import with_request_context

    def handler() -> list[str]:
        ctx = current_request()
        messages = []
        for name, value in BAD:
            with pytest.raises(ValueError, match="header") as info:
                ctx.add_response_header(name, value)
            messages.append(str(info.value))
        ctx.add_response_header("X-Fine", "Café")  # Latin-1 is fine
        return messages

    messages = with_request_context({}, handler)
    for (_, value), message in zip(BAD, messages, strict=True):
        if value != "v":
            assert value not in message


def _asgi_app(mode: str) -> Any:
    from asynclocal.web.asgi import RequestContextMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ctx = current_request()
        if scope["path"] == "/bad":
            ctx.add_response_header("X-T", "Café €")  # raises: a 500 with the id
        elif scope["path"] == "/bad-callback":
            ctx.on_response(lambda: [("X-T", "Café €"), ("X-Good", "1")])
        elif scope["path"] == "/boom":
            ctx.add_response_header("X-Extra", "kept")
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(ctx.request_id).encode()})

    return RequestContextMiddleware(app)


def _starlette_app(mode: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from asynclocal.web.starlette import RequestContextMiddleware, add_request_context

    async def bad(request: Request) -> PlainTextResponse:
        current_request().add_response_header("X-T", "Café €")
        return PlainTextResponse("unreachable")  # pragma: no cover

    async def bad_callback(request: Request) -> PlainTextResponse:
        current_request().on_response(lambda: [("X-T", "Café €"), ("X-Good", "1")])
        return PlainTextResponse("ok")

    async def boom(request: Request) -> PlainTextResponse:
        current_request().add_response_header("X-Extra", "kept")
        raise RuntimeError("boom")

    app = Starlette(
        routes=[Route("/bad", bad), Route("/bad-callback", bad_callback), Route("/boom", boom)]
    )
    if mode == "add_request_context":
        add_request_context(app)
    else:
        app.add_middleware(RequestContextMiddleware)
    return app


APPS = {
    "asgi": lambda: _asgi_app("asgi"),
    "starlette-add_request_context": lambda: _starlette_app("add_request_context"),
    "starlette-add_middleware": lambda: _starlette_app("add_middleware"),
}


@pytest.mark.parametrize("kind", APPS)
def test_every_500_carries_the_request_id_under_uvicorn(kind: str) -> None:
    with run_uvicorn(APPS[kind]()) as base:
        bad = raw_get(base, "/bad", [b"X-Request-ID: req-bad-1"])
        boom = raw_get(base, "/boom", [b"X-Request-ID: req-boom-1"])
        callback = raw_get(base, "/bad-callback", [b"X-Request-ID: req-cb-1"])
    assert bad.status == 500
    assert bad.header("x-request-id") == "req-bad-1"
    assert "Café" not in bad.body.decode("utf-8", "replace")
    assert bad.header("x-t") is None
    assert boom.status == 500
    assert boom.header("x-request-id") == "req-boom-1"
    # A callback returning a bad header is skipped; the response stands, with the id.
    assert callback.status == 200
    assert callback.header("x-request-id") == "req-cb-1"
    assert callback.header("x-t") is None
