"""FastAPI, Flask, aiohttp and Django setups as documented, each behind a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from asynclocal import current_request, request_id
from asynclocal.request import RequestContext
from asynclocal.web.fastapi import RequestContextDep  # module level: FastAPI resolves it
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress
from tests.web._apps import flask_app

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- other frameworks


def test_fastapi_install_and_dependency() -> None:
    from fastapi import Depends, FastAPI

    from asynclocal.web.fastapi import get_request_context, install

    seen: list[str | None] = []

    def load_user(ctx: RequestContext) -> None:
        auth = ctx.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            ctx.access_token, ctx.user = auth[7:], {"id": "u-" + auth[7:10]}

    app = FastAPI()
    install(app, on_request=load_user)

    def sync_dep(ctx: RequestContextDep) -> str:
        seen.append(request_id())
        return ctx.request_id

    @app.get("/payments/{pid}")
    async def payment(pid: str, ctx: RequestContextDep) -> dict[str, Any]:
        return {"id": ctx.request_id, "route": ctx.route, "user": ctx.user_id}

    @app.get("/sync/{pid}")
    def sync_payment(pid: str, dep_id: str = Depends(sync_dep)) -> dict[str, Any]:
        ctx = get_request_context()
        assert "tok-secret-value" not in repr(ctx)
        return {"id": request_id(), "dep": dep_id}

    with run_uvicorn(app) as base, httpx.Client(base_url=base) as c:
        r = c.get(
            "/payments/7",
            headers={"X-Request-ID": "fa-1", "Authorization": "Bearer tok-secret-value"},
        )
        assert r.headers["x-request-id"] == "fa-1"
        assert r.json() == {"id": "fa-1", "route": "/payments/{pid}", "user": "u-tok"}
        r = c.get(
            "/sync/7", headers={"X-Request-ID": "fa-2", "Authorization": "Bearer tok-secret-value"}
        )
        assert r.json() == {"id": "fa-2", "dep": "fa-2"}
        r = c.get("/nope", headers={"X-Request-ID": "fa-3"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == "fa-3"
    assert seen == ["fa-2"]


def test_flask_extension_init_app() -> None:
    with run_waitress(flask_app(), threads=4) as base, httpx.Client(base_url=base) as c:
        r = c.get("/users/ann", headers={"X-Request-ID": "fl-1", "X-Tenant": "t9"})
        assert r.headers["x-request-id"] == "fl-1"
        assert r.json() == {"id": "fl-1", "route": "/users/<name>", "tenant": "t9", "name": "ann"}
        r = c.get("/missing", headers={"X-Request-ID": "fl-2"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == "fl-2"
        r = httpx.get(base + "/boom", headers={"X-Request-ID": "fl-3"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "fl-3"
        assert "flask detail" not in r.text
        r = c.get("/users/x", headers={"X-Request-ID": "fl-4", "X-Deny": "1"})
        assert (r.status_code, r.text) == (403, "go away")
        assert r.headers["x-request-id"] == "fl-4"


def test_aiohttp_setup() -> None:
    from aiohttp import web

    from asynclocal.web.aiohttp import setup

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0)
        ctx = current_request()
        return web.json_response({"id": ctx.request_id, "route": ctx.route})

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(f"id={request_id()}".encode())
        await resp.write_eof()
        return resp

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("aiohttp detail")

    app = web.Application()
    setup(app)
    app.router.add_get("/users/{name}", handler)
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/boom", boom)
    with run_aiohttp(app) as base, httpx.Client(base_url=base) as c:
        r = c.get("/users/ann", headers={"X-Request-ID": "ah-1"})
        assert r.headers["x-request-id"] == "ah-1"
        assert r.json() == {"id": "ah-1", "route": "/users/{name}"}
        r = c.get("/streamed", headers={"X-Request-ID": "ah-2"})
        assert r.headers["x-request-id"] == "ah-2"
        assert r.text == "id=ah-2"
        r = c.get("/missing", headers={"X-Request-ID": "ah-3"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == "ah-3"
        r = httpx.get(base + "/boom", headers={"X-Request-ID": "ah-4"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "ah-4"
        assert "aiohttp detail" not in r.text


# Django: URLconf in this module (ROOT_URLCONF = __name__).


def _django_view(request: Any, name: str) -> Any:
    from django.http import JsonResponse

    ctx = current_request()
    return JsonResponse({"id": ctx.request_id, "route": ctx.route, "user": ctx.user_id})


async def _django_async_view(request: Any, name: str) -> Any:
    from django.http import JsonResponse

    await asyncio.sleep(0)
    return JsonResponse({"id": request_id(), "route": current_request().route})


def _django_boom(request: Any) -> Any:
    raise RuntimeError("django detail")


def django_load_user(ctx: RequestContext) -> None:
    ctx.user = {"id": "dj-user"}


def _urlpatterns() -> list[Any]:
    from django.urls import path

    return [
        path("sync/<str:name>", _django_view),
        path("async/<str:name>", _django_async_view),
        path("boom", _django_boom),
    ]


def __getattr__(name: str) -> Any:  # lazy `urlpatterns` for Django's URL resolver
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


@pytest.fixture(scope="module")
def django_configured() -> Iterator[None]:
    import django
    from django.conf import settings
    from django.test import override_settings

    values: dict[str, Any] = {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1"],
        "ROOT_URLCONF": __name__,
        "MIDDLEWARE": ["asynclocal.web.django.RequestContextMiddleware"],
        "ASYNCLOCAL_REQUEST_CONTEXT": {
            "on_request": f"{__name__}.django_load_user",
            "header": "X-Request-ID",
            "trusted_proxies": ["127.0.0.0/8"],
        },
    }
    if not settings.configured:
        settings.configure(SECRET_KEY="tests-only", INSTALLED_APPS=[], USE_TZ=True, **values)
        django.setup()
    with override_settings(**values):
        yield


@pytest.mark.parametrize("kind", ["wsgi", "asgi", "wsgi-wrapped", "asgi-wrapped"])
def test_django_settings_and_middleware(kind: str, django_configured: None) -> None:
    # "-wrapped": the whole application also wrapped in asynclocal's WSGI/ASGI
    # middleware; the MIDDLEWARE entry must join that context, not start a second.
    from asynclocal.web.asgi import RequestContextMiddleware as AsgiMiddleware
    from asynclocal.web.wsgi import RequestContextMiddleware as WsgiMiddleware

    server: Any
    if kind.startswith("wsgi"):
        from django.core.wsgi import get_wsgi_application

        wsgi_app: Any = get_wsgi_application()
        if kind.endswith("wrapped"):
            wsgi_app = WsgiMiddleware(wsgi_app, on_request=django_load_user)
        server = run_waitress(wsgi_app, threads=4)
    else:
        from django.core.asgi import get_asgi_application

        asgi_app: Any = get_asgi_application()
        if kind.endswith("wrapped"):
            asgi_app = AsgiMiddleware(asgi_app, on_request=django_load_user)
        server = run_uvicorn(asgi_app)
    with server as base, httpx.Client(base_url=base) as c:
        r = c.get("/sync/fresh")
        assert len(r.headers.get_list("x-request-id")) == 1
        assert r.json()["id"] == r.headers["x-request-id"]
        r = c.get("/sync/ann", headers={"X-Request-ID": f"dj-{kind}-1"})
        assert r.headers["x-request-id"] == f"dj-{kind}-1"
        assert r.json() == {"id": f"dj-{kind}-1", "route": "sync/<str:name>", "user": "dj-user"}
        r = c.get("/async/bob", headers={"X-Request-ID": f"dj-{kind}-2"})
        assert r.json() == {"id": f"dj-{kind}-2", "route": "async/<str:name>"}
        r = c.get("/missing", headers={"X-Request-ID": f"dj-{kind}-3"})
        assert r.status_code == 404
        assert r.headers["x-request-id"] == f"dj-{kind}-3"
        r = httpx.get(base + "/boom", headers={"X-Request-ID": f"dj-{kind}-4"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == f"dj-{kind}-4"
        assert "django detail" not in r.text
