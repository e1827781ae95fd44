"""``access_log=True`` on every web integration: one record per request, its own ids.

Real servers on 127.0.0.1 (uvicorn, waitress, aiohttp), 24 interleaved requests
each, every access record checked against the response's id header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import pytest
from litestar import Litestar, Response, get

from asynclocal.logging import ContextFilter, JsonFormatter
from asynclocal.request import request_storage
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress

N = 24


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self._guard = threading.Lock()
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        with self._guard:
            self.lines.append(line)


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    handler = Lines()
    log = logging.getLogger("asynclocal.access")
    old = (log.level, log.propagate)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old[0])
    log.propagate = old[1]


def _user(n: str) -> None:
    ctx = request_storage.get_store()
    assert ctx is not None
    ctx.user = {"id": f"user-{n}"}


def starlette_app(kind: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        n = request.path_params["n"]
        _user(n)
        await asyncio.sleep(random.random() * 0.01)
        if int(n) % 3 == 0:
            return PlainTextResponse("gone", status_code=404)
        return PlainTextResponse("x" * int(n))

    app = Starlette(routes=[Route("/items/{n}", item)])
    if kind == "starlette":
        from asynclocal.web.starlette import install

        install(app, access_log=True)
        return app
    from asynclocal.web.asgi import RequestContextMiddleware

    return RequestContextMiddleware(app, access_log=True)


def fastapi_app() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from asynclocal.web.fastapi import install

    app = FastAPI()

    @app.get("/items/{n}")
    async def item(n: str) -> PlainTextResponse:
        _user(n)
        await asyncio.sleep(random.random() * 0.01)
        if int(n) % 3 == 0:
            return PlainTextResponse("gone", status_code=404)
        return PlainTextResponse("x" * int(n))

    install(app, access_log=True)
    return app


def litestar_app() -> Any:
    from asynclocal.web.litestar import wrap

    @get("/items/{n:str}", sync_to_thread=False)
    def item(n: str) -> Response[str]:
        _user(n)
        if int(n) % 3 == 0:
            return Response("gone", status_code=404)
        return Response("x" * int(n))

    return wrap(Litestar(route_handlers=[item]), access_log=True)


def flask_app() -> Any:
    from flask import Flask

    from asynclocal.web.flask import RequestContextExtension

    app = Flask("access")

    @app.get("/items/<n>")
    def item(n: str) -> tuple[str, int]:
        _user(n)
        time.sleep(random.random() * 0.01)
        if int(n) % 3 == 0:
            return "gone", 404
        return "x" * int(n), 200

    RequestContextExtension(app, access_log=True)
    return app


def aiohttp_app() -> Any:
    from aiohttp import web

    from asynclocal.web.aiohttp import setup

    async def item(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        _user(n)
        await asyncio.sleep(random.random() * 0.01)
        if int(n) % 3 == 0:
            return web.Response(text="gone", status=404)
        return web.Response(text="x" * int(n))

    app = web.Application()
    app.router.add_get("/items/{n}", item)
    setup(app, access_log=True)
    return app


SERVERS: dict[str, tuple[Callable[[], Any], Callable[[Any], AbstractContextManager[str]]]] = {
    "asgi": (lambda: starlette_app("asgi"), run_uvicorn),
    "starlette": (lambda: starlette_app("starlette"), run_uvicorn),
    "fastapi": (fastapi_app, run_uvicorn),
    "litestar": (litestar_app, run_uvicorn),
    "flask": (flask_app, run_waitress),
    "aiohttp": (aiohttp_app, run_aiohttp),
}


@pytest.mark.parametrize("name", SERVERS)
def test_every_integration_writes_one_access_line_per_request_with_its_ids(
    name: str, access_lines: Lines
) -> None:
    make, run = SERVERS[name]

    def one(base: str, i: int) -> tuple[str, int, str]:
        time.sleep(random.random() * 0.02)
        try:
            with urllib.request.urlopen(f"{base}/items/{i}?token=abcdefgh{i}", timeout=10) as r:
                return str(i), r.status, r.headers["X-Request-ID"]
        except urllib.error.HTTPError as err:
            return str(i), err.code, err.headers["X-Request-ID"]

    with run(make()) as base, ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(lambda i: one(base, i), range(1, N + 1)))
    time.sleep(0.2)

    by_path = {line["http_path"].split("?")[0]: line for line in access_lines.lines}
    assert len(access_lines.lines) == N
    for n, status, rid in sent:
        line = by_path[f"/items/{n}"]
        assert line["request_id"] == rid
        assert line["http_status"] == status == (404 if int(n) % 3 == 0 else 200)
        assert line["user_id"] == f"user-{n}"
        assert line["http_method"] == "GET"
        assert line["http_path"] == f"/items/{n}?token=[REDACTED]"
        assert line["duration_ms"] >= 0
        if status == 200:
            assert line["response_bytes"] == int(n)
        assert line["levelname"] == ("WARNING" if status == 404 else "INFO")
