"""Fuzz an ASGI request through the middleware: header view, cookies, the id echo."""

from __future__ import annotations

from typing import Any

from _checks import HEX32, ID_GRAMMAR, TOKEN, drive, not_leaked, pairs
from _harness import instrumented, main

with instrumented():
    from asynclocal import current_request
    from asynclocal.web.asgi import RequestContextMiddleware

SEEDS = [
    b"x-request-id:abc\ncookie:a=1\ncookie:b=2",
    b"x-request-id:a\nx-request-id:b",
    b'cookie:t="\\\\\\\\"\nx-a:1\nx-a:2',
]


async def app(scope: Any, receive: Any, send: Any) -> None:
    ctx = current_request()
    seen = dict(ctx.headers)
    dict(ctx.cookies)
    for name, value in seen.items():
        assert name == name.lower()
        assert isinstance(value, str)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


MIDDLEWARE = RequestContextMiddleware(app)


def one_input(data: bytes) -> None:
    raw = pairs(data)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": raw, "client": None}
    drive(MIDDLEWARE(scope, receive, send))
    ids = [v.decode("latin-1") for n, v in sent[0]["headers"] if n == b"x-request-id"]
    assert len(ids) == 1
    incoming = [v.decode("latin-1") for n, v in raw if n == b"x-request-id"]
    if len(incoming) == 1 and ID_GRAMMAR.fullmatch(incoming[0]):
        assert ids[0] == incoming[0]
    else:
        assert HEX32.fullmatch(ids[0])
        for value in incoming:
            not_leaked(value, ids[0])
    for name, _ in sent[0]["headers"]:
        assert TOKEN.fullmatch(name.decode("latin-1"))


if __name__ == "__main__":
    main(one_input, SEEDS)
