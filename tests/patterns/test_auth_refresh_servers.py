"""Token refresh through a real token server and API server: one refresh per request."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import asynclocal.threads
from asynclocal import RequestContext, current_request, request_storage
from asynclocal.patterns.auth import ContextBearerAuth, TokenRefreshError, refresh_count
from tests.patterns._token_world import TokenWorld
from tests.support.servers import run_uvicorn

pytestmark = pytest.mark.timeout(60)


# --- a real token server and API server -----------------------------------------------------


@pytest.fixture(scope="module")
def tokens() -> Iterator[tuple[TokenWorld, str, str]]:
    world = TokenWorld()
    with run_uvicorn(world.token_app()) as token_url, run_uvicorn(world.api_app()) as api_url:
        yield world, f"{token_url}/token", api_url


def _request_with_tokens(user: str) -> RequestContext:
    ctx = RequestContext(f"req-{user}")
    ctx.user = {"id": user}
    ctx.access_token = f"expired-{user}"
    ctx.refresh_token = f"rt-{user}"
    return ctx


async def test_twenty_concurrent_calls_in_one_request_refresh_once(
    tokens: tuple[TokenWorld, str, str],
) -> None:
    world, token_url, api_url = tokens
    auth = ContextBearerAuth(token_url=token_url)
    async with httpx.AsyncClient(base_url=api_url, auth=auth) as api:

        async def handler() -> tuple[list[httpx.Response], int, str | None]:
            answers = await asyncio.gather(*(api.get("/me") for _ in range(20)))
            later = await api.get("/me")  # a later call uses the new token directly
            return [*answers, later], refresh_count(), current_request().access_token

        ctx = _request_with_tokens("solo")
        answers, count, token = await request_storage.run(ctx, handler)
    await auth.aclose()
    assert [r.status_code for r in answers] == [200] * 21
    assert {r.json()["user"] for r in answers} == {"solo"}
    assert count == 1
    assert world.refreshes["solo"] == 1
    assert token == "at-solo-1"
    assert ctx.access_token == "at-solo-1"


async def test_ten_concurrent_requests_refresh_once_each(
    tokens: tuple[TokenWorld, str, str],
) -> None:
    world, token_url, api_url = tokens
    users = [f"u{i}" for i in range(10)]
    auth = ContextBearerAuth(token_url=token_url)
    async with httpx.AsyncClient(base_url=api_url, auth=auth) as api:

        async def handler() -> tuple[str, list[dict[str, Any]], int]:
            await asyncio.sleep(random.random() * 0.02)
            answers = await asyncio.gather(*(api.get("/me") for _ in range(3)))
            return current_request().user["id"], [r.json() for r in answers], refresh_count()

        results = await asyncio.gather(
            *(request_storage.run(_request_with_tokens(u), handler) for u in users)
        )
    await auth.aclose()
    for user, answers, count in results:
        assert count == 1
        assert {a["user"] for a in answers} == {user}
        assert {a["token"] for a in answers} == {f"at-{user}-1"}
    assert sum(world.refreshes[u] for u in users) == 10


def test_sync_client_concurrent_calls_refresh_once(tokens: tuple[TokenWorld, str, str]) -> None:
    world, token_url, api_url = tokens
    auth = ContextBearerAuth(token_url=token_url)
    with httpx.Client(base_url=api_url, auth=auth) as api:

        def handler() -> tuple[list[int], int]:
            with asynclocal.threads.ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda _: api.get("/me").status_code, range(20)))
            return codes, refresh_count()

        codes, count = request_storage.run(_request_with_tokens("sync"), handler)
    auth.close()
    assert codes == [200] * 20
    assert count == 1
    assert world.refreshes["sync"] == 1


async def test_failed_refresh_raises_for_every_waiting_call(
    tokens: tuple[TokenWorld, str, str],
) -> None:
    world, token_url, api_url = tokens
    auth = ContextBearerAuth(token_url=token_url)
    async with httpx.AsyncClient(base_url=api_url, auth=auth) as api:

        async def handler() -> list[BaseException | httpx.Response]:
            return await asyncio.gather(*(api.get("/me") for _ in range(5)), return_exceptions=True)

        results = await request_storage.run(_request_with_tokens("mallory"), handler)
    await auth.aclose()
    assert all(isinstance(r, TokenRefreshError) for r in results), results
    assert all(r.status_code == 401 for r in results if isinstance(r, TokenRefreshError))
    assert world.attempts["rt-mallory"] == 1  # the waiting calls did not try again
