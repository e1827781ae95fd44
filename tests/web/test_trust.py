"""One owner for the request id and the causation chain, with trust applied to all of it.

Real servers (uvicorn, waitress, aiohttp) on 127.0.0.1, raw requests. A policy
trusting 127.0.0.1 believes what the caller sends; one trusting only a network
that excludes it believes nothing: no id, no root or parent id, no trace, no
baggage, and nothing of it reaches a log line.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from asynclocal import current_request, propagation
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress
from tests.web.conftest import CapturedLogs, raw_get

pytestmark = pytest.mark.timeout(60)

HEX32 = re.compile(r"[0-9a-f]{32}")
TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = [
    b"X-Request-ID: caller-id-1",
    b"X-Root-Request-ID: root-id-1",
    f"traceparent: 00-{TRACE}-b7ad6b7169203331-01".encode(),
    b"baggage: tenant=acme",
]
log = logging.getLogger("tests.web.trust")


def _seen() -> dict[str, Any]:
    ctx = current_request()
    log.info("serving root=%s parent=%s", ctx.root_request_id, ctx.parent_request_id)
    return {
        "request_id": ctx.request_id,
        "root": ctx.root_request_id,
        "parent": ctx.parent_request_id,
        "trace_id": ctx.trace_id,
        "tenant": ctx.get("tenant"),
    }


def _asgi(**options: Any) -> Any:
    from asynclocal.web.asgi import RequestContextMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps(_seen()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return RequestContextMiddleware(app, **options)


def _wsgi(**options: Any) -> Any:
    from asynclocal.web.wsgi import RequestContextMiddleware

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(_seen()).encode()]

    return RequestContextMiddleware(app, **options)


def _aiohttp(**options: Any) -> Any:
    from aiohttp import web

    from asynclocal.web.aiohttp import setup

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(_seen())

    app = web.Application()
    app.router.add_get("/", handler)
    setup(app, **options)
    return app


SERVERS: dict[str, Callable[..., AbstractContextManager[str]]] = {
    "uvicorn": lambda **o: run_uvicorn(_asgi(**o), proxy_headers=False),
    "waitress": lambda **o: run_waitress(_wsgi(**o)),
    "aiohttp": lambda **o: run_aiohttp(_aiohttp(**o)),
}


@pytest.fixture(autouse=True)
def _baggage_tenant() -> Iterator[None]:
    propagation.configure(baggage_fields=["tenant"])
    try:
        yield
    finally:
        propagation.reset_config()


def _get(base: str, lines: list[bytes]) -> tuple[dict[str, Any], str | None]:
    response = raw_get(base, "/", lines)
    assert response.status == 200
    return json.loads(response.body), response.header("x-request-id")


@pytest.mark.parametrize("server", SERVERS)
def test_an_untrusted_peer_sets_nothing(server: str, captured_logs: CapturedLogs) -> None:
    with SERVERS[server](trusted_proxies=["10.0.0.0/8"]) as base:
        seen, echoed = _get(base, CALLER)
        lone, _ = _get(base, [b"X-Request-ID: gateway-id-7"])
    assert HEX32.fullmatch(seen["request_id"])
    assert echoed == seen["request_id"]
    assert seen["root"] == seen["request_id"]
    assert seen["parent"] is None
    assert seen["trace_id"] != TRACE
    assert seen["tenant"] is None
    assert HEX32.fullmatch(lone["request_id"])
    logged = " ".join(text for _, text in captured_logs.records)
    for sent in ("caller-id-1", "root-id-1", "gateway-id-7", TRACE, "acme"):
        assert sent not in logged


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("trusted", ["127.0.0.1", "127.0.0.0/8"])
def test_a_trusted_caller_sets_the_chain_trace_and_baggage(server: str, trusted: str) -> None:
    with SERVERS[server](trusted_proxies=[trusted]) as base:
        seen, echoed = _get(base, CALLER)
        lone, _ = _get(base, [b"X-Request-ID: gateway-id-7"])
    # An asynclocal caller: a fresh id whose parent is the caller, the caller's root.
    assert HEX32.fullmatch(seen["request_id"])
    assert echoed == seen["request_id"]
    assert (seen["root"], seen["parent"]) == ("root-id-1", "caller-id-1")
    assert seen["trace_id"] == TRACE
    assert seen["tenant"] == "acme"
    # A gateway's lone id is adopted.
    assert (lone["request_id"], lone["root"], lone["parent"]) == ("gateway-id-7",) * 2 + (None,)


@pytest.mark.parametrize("server", SERVERS)
def test_reuse_request_id_only_for_trusted_callers(server: str) -> None:
    with SERVERS[server](trusted_proxies=["127.0.0.1"], reuse_request_id=True) as base:
        trusted, _ = _get(base, CALLER)
    with SERVERS[server](trusted_proxies=["10.0.0.0/8"], reuse_request_id=True) as base:
        untrusted, _ = _get(base, CALLER)
    assert (trusted["request_id"], trusted["root"], trusted["parent"]) == (
        "caller-id-1",
        "root-id-1",
        None,
    )
    assert HEX32.fullmatch(untrusted["request_id"])
    assert untrusted["root"] == untrusted["request_id"]


@pytest.mark.parametrize("server", SERVERS)
def test_the_custom_generator_is_used_on_every_path(server: str) -> None:
    counter = itertools.count(1)
    lock = threading.Lock()

    def generator() -> str:
        with lock:
            return f"gen-{next(counter)}"

    paths = {
        "no id": [],
        "invalid id": [b"X-Request-ID: has space"],
        "asynclocal caller": CALLER,
    }
    with SERVERS[server](trusted_proxies=["127.0.0.1"], generator=generator) as base:
        trusted = {name: _get(base, lines) for name, lines in paths.items()}
    with SERVERS[server](trusted_proxies=["10.0.0.0/8"], generator=generator) as base:
        untrusted = {name: _get(base, lines) for name, lines in paths.items()}
    for results in (trusted, untrusted):
        for name, (seen, echoed) in results.items():
            assert seen["request_id"].startswith("gen-"), name
            assert echoed == seen["request_id"], name
    assert trusted["asynclocal caller"][0]["parent"] == "caller-id-1"


@pytest.mark.parametrize("server", SERVERS)
def test_continue_trace_false_starts_every_request_afresh(server: str) -> None:
    with SERVERS[server](continue_trace=False) as base:
        seen, _ = _get(base, CALLER)
    assert seen["parent"] is None
    assert seen["trace_id"] != TRACE
    assert seen["tenant"] is None
    # The lone id is still the policy's to adopt (trusted: no list).
    assert seen["request_id"] == "caller-id-1"
