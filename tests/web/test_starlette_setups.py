"""Starlette setups: the echoed id and the context in handlers, tasks, streams, websockets."""

from __future__ import annotations

import re
import threading

import httpx
import pytest

from tests.support.servers import run_uvicorn
from tests.web._apps import Captured, get_head, raw_request, starlette_app

HEX32 = re.compile(r"^[0-9a-f]{32}$")

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- Starlette


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
