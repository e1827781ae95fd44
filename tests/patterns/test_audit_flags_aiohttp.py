"""Audit log and feature flags in concurrent requests through aiohttp."""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from aiohttp import web

from asynclocal import RequestContext
from asynclocal.web.aiohttp import setup as setup_aiohttp
from tests.support.servers import run_aiohttp

pytestmark = pytest.mark.timeout(60)


# --- audit and flags in concurrent requests through aiohttp ----------------------------------


def test_audit_and_flags_in_concurrent_aiohttp_requests(caplog: pytest.LogCaptureFixture) -> None:
    from asynclocal.patterns import FeatureFlags, audit

    flags = FeatureFlags()
    flags.define("beta", percentage=50, users={"u-vip"}, deny_users={"u-banned"})

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(random.random() * 0.01)
        enabled = flags.is_enabled("beta")
        audit("doc.read", target=request.match_info["doc"], enabled=enabled)
        return web.json_response({"enabled": enabled})

    def load(ctx: RequestContext) -> None:
        ctx.user = {"id": ctx.headers["x-user"]}
        ctx.access_token = "tok-" + ctx.headers["x-user"]

    app = web.Application()
    setup_aiohttp(app, on_request=load)
    app.router.add_get("/docs/{doc}", handler)
    users = ["u-vip", "u-banned", *(f"u-{i}" for i in range(20))] * 2
    random.shuffle(users)
    with caplog.at_level(logging.INFO, logger="asynclocal.audit"), run_aiohttp(app) as base:

        def call(pair: tuple[int, str]) -> tuple[int, str, httpx.Response]:
            i, user = pair
            return i, user, httpx.get(f"{base}/docs/d{i}", headers={"x-user": user}, timeout=10)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, enumerate(users)))
    records = {r.audit["request_id"]: r for r in caplog.records if r.name == "asynclocal.audit"}
    decided: dict[str, bool] = {}
    for i, user, r in results:
        enabled = r.json()["enabled"]
        assert decided.setdefault(user, enabled) == enabled  # stable per user
        record = records[r.headers["x-request-id"]]
        assert record.audit["user_id"] == user
        assert record.user_id == user
        assert record.audit["target"] == f"d{i}"
        assert record.audit["action"] == "doc.read"
        assert "tok-" not in repr(record.__dict__)
    assert decided["u-vip"] is True
    assert decided["u-banned"] is False
