"""Flask (extension) and a bare WSGI app under a real waitress server."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, Response, jsonify, stream_with_context

from asynclocal import current_request, request_id
from asynclocal.request import RequestContext, RequestRejected
from asynclocal.web.flask import RequestContextExtension
from asynclocal.web.wsgi import RequestContextMiddleware
from tests.support.servers import run_waitress
from tests.web.conftest import HEX32, HOSTILE_IDS, CapturedLogs, assert_not_echoed, raw_get

log = logging.getLogger("tests.web.flask")


class Locked(RequestRejected):
    status_code = 423
    public_message = "locked"


def on_request(ctx: RequestContext) -> None:
    token = ctx.cookies.get("access_token")
    if token:
        ctx.access_token = token
        ctx.user = {"id": "flask-user"}


def build_flask() -> Flask:
    app = Flask(__name__)
    ext = RequestContextExtension(on_request=on_request)
    ext.init_app(app)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        ctx = current_request()
        log.info("item %s", item_id)
        ctx.add_response_header("X-Item", str(item_id))
        return jsonify(request_id=ctx.request_id, route=ctx.route, user=ctx.user_id)

    @app.get("/boom")
    def boom() -> Any:
        log.info("failing")
        raise RuntimeError("boom detail")

    @app.get("/locked")
    def locked() -> Any:
        raise Locked()

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for i in range(4):
                time.sleep(0.002)
                yield f"{i}:{request_id()}\n"

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/raw-stream")
    def raw_stream() -> Response:
        # a plain generator: Flask's request context is gone while it runs, ours is not
        def chunks() -> Iterator[str]:
            for i in range(3):
                yield f"{i}:{request_id()}\n"

        return Response(chunks(), mimetype="text/plain")

    return app


@pytest.fixture(scope="module")
def flask_server() -> Iterator[str]:
    with run_waitress(build_flask(), threads=8) as url:
        yield url


def test_flask_extension_sets_id_route_user_and_headers(
    flask_server: str, captured_logs: CapturedLogs
) -> None:
    r = httpx.get(
        f"{flask_server}/items/7", cookies={"access_token": "t0k"}, headers={"X-Request-ID": "fl-1"}
    )
    assert r.json() == {"request_id": "fl-1", "route": "/items/<int:item_id>", "user": "flask-user"}
    assert r.headers["x-request-id"] == "fl-1"
    assert r.headers["x-item"] == "7"
    assert captured_logs.lines_with("item 7") == [("fl-1", "item 7")]


def test_flask_500_carries_the_id(flask_server: str, captured_logs: CapturedLogs) -> None:
    r = httpx.get(f"{flask_server}/boom", headers={"X-Request-ID": "fl-boom"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "fl-boom"
    assert "boom detail" not in r.text
    assert ("fl-boom", "failing") in captured_logs.lines_with("failing")


def test_flask_request_rejected(flask_server: str) -> None:
    r = httpx.get(f"{flask_server}/locked")
    assert (r.status_code, r.text) == (423, "locked")
    assert HEX32.fullmatch(r.headers["x-request-id"])


def test_flask_404_carries_an_id(flask_server: str) -> None:
    r = httpx.get(f"{flask_server}/missing")
    assert r.status_code == 404
    assert HEX32.fullmatch(r.headers["x-request-id"])


@pytest.mark.parametrize("path", ["/stream", "/raw-stream"])
def test_flask_streamed_body_keeps_context(flask_server: str, path: str) -> None:
    r = httpx.get(f"{flask_server}{path}", headers={"X-Request-ID": "fl-stream"})
    lines = r.text.splitlines()
    assert lines
    assert all(line.endswith(":fl-stream") for line in lines), lines


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=lambda b: repr(b[:20]))
def test_flask_hostile_ids(flask_server: str, captured_logs: CapturedLogs, hostile: bytes) -> None:
    r = raw_get(flask_server, "/items/1", [b"X-Request-ID: " + hostile])
    assert r.status in (200, 400, 431)
    if r.status == 200:
        assert r.header("x-request-id") == __import__("json").loads(r.body)["request_id"]
    assert_not_echoed(r, hostile, captured_logs)


# -- the bare WSGI middleware -------------------------------------------------


def bare_app(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise KeyError("bare failure")
    if path == "/reject":
        raise Locked()
    if path == "/gen":

        def gen() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])  # late start_response
            for i in range(3):
                yield f"{i}:{request_id()}\n".encode()

        return gen()
    ctx = current_request()
    body = f"{ctx.request_id} {ctx.method} {ctx.path} {ctx.headers.get('x-custom')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def test_bare_wsgi_middleware(captured_logs: CapturedLogs) -> None:
    app = RequestContextMiddleware(bare_app, header="X-Trace-Id", reject_invalid=True)
    with run_waitress(app, threads=4) as url:
        ok = httpx.get(f"{url}/caf%C3%A9", headers={"X-Trace-Id": "w-1", "X-Custom": "c"})
        gen = httpx.get(f"{url}/gen", headers={"X-Trace-Id": "w-gen"})
        boom = httpx.get(f"{url}/boom", headers={"X-Trace-Id": "w-boom"})
        rejected = httpx.get(f"{url}/reject", headers={"X-Trace-Id": "w-rej"})
        invalid = httpx.get(f"{url}/", headers={"X-Trace-Id": "bad id!"})
    assert ok.text == "w-1 GET /café c"
    assert ok.headers["x-trace-id"] == "w-1"
    assert gen.text.splitlines() == ["0:w-gen", "1:w-gen", "2:w-gen"]
    assert gen.headers["x-trace-id"] == "w-gen"
    assert (boom.status_code, boom.headers["x-trace-id"]) == (500, "w-boom")
    assert "bare failure" not in boom.text
    # the traceback is logged, inside the request's context
    assert any(rid == "w-boom" and "bare failure" in text for rid, text in captured_logs.records)
    assert (rejected.status_code, rejected.text, rejected.headers["x-trace-id"]) == (
        423,
        "locked",
        "w-rej",
    )
    assert invalid.status_code == 400
    assert HEX32.fullmatch(invalid.headers["x-trace-id"])
    assert "bad id!" not in invalid.text


def test_extension_validates_its_input() -> None:
    app = Flask("again")
    RequestContextExtension(app)
    with pytest.raises(RuntimeError, match="already installed"):
        RequestContextExtension(app)
    with pytest.raises(TypeError, match="Flask application"):
        RequestContextExtension().init_app(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="WSGI app"):
        RequestContextMiddleware(None)  # type: ignore[arg-type]
