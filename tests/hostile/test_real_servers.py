"""Hostile cookies and repeated headers through real servers on 127.0.0.1.

uvicorn (h11, header limit raised to 4 MB so the payloads reach the app) and
waitress serve an app whose ``on_request`` reads ``ctx.cookies`` as the README's
example does. Each payload is sent at two sizes; the CPU time of the request may
grow about as much as the input (linear), never as its square.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from asynclocal import current_request
from asynclocal.request import RequestContext
from asynclocal.web.asgi import RequestContextMiddleware as AsgiMiddleware
from asynclocal.web.wsgi import RequestContextMiddleware as WsgiMiddleware
from tests.support.servers import run_uvicorn, run_waitress
from tests.web.conftest import RawResponse

from ._props import LINEAR_BOUND

HEADER_LIMIT = 4 * 1024 * 1024


def raw_get(base_url: str, path: str, header_lines: list[bytes], timeout: float) -> RawResponse:
    """A GET with these header lines written byte for byte (built with one join: linear)."""
    host, port = base_url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    head = [f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    request = b"\r\n".join([*head, *header_lines, b"", b""])
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    raw_head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return RawResponse(int(lines[0].split(" ")[1]), headers, body)


def load_user(ctx: RequestContext) -> None:
    token = ctx.cookies.get("access_token") or ctx.headers.get("authorization", "")[7:]
    ctx.set("token_length", len(token))


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    ctx = current_request()
    body = f"{ctx.get('token_length')} {len(ctx.headers.get('x-request-id', ''))}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    ctx = current_request()
    body = f"{ctx.get('token_length')}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def uvicorn_url() -> Iterator[str]:
    app = AsgiMiddleware(asgi_app, on_request=load_user)
    with run_uvicorn(app, http="h11", h11_max_incomplete_event_size=HEADER_LIMIT) as url:
        yield url


@pytest.fixture(scope="module")
def waitress_url() -> Iterator[str]:
    with run_waitress(WsgiMiddleware(wsgi_app, on_request=load_user), threads=2) as url:
        yield url


def _request_time(url: str, lines: list[bytes], expect: bytes, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        # CPU time of the whole process (the server runs in a thread of it): time
        # lost to other processes on a shared machine does not count.
        start = time.process_time()
        response = raw_get(url, "/", lines, timeout=120)
        took = time.process_time() - start
        assert response.status == 200, response.body[:200]
        assert response.body.startswith(expect), response.body[:200]
        best = min(best, took)
        if took > 5:
            break
    return best


def _assert_linear_requests(
    url: str,
    build: Callable[[int], list[bytes]],
    small: int,
    large: int,
    expect: Callable[[int], bytes],
) -> None:
    bound = LINEAR_BOUND * (large / small) / 8
    for _ in range(3):
        t_small = _request_time(url, build(small), expect(small))
        t_large = _request_time(url, build(large), expect(large))
        if t_large / t_small < bound:
            return
    raise AssertionError(
        f"{large // small}x the input took {t_large / t_small:.1f}x the time "
        f"({t_small * 1000:.1f} ms -> {t_large * 1000:.1f} ms)"
    )


def _backslash_cookie(size: int) -> list[bytes]:
    # `Cookie: access_token="\\\\…"`: quadratic to unquote in SimpleCookie before CVE-2024-7592.
    return [b'Cookie: access_token="' + b"\\" * size + b'"']


def test_uvicorn_hostile_cookie_14k_and_64k(uvicorn_url: str) -> None:
    # The token is read (the backslash pairs unescape to half as many backslashes).
    for size in (14 * 1024, 64 * 1024 - 64):
        response = raw_get(uvicorn_url, "/", _backslash_cookie(size), timeout=60)
        assert response.status == 200
        assert response.body.split()[0] == str(size // 2).encode()
    _assert_linear_requests(
        uvicorn_url, _backslash_cookie, 8 * 1024, 64 * 1024 - 64, lambda n: str(n // 2).encode()
    )


def test_waitress_hostile_cookie(waitress_url: str) -> None:
    _assert_linear_requests(
        waitress_url, _backslash_cookie, 8 * 1024, 64 * 1024 - 64, lambda n: str(n // 2).encode()
    )


def test_uvicorn_40000_repeated_request_id_headers(uvicorn_url: str) -> None:
    def build(count: int) -> list[bytes]:
        return [b"X-Request-ID: 0123456789abcdef0123456789abcdef"] * count

    response = raw_get(uvicorn_url, "/", build(40_000), timeout=60)
    assert response.status == 200
    # Joined into one (invalid) value: the id is a fresh one, never the joined text.
    assert response.body.split()[1] == str(40_000 * 34 - 2).encode()
    ids = response.header_values("x-request-id")
    assert len(ids) == 1
    assert len(ids[0]) == 32
    _assert_linear_requests(uvicorn_url, build, 5_000, 40_000, lambda n: b"0 ")


def test_uvicorn_40000_repeated_cookie_headers(uvicorn_url: str) -> None:
    def build(count: int) -> list[bytes]:
        return [b"Cookie: access_token=tok"] + [b"Cookie: session=0123456789"] * (count - 1)

    _assert_linear_requests(uvicorn_url, build, 5_000, 40_000, lambda n: b"3 ")


def test_aiohttp_joins_repeated_headers_like_asgi() -> None:
    import json

    from aiohttp import web

    from asynclocal.web.aiohttp import setup
    from tests.support.servers import run_aiohttp

    async def handler(request: web.Request) -> web.Response:
        ctx = current_request()
        seen = {"x-a": ctx.headers.get("x-a"), "cookies": dict(ctx.cookies)}
        return web.Response(text=json.dumps(seen))

    app = web.Application()
    setup(app)
    app.router.add_get("/", handler)
    lines = [b"X-A: 1", b"Cookie: a=1", b"X-A: 2", b"Cookie: b=2; a=3", b"x-a: 3"]
    with run_aiohttp(app) as url:
        response = raw_get(url, "/", lines, timeout=30)
        assert response.status == 200
        assert json.loads(response.body) == {"x-a": "1, 2, 3", "cookies": {"a": "1", "b": "2"}}
