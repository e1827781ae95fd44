"""ContextBearerAuth against a real token server and API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asynclocal.patterns.auth import ContextBearerAuth, TokenRefreshError, Tokens, refresh_count
from asynclocal.request import NoRequestContext, RequestContext, current_request, request_storage
from asynclocal.threads import ThreadPoolExecutor
from asynclocal.web.starlette import install
from tests.support.servers import run_uvicorn

from .conftest import AuthWorld


def _users(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{tag}{i}" for i in range(n)]


def _ctx(user: str, refresh: str | None = None) -> RequestContext:
    return RequestContext(
        f"req-{user}",
        user={"id": user},
        access_token=f"expired-{user}",
        refresh_token=refresh if refresh is not None else f"rt-{user}",
    )


async def test_concurrent_requests_refresh_once_each(auth_world: AuthWorld) -> None:
    auth = ContextBearerAuth(token_url=auth_world.token_url)
    users = _users(30)
    async with httpx.AsyncClient(base_url=auth_world.api_url, auth=auth, timeout=30) as api:

        async def one_request(user: str) -> None:
            ctx = _ctx(user)

            async def handler() -> None:
                await asyncio.sleep(random.uniform(0, 0.02))
                answers = await asyncio.gather(*(api.get("/me") for _ in range(5)))
                assert [a.json()["user"] for a in answers] == [user] * 5
                assert current_request().access_token != f"expired-{user}"
                later = await api.get("/me")  # uses the refreshed token straight away
                assert later.status_code == 200
                assert later.json()["token"] == ctx.access_token
                assert refresh_count() == 1

            await request_storage.run(ctx, handler)
            assert auth_world.valid[ctx.access_token or ""] == user

        await asyncio.gather(*(one_request(u) for u in users))
    assert {u: auth_world.refresh_calls[f"rt-{u}"] for u in users} == {u: 1 for u in users}
    for user, token in auth_world.seen_tokens:
        assert auth_world.valid[token] == user  # no request ever sent another's token


def test_sync_client_threads_refresh_once_per_request(auth_world: AuthWorld) -> None:
    auth = ContextBearerAuth(token_url=auth_world.token_url)
    users = _users(10)
    errors: list[BaseException] = []
    with httpx.Client(base_url=auth_world.api_url, auth=auth, timeout=30) as api:

        def handler(user: str) -> None:
            with ThreadPoolExecutor(4) as pool:  # concurrent calls inside one request
                answers = list(pool.map(lambda _: api.get("/me"), range(4)))
            assert [a.json()["user"] for a in answers] == [user] * 4
            assert api.get("/me").json()["token"] == current_request().access_token

        def one_request(user: str) -> None:
            try:
                request_storage.run(_ctx(user), handler, user)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=one_request, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    assert {u: auth_world.refresh_calls[f"rt-{u}"] for u in users} == {u: 1 for u in users}
    auth.close()


async def test_failed_refresh_raises_once_for_all_waiters(auth_world: AuthWorld) -> None:
    auth = ContextBearerAuth(token_url=auth_world.token_url)
    (user,) = _users(1)
    ctx = _ctx(user, refresh=f"revoked-{user}")
    async with httpx.AsyncClient(base_url=auth_world.api_url, auth=auth, timeout=30) as api:

        async def handler() -> list[BaseException | httpx.Response]:
            return await asyncio.gather(*(api.get("/me") for _ in range(6)), return_exceptions=True)

        results = await request_storage.run(ctx, handler)
    assert all(isinstance(r, TokenRefreshError) for r in results), results
    assert "refused the refresh token (HTTP 400)" in str(results[0])
    assert isinstance(results[0], TokenRefreshError)
    assert results[0].status_code == 401
    assert auth_world.refresh_calls[f"revoked-{user}"] == 1
    assert ctx.access_token == f"expired-{user}"


async def test_no_refresh_token_is_a_clear_error(auth_world: AuthWorld) -> None:
    auth = ContextBearerAuth(token_url=auth_world.token_url)
    (user,) = _users(1)
    ctx = _ctx(user, refresh="")
    async with httpx.AsyncClient(base_url=auth_world.api_url, auth=auth, timeout=30) as api:
        with pytest.raises(TokenRefreshError, match="has no refresh_token"):
            await request_storage.run(ctx, api.get, "/me")


async def test_refresh_callable_and_rotation(auth_world: AuthWorld) -> None:
    calls: list[str] = []

    async def refresh(refresh_token: str) -> Tokens:
        calls.append(refresh_token)
        async with httpx.AsyncClient(timeout=30) as c:
            got = await c.post(
                auth_world.token_url,
                data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            )
        return Tokens(got.json()["access_token"], refresh_token="rotated")

    (user,) = _users(1)
    ctx = _ctx(user)
    async with httpx.AsyncClient(
        base_url=auth_world.api_url, auth=ContextBearerAuth(refresh=refresh)
    ) as api:
        answers = await request_storage.run(
            ctx, lambda: asyncio.gather(*(api.get("/me") for _ in range(4)))
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert calls == [f"rt-{user}"]
    assert ctx.refresh_token == "rotated"


def test_sync_refresh_callable_failure_is_wrapped(auth_world: AuthWorld) -> None:
    def refresh(refresh_token: str) -> str:
        raise ConnectionError("auth service down")

    (user,) = _users(1)
    auth = ContextBearerAuth(refresh=refresh)
    with (
        httpx.Client(base_url=auth_world.api_url, auth=auth, timeout=30) as api,
        pytest.raises(TokenRefreshError, match="auth service down"),
    ):
        request_storage.run(_ctx(user), api.get, "/me")


async def test_outside_a_request_raises(auth_world: AuthWorld) -> None:
    async with httpx.AsyncClient(
        base_url=auth_world.api_url, auth=ContextBearerAuth(token_url=auth_world.token_url)
    ) as api:
        with pytest.raises(NoRequestContext):
            await api.get("/me")


def test_rejects_bad_configuration() -> None:
    with pytest.raises(TypeError, match="exactly one of"):
        ContextBearerAuth()
    with pytest.raises(TypeError, match="http"):
        ContextBearerAuth(token_url="ftp://x")


def test_through_the_middleware_many_browsers(auth_world: AuthWorld) -> None:
    """A front service reads tokens from cookies and calls the API with them (server rendering)."""
    auth = ContextBearerAuth(token_url=auth_world.token_url)

    async def fetch_me(api: httpx.AsyncClient) -> str:  # no token parameter: it's in the context
        user: str = (await api.get("/me")).json()["user"]
        return user

    async def page(request: Request) -> Response:
        async with httpx.AsyncClient(base_url=auth_world.api_url, auth=auth, timeout=30) as api:
            mine = await asyncio.gather(fetch_me(api), fetch_me(api), fetch_me(api))
        return JSONResponse({"me": mine, "refreshes": refresh_count()})

    def on_request(ctx: RequestContext) -> None:
        ctx.access_token = ctx.cookies.get("access_token")
        ctx.refresh_token = ctx.cookies.get("refresh_token")

    app = Starlette(routes=[Route("/", page)])
    install(app, on_request=on_request)
    users = _users(20)
    with run_uvicorn(app) as base:

        async def browse() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as browser:

                async def visit(user: str, rt: str) -> httpx.Response:
                    cookies = f"access_token=expired-{user}; refresh_token={rt}"
                    return await browser.get("/", headers={"cookie": cookies})

                jobs = [visit(u, f"rt-{u}") for u in users]
                jobs.append(visit("mallory", "revoked-mallory"))
                return await asyncio.gather(*jobs)

        answers = asyncio.run(browse())
    for user, answer in zip(users, answers):
        assert answer.json() == {"me": [user] * 3, "refreshes": 1}
    assert answers[-1].status_code == 401
    assert {u: auth_world.refresh_calls[f"rt-{u}"] for u in users} == {u: 1 for u in users}


def test_token_client_must_be_an_httpx_client() -> None:
    with pytest.raises(TypeError, match=r"token_client must be an httpx\.Client"):
        ContextBearerAuth(token_url="http://127.0.0.1:1/token", token_client=object())  # type: ignore[arg-type]
