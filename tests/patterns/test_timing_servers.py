"""`@timed` and `Server-Timing` through Flask and bare WSGI."""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from flask import Flask

from asynclocal import current_request
from asynclocal.patterns.timing import timed
from asynclocal.web.flask import RequestContextExtension
from asynclocal.web.wsgi import RequestContextMiddleware as WsgiMiddleware
from tests.support.servers import run_waitress

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("timing_reports")]


# --- @timed: Server-Timing through Flask and bare WSGI ----------------------------------------


@timed("repository")
def _repository() -> None:
    time.sleep(0.001)


@timed("service")
def _service(n: int) -> None:
    for _ in range(n):
        _repository()


@timed("controller")
def _controller(n: int) -> str:
    _service(n)
    return current_request().request_id


def _timing_entries(header: str) -> list[str]:
    return [entry.split(";")[0].strip() for entry in header.split(",")]


def _check_timing(base: str, path: str) -> None:
    def call(n: int) -> tuple[int, httpx.Response]:
        return n, httpx.get(f"{base}{path}", params={"n": n}, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, [random.randint(1, 5) for _ in range(24)]))
    for n, r in results:
        assert r.status_code == 200
        names = _timing_entries(r.headers["server-timing"])
        assert names[0] == "controller"
        assert names[-1] == "total"
        assert names.count("repository") == n
        assert names.count("service") == 1
        assert 'desc="controller>service>repository"' in r.headers["server-timing"]
        assert r.text == r.headers["x-request-id"]


def test_timed_server_timing_through_flask(caplog: pytest.LogCaptureFixture) -> None:
    app = Flask("timing_servers")

    @app.get("/t")
    def t() -> Any:
        from flask import request

        return _controller(int(request.args["n"]))

    RequestContextExtension(app)
    with caplog.at_level(logging.INFO, logger="asynclocal.timing"), run_waitress(app) as base:
        _check_timing(base, "/t")
    summaries = [r for r in caplog.records if r.name == "asynclocal.timing"]
    assert len(summaries) == 24
    assert len({getattr(r, "request_id", None) for r in summaries}) == 24


def test_timed_server_timing_through_bare_wsgi() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        n = int(parse_qs(environ["QUERY_STRING"])["n"][0])
        body = _controller(n).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    with run_waitress(WsgiMiddleware(app)) as base:
        _check_timing(base, "/")
