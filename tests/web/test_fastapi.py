"""FastAPI under a real uvicorn: the dependency, routes, sync endpoints in the threadpool, 500s."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi import Depends, FastAPI

from asynclocal import current_request, request_id
from asynclocal.request import NoRequestContext, RequestContext, RequestRejected
from asynclocal.web.fastapi import RequestContextDep, get_request_context, install
from tests.support.servers import run_uvicorn
from tests.web.conftest import HEX32


class Forbidden(RequestRejected):
    status_code = 403
    public_message = "forbidden"


async def load_user(ctx: RequestContext) -> None:
    await asyncio.sleep(0)
    auth = ctx.headers.get("authorization", "")
    if auth.startswith("Bearer "):
        ctx.access_token = auth[7:]
        ctx.user = {"id": "user-" + auth[7:10]}


def current_user(ctx: RequestContextDep) -> str:
    if ctx.user is None:
        raise Forbidden()
    return str(ctx.user_id)


def build() -> FastAPI:
    app = FastAPI()
    install(app, on_request=load_user)

    @app.get("/payments/{payment_id}")
    async def payment(payment_id: str, ctx: RequestContextDep) -> dict[str, object]:
        await asyncio.sleep(0.001)
        assert ctx is current_request()
        return {"id": payment_id, "request_id": ctx.request_id, "route": ctx.route}

    @app.get("/sync")
    def sync_endpoint(ctx: RequestContextDep) -> dict[str, object]:
        # runs in FastAPI's threadpool: the context travels there
        return {"request_id": request_id(), "same": ctx is current_request()}

    @app.get("/me")
    async def me(user: str = Depends(current_user)) -> dict[str, str]:
        return {"user": user, "token": str(current_request().access_token)}

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("secret detail")

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with run_uvicorn(build()) as url:
        yield url


def test_dependency_injects_the_request_context(server: str) -> None:
    r = httpx.get(f"{server}/payments/p-7", headers={"X-Request-ID": "fa-1"})
    assert r.json() == {"id": "p-7", "request_id": "fa-1", "route": "/payments/{payment_id}"}
    assert r.headers["x-request-id"] == "fa-1"


def test_sync_endpoint_in_threadpool_sees_its_request(server: str) -> None:
    r = httpx.get(f"{server}/sync")
    assert r.json() == {"request_id": r.headers["x-request-id"], "same": True}
    assert HEX32.fullmatch(r.headers["x-request-id"])


def test_async_on_request_hook_and_rejection(server: str) -> None:
    ok = httpx.get(f"{server}/me", headers={"Authorization": "Bearer abcdef"})
    assert ok.json() == {"user": "user-abc", "token": "abcdef"}
    denied = httpx.get(f"{server}/me", headers={"X-Request-ID": "no-auth"})
    assert (denied.status_code, denied.text) == (403, "forbidden")
    assert denied.headers["x-request-id"] == "no-auth"


def test_unhandled_exception_is_a_500_with_the_id(server: str) -> None:
    r = httpx.get(f"{server}/boom", headers={"X-Request-ID": "fa-boom"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "fa-boom"
    assert "secret detail" not in r.text


def test_dependency_without_middleware_names_the_fix() -> None:
    with pytest.raises(NoRequestContext, match="RequestContextMiddleware"):
        get_request_context()
