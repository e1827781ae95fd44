"""Fuzz a WSGI environ through the middleware: header view, cookies, the id echo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _checks import HEX32, ID_GRAMMAR, not_leaked, pairs, text
from _harness import instrumented, main

with instrumented():
    from asynclocal import current_request
    from asynclocal.web.wsgi import RequestContextMiddleware

SEEDS = [b"x-request-id:abc\ncookie:a=1", b"x-request-id:a, b", b'cookie:t="\\\\"\ncontent-type:x']


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    ctx = current_request()
    for name, value in dict(ctx.headers).items():
        assert name == name.lower()
        assert isinstance(value, str)
    dict(ctx.cookies)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


MIDDLEWARE = RequestContextMiddleware(app)


def one_input(data: bytes) -> None:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.version": (1, 0)}
    for name, value in pairs(data):
        environ["HTTP_" + text(name).upper().replace("-", "_")] = text(value)
    sent: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        sent.append(headers)

    body = b"".join(MIDDLEWARE(environ, start_response))
    assert body == b"ok"
    ids = [v for n, v in sent[0] if n.lower() == "x-request-id"]
    incoming = environ.get("HTTP_X_REQUEST_ID")
    if incoming is not None and ID_GRAMMAR.fullmatch(incoming):
        assert ids == [incoming]
    else:
        assert len(ids) == 1
        assert HEX32.fullmatch(ids[0])
        if incoming is not None:
            not_leaked(incoming, ids[0])


if __name__ == "__main__":
    main(one_input, SEEDS)
