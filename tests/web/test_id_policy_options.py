"""Request-id options: trusted proxies, header name, generator, rejecting invalid ids."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from asynclocal import NoRequestContext, current_request, request_id
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress
from tests.web._apps import get_head, plain_asgi_app, raw_request

HEX32 = re.compile(r"^[0-9a-f]{32}$")

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- options


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
