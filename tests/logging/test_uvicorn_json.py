"""A real Starlette app under uvicorn: every JSON line of every request carries its own id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.handlers
import queue
import random
import re
import threading
from typing import Any

import httpx
import pytest

from asynclocal import request_id
from asynclocal.logging import ContextFilter, JsonFormatter
from asynclocal.threads import ThreadPoolExecutor
from tests.support.servers import run_uvicorn

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- end to end


def test_uvicorn_starlette_json_logs_through_a_queue_listener() -> None:
    """200 concurrent requests with hostile, valid and missing ids; every JSON line agrees."""
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from asynclocal.web.starlette import install

    app_log = logging.getLogger("tests.logging.uvicorn_json")
    app_log.setLevel(logging.INFO)
    app_log.propagate = False
    q: queue.Queue[logging.LogRecord] = queue.Queue()
    qh = logging.handlers.QueueHandler(q)
    qh.addFilter(ContextFilter())
    app_log.addHandler(qh)
    buf = io.StringIO()
    target = logging.StreamHandler(buf)
    target.setFormatter(JsonFormatter())
    listener = logging.handlers.QueueListener(q, target)
    pool = ThreadPoolExecutor(max_workers=4)
    done = threading.Semaphore(0)

    def repository(n: str) -> None:
        app_log.info("repo", extra={"n": n, "seen": request_id()})

    async def after(n: str) -> None:
        await asyncio.sleep(random.random() / 500)
        app_log.info("after", extra={"n": n, "seen": request_id()})
        done.release()

    async def endpoint(request: Request) -> JSONResponse:
        n = request.path_params["n"]
        await asyncio.sleep(random.random() / 500)
        repository(n)
        await asyncio.get_running_loop().run_in_executor(
            pool, lambda: app_log.info("pool", extra={"n": n, "seen": request_id()})
        )
        return JSONResponse({"id": request_id()}, background=BackgroundTask(after, n))

    app = Starlette(routes=[Route("/items/{n}", endpoint)])
    install(app)

    def sent_id(i: int) -> str | None:
        return [f"e2e-{i}", None, f"bad\x7f{i}", "y" * 129][i % 4]

    async def fire(base: str) -> list[tuple[int, str | None, str, str]]:
        sem = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def one(i: int) -> tuple[int, str | None, str, str]:
                sent = sent_id(i)
                headers = {"X-Request-ID": sent} if sent is not None else {}
                async with sem:
                    r = await client.get(f"/items/{i}", headers=headers)
                return i, sent, r.headers["x-request-id"], r.json()["id"]

            return await asyncio.gather(*(one(i) for i in range(200)))

    listener.start()
    try:
        with run_uvicorn(app) as base:
            results = asyncio.run(fire(base))
            for _ in range(200):
                assert done.acquire(timeout=10)
    finally:
        listener.stop()
        pool.shutdown(wait=True)
        app_log.removeHandler(qh)

    records = [json.loads(line) for line in buf.getvalue().splitlines()]
    by_n: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_n.setdefault(rec["n"], []).append(rec)
    for i, sent, echoed, body_id in results:
        assert echoed == body_id
        if sent is not None and sent.startswith("e2e-"):
            assert echoed == sent
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", echoed)
        lines = by_n[str(i)]
        assert sorted(r["message"] for r in lines) == ["after", "pool", "repo"]
        for rec in lines:
            assert rec["request_id"] == rec["seen"] == echoed, rec
    assert "\x7f" not in buf.getvalue()
    assert "y" * 129 not in buf.getvalue()
