"""Mixed concurrent load through Starlette/uvicorn and Flask/waitress: ids never mix."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.support.servers import run_uvicorn, run_waitress
from tests.web._apps import Captured, flask_app, starlette_app

HEX32 = re.compile(r"^[0-9a-f]{32}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9\-._~:+=/]{1,128}$")

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- load


def _check_load(
    results: list[tuple[str | None, int, str, dict[str, Any]]], lines: list[str]
) -> None:
    by_id: dict[str, list[str]] = {}
    for line in lines:
        m = re.match(r"^\[([^\]]*)\] (?:hello|flask user|sync) (\S+)$", line)
        if m:
            by_id.setdefault(m.group(2), []).append(m.group(1))
    fresh: list[str] = []
    for sent, n, echoed, body in results:
        assert body["id"] == echoed, (sent, echoed, body)
        if sent is not None and SAFE_ID.match(sent):
            assert echoed == sent
        else:
            assert HEX32.match(echoed), (sent, echoed)
            fresh.append(echoed)
        assert by_id.get(str(n)) == [echoed], (n, by_id.get(str(n)), echoed)
    assert len(set(fresh)) == len(fresh)


def _mixed_id(n: int) -> str | None:
    kind = n % 4
    if kind == 0:
        return f"load-{n}"
    if kind == 1:
        return None
    if kind == 2:
        return "x" * 200 if n % 8 == 2 else "bad id;" + str(n)
    return f"ok.{n}:{n}"


async def _fire(base: str, paths: list[str], total: int, parallel: int) -> list[Any]:
    sem = asyncio.Semaphore(parallel)
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(n: int) -> tuple[str | None, int, str, dict[str, Any]]:
            sent = _mixed_id(n)
            headers = {"X-Request-ID": sent} if sent is not None else {}
            async with sem:
                r = await client.get(paths[n % len(paths)].format(n=n), headers=headers)
            assert r.status_code == 200, r.text
            return sent, n, r.headers["x-request-id"], r.json()

        return await asyncio.gather(*(one(n) for n in range(total)))


def test_load_starlette_uvicorn_1000_mixed_requests(logs: Captured) -> None:
    app = starlette_app(use_install=True)
    with run_uvicorn(app) as base:
        results = asyncio.run(_fire(base, ["/hello/a?n={n}", "/sync?n={n}"], 1000, 64))
    _check_load(results, logs.lines)


def test_load_flask_waitress_1000_mixed_requests(logs: Captured) -> None:
    with run_waitress(flask_app(), threads=16) as base:
        results = asyncio.run(_fire(base, ["/users/{n}"], 1000, 48))
    _check_load(results, logs.lines)
