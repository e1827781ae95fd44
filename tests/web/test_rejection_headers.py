"""`RequestRejected.headers` reach the client from every integration, next to the request id.

Each framework serves the same four rejections on 127.0.0.1: `rbac.Unauthenticated`
(401 + ``WWW-Authenticate: Bearer``), `auth.TokenRefreshError` (401 + the RFC 6750
``invalid_token`` challenge), a 429 subclass whose class-level ``Retry-After: 3``
applies, and the same subclass raised with per-instance headers that replace it.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from asynclocal.patterns.auth import TokenRefreshError
from asynclocal.patterns.rbac import Unauthenticated
from asynclocal.request import RequestRejected
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress


class SlowDown(RequestRejected):
    status_code = 429
    public_message = "Too Many Requests"
    headers = [("Retry-After", "3")]  # type: ignore[assignment]  # a list: normalised


def _raise(kind: str) -> None:
    if kind == "unauth":
        raise Unauthenticated("no user on this request")
    if kind == "refresh":
        raise TokenRefreshError("the token endpoint refused the refresh")
    if kind == "slow":
        raise SlowDown("quota exhausted")
    raise SlowDown("quota exhausted", headers=[("Retry-After", "7"), ("X-Quota", "0")])


KINDS = ("unauth", "refresh", "slow", "slow-instance")

#: kind -> (status, body, {header: [values]}), headers absent from a response map to [].
EXPECTED: dict[str, tuple[int, str, dict[str, list[str]]]] = {
    "unauth": (401, "Unauthorized", {"www-authenticate": ["Bearer"], "retry-after": []}),
    "refresh": (
        401,
        "Unauthorized",
        {"www-authenticate": ['Bearer error="invalid_token"'], "retry-after": []},
    ),
    "slow": (429, "Too Many Requests", {"retry-after": ["3"], "www-authenticate": []}),
    "slow-instance": (
        429,
        "Too Many Requests",
        {"retry-after": ["7"], "x-quota": ["0"], "www-authenticate": []},
    ),
}


def _check(base: str, prefix: str = "") -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for kind in KINDS:
            rid = f"rej-{kind}"
            r = client.get(f"{prefix}/{kind}", headers={"X-Request-ID": rid})
            status, body, headers = EXPECTED[kind]
            assert (kind, r.status_code, r.text) == (kind, status, body)
            assert r.headers.get_list("x-request-id") == [rid], kind
            for name, values in headers.items():
                assert r.headers.get_list(name) == values, (kind, name)


# -- the apps, one per integration ---------------------------------------------


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from asynclocal.web.starlette import install

    async def endpoint(request: Request) -> Any:
        _raise(request.path_params["kind"])

    app = Starlette(routes=[Route("/{kind}", endpoint)])
    install(app)
    return run_uvicorn(app)


def _fastapi() -> Any:
    from fastapi import FastAPI

    from asynclocal.web.fastapi import install

    app = FastAPI()

    @app.get("/{kind}")
    async def endpoint(kind: str) -> None:
        _raise(kind)

    install(app)
    return run_uvicorn(app)


def _pure_asgi() -> Any:
    from asynclocal.web.asgi import RequestContextMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            _raise(scope["path"].lstrip("/"))

    return run_uvicorn(RequestContextMiddleware(app))


def _wsgi() -> Any:
    from asynclocal.web.wsgi import RequestContextMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        _raise(environ["PATH_INFO"].lstrip("/"))
        return []  # pragma: no cover - always raises

    return run_waitress(RequestContextMiddleware(app), threads=2)


def _flask() -> Any:
    from flask import Flask

    from asynclocal.web.flask import RequestContextExtension

    app = Flask("rejection_headers")

    @app.get("/<kind>")
    def endpoint(kind: str) -> str:
        _raise(kind)
        return ""  # pragma: no cover - always raises

    RequestContextExtension(app)
    return run_waitress(app, threads=2)


def _aiohttp() -> Any:
    from aiohttp import web

    from asynclocal.web.aiohttp import setup

    async def endpoint(request: web.Request) -> web.Response:
        _raise(request.match_info["kind"])
        return web.Response()  # pragma: no cover - always raises

    app = web.Application()
    app.router.add_get("/{kind}", endpoint)
    setup(app)
    return run_aiohttp(app)


def _litestar() -> Any:
    pytest.importorskip("litestar", reason="litestar is not installed (no wheel here)")
    from litestar import Litestar, Request, get

    from asynclocal.web.litestar import EXCEPTION_HANDLERS, wrap

    @get("/{kind:str}", sync_to_thread=False)
    def endpoint(request: Request[Any, Any, Any]) -> None:
        _raise(request.path_params["kind"])

    app = Litestar(route_handlers=[endpoint], exception_handlers={**EXCEPTION_HANDLERS})
    return run_uvicorn(wrap(app))


SERVERS: dict[str, Callable[[], Any]] = {
    "starlette": _starlette,
    "fastapi": _fastapi,
    "asgi": _pure_asgi,
    "wsgi": _wsgi,
    "flask": _flask,
    "aiohttp": _aiohttp,
    "litestar": _litestar,
}


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_rejection_headers_reach_the_client(name: str) -> None:
    with SERVERS[name]() as base:
        _check(base)


# -- Django, WSGI (waitress) and ASGI (uvicorn): this module is the URLconf ------


def _django_view(request: Any, kind: str) -> Any:
    _raise(kind)


try:
    from django.urls import path as _path

    urlpatterns = [_path("rej/<str:kind>", _django_view)]
except ImportError:  # pragma: no cover - django is a dev dependency
    urlpatterns = []


@contextlib.contextmanager
def _django(kind: str) -> Iterator[str]:
    import django
    from django.conf import settings
    from django.test import override_settings

    overrides: dict[str, Any] = {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "ROOT_URLCONF": __name__,
        "MIDDLEWARE": ["asynclocal.web.django.RequestContextMiddleware"],
        "ASYNCLOCAL_REQUEST_CONTEXT": {},
    }
    if not settings.configured:
        settings.configure(SECRET_KEY="tests-only", INSTALLED_APPS=[], USE_TZ=True, **overrides)
        django.setup()
    with override_settings(**overrides):
        if kind == "wsgi":
            from django.core.wsgi import get_wsgi_application

            server = run_waitress(get_wsgi_application(), threads=2)
        else:
            from django.core.asgi import get_asgi_application

            server = run_uvicorn(get_asgi_application())
        with server as base:
            yield base


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_django_rejection_headers(kind: str) -> None:
    with _django(kind) as base:
        _check(base, prefix="/rej")


# -- AWS Lambda: the proxy response dict ------------------------------------------


def test_lambda_rejection_carries_headers() -> None:
    from asynclocal.integrations.aws_lambda import lambda_handler

    class Ctx:
        def __init__(self, aws_request_id: str) -> None:
            self.aws_request_id = aws_request_id  # the invocation's request id

    @lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        _raise(event["path"].lstrip("/"))
        return {}  # pragma: no cover - always raises

    for kind in KINDS:
        event = {
            "path": f"/{kind}",
            "httpMethod": "GET",
            "headers": {},
            "requestContext": {"identity": {"sourceIp": "203.0.113.9"}},
        }
        result = handler(event, Ctx(f"lam-{kind}"))
        status, body, headers = EXPECTED[kind]
        assert (result["statusCode"], result["body"]) == (status, body), kind
        got = {k.lower(): v for k, v in result["headers"].items()}
        assert got["x-request-id"] == f"lam-{kind}"
        for name, values in headers.items():
            assert got.get(name) == (values[0] if values else None), (kind, name)


def test_lambda_keeps_its_request_id_over_a_rejection_header() -> None:
    from asynclocal.integrations.aws_lambda import lambda_handler

    class Ctx:
        aws_request_id = "lambda-req"

    @lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise SlowDown(headers=[("X-Request-ID", "forged"), ("Vary", "A"), ("vary", "B")])

    result = handler({"path": "/x", "httpMethod": "GET", "headers": {}}, Ctx())
    assert result["headers"]["X-Request-ID"] == "lambda-req"
    assert result["headers"]["Vary"] == "A, B"  # one value per key: joined


# -- the attribute itself -----------------------------------------------------------


def test_defaults_and_per_instance_values() -> None:
    assert RequestRejected.headers == ()
    assert RequestRejected("x").headers == ()
    assert Unauthenticated().headers == (("WWW-Authenticate", "Bearer"),)
    assert SlowDown.headers == (("Retry-After", "3"),)  # the class list became a tuple
    realm = Unauthenticated(headers={"WWW-Authenticate": 'Bearer realm="api"'})
    assert realm.headers == (("WWW-Authenticate", 'Bearer realm="api"'),)
    assert Unauthenticated.headers == (("WWW-Authenticate", "Bearer"),)  # class untouched
    assert RequestRejected("detail", headers=[]).args == ("detail",)
    restored = pickle.loads(pickle.dumps(SlowDown("q", headers=[("Retry-After", "9")])))
    assert restored.headers == (("Retry-After", "9"),)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ([("Retry-After", "3\r\nSet-Cookie: x=1")], ValueError),
        ([("X-Bad\n", "1")], ValueError),
        ([("", "1")], ValueError),
        ([("X-Nul", "a\x00b")], ValueError),
        ([("X-Caf", "caf\u00e9 \u2603")], ValueError),
        ("Retry-After: 3", TypeError),
        ([("Retry-After", 3)], TypeError),
        ([("Retry-After",)], TypeError),
        (42, TypeError),
    ],
)
def test_invalid_headers_are_refused(headers: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"RequestRejected\(headers=\.\.\.\)"):
        RequestRejected("x", headers=headers)


def test_invalid_class_headers_fail_at_definition() -> None:
    with pytest.raises(ValueError, match=r"Broken\.headers.*CR, LF"):

        class Broken(RequestRejected):
            headers = (("Retry-After", "1\n"),)
