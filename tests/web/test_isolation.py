"""Isolation under load: thousands of concurrent requests, zero mix-ups (ASGI and WSGI stacks).

Every request carries a nonce `n`. For each response we check that the echoed
id, the id the handler read (before and after awaits, in a thread-pool job
and in a child task) and the id on every log line logged for `n` (stamped by
`asynclocal.logging.ContextFilter` when the record was created) are the same,
that a valid incoming id was kept, and that a hostile or missing one was
replaced by a fresh, unique id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asynclocal import request_id
from asynclocal.logging import ContextFilter
from asynclocal.threads import ThreadPoolExecutor
from asynclocal.web.flask import RequestContextExtension
from asynclocal.web.starlette import install
from tests.support.servers import run_uvicorn, run_waitress
from tests.web.conftest import HEX32

log = logging.getLogger("tests.web.isolation")
NONCE = re.compile(r"\bn=(\d+)\b")
HOSTILE: list[bytes] = [b"bad id", b"\xff\xfe\xfd", b"x" * 300, b"a;b", b"<i>", b"caf\xc3\xa9"]


class _ByNonce(logging.Handler):
    """Collects, per nonce, the request id ContextFilter stamped on each record."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(ContextFilter())
        self.by_nonce: dict[int, list[str]] = defaultdict(list)

    def emit(self, record: logging.LogRecord) -> None:
        match = NONCE.search(record.getMessage())
        if match:
            self.by_nonce[int(match.group(1))].append(record.request_id)


@pytest.fixture
def log_lines() -> Iterator[_ByNonce]:
    handler = _ByNonce()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def _incoming(n: int) -> bytes | None:
    kind = n % 3
    if kind == 0:
        return f"cli-{n}-{uuid.uuid4().hex[:8]}".encode()
    if kind == 1:
        return HOSTILE[n % len(HOSTILE)]
    return None


async def _fire(
    base: str, total: int, concurrency: int, path: str
) -> list[tuple[int, bytes | None, httpx.Response]]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(n: int) -> tuple[int, bytes | None, httpx.Response]:
            sent = _incoming(n)
            headers = {"X-Request-ID": sent} if sent is not None else {}
            async with sem:
                return n, sent, await client.get(f"{path}/{n}", headers=headers)

        return await asyncio.gather(*(one(n) for n in range(total)))


def _check(
    results: list[tuple[int, bytes | None, httpx.Response]], lines: _ByNonce, per_request: int
) -> None:
    seen_ids: set[str] = set()
    for n, sent, response in results:
        assert response.status_code == 200, (n, response.status_code)
        echoed = response.headers["x-request-id"]
        body = response.json()
        assert body["n"] == n
        read = {body["start"], body["thread"], body["task"], body["end"]}
        assert read == {echoed}, (n, echoed, body)
        assert lines.by_nonce[n] == [echoed] * per_request, (n, echoed, lines.by_nonce[n])
        if sent is not None and n % 3 == 0:
            assert echoed == sent.decode()
        else:
            assert HEX32.fullmatch(echoed), echoed
        assert echoed not in seen_ids
        seen_ids.add(echoed)
    assert len(seen_ids) == len(results)


def _hop(n: int) -> str | None:
    time.sleep(random.random() * 0.002)
    log.info("thread hop n=%d", n)
    return request_id()


@pytest.mark.slow
def test_asgi_isolation_under_load(log_lines: _ByNonce) -> None:
    pool = ThreadPoolExecutor(max_workers=16)

    async def task_part(n: int) -> str | None:
        await asyncio.sleep(random.random() * 0.003)
        log.info("child task n=%d", n)
        return request_id()

    async def work(request: Request) -> Response:
        n = int(request.path_params["n"])
        start = request_id()
        log.info("start n=%d", n)
        await asyncio.sleep(random.random() * 0.005)
        thread = await asyncio.get_running_loop().run_in_executor(pool, _hop, n)
        task = await asyncio.create_task(task_part(n))
        await asyncio.sleep(random.random() * 0.002)
        log.info("end n=%d", n)
        return JSONResponse(
            {"n": n, "start": start, "thread": thread, "task": task, "end": request_id()}
        )

    app = Starlette(routes=[Route("/work/{n}", work)])
    install(app)
    total = 2000
    started = time.monotonic()
    try:
        with run_uvicorn(app, backlog=4096) as url:
            results = asyncio.run(_fire(url, total, 200, "/work"))
    finally:
        pool.shutdown(wait=True)
    assert len(results) == total
    _check(results, log_lines, per_request=4)
    assert time.monotonic() - started < 120  # a hang guard, not a timing assertion


@pytest.mark.slow
def test_wsgi_isolation_under_load(log_lines: _ByNonce) -> None:
    pool = ThreadPoolExecutor(max_workers=8)
    app = Flask("isolation")
    RequestContextExtension(app)

    @app.get("/work/<int:n>")
    def work(n: int) -> Any:
        start = request_id()
        log.info("start n=%d", n)
        time.sleep(random.random() * 0.003)
        thread = pool.submit(_hop, n).result()
        task = pool.submit(lambda: (log.info("second job n=%d", n), request_id())[1]).result()
        log.info("end n=%d", n)
        return jsonify(n=n, start=start, thread=thread, task=task, end=request_id())

    total = 1000
    try:
        with run_waitress(app, threads=16) as url:
            results = asyncio.run(_fire(url, total, 64, "/work"))
    finally:
        pool.shutdown(wait=True)
    assert len(results) == total
    _check(results, log_lines, per_request=4)
