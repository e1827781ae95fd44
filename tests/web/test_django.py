"""Django: our MIDDLEWARE entry under WSGI (waitress) and ASGI (uvicorn); the ASGI middleware."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import django
import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from asynclocal.web.asgi import RequestContextMiddleware as AsgiMiddleware
from tests.support.servers import run_uvicorn, run_waitress
from tests.web.conftest import HEX32, HOSTILE_IDS, CapturedLogs, assert_not_echoed, raw_get

OURS = "asynclocal.web.django.RequestContextMiddleware"
TEST_SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
    "ROOT_URLCONF": "tests.web.django_app",
    "MIDDLEWARE": [OURS, "django.middleware.common.CommonMiddleware"],
    "ASYNCLOCAL_REQUEST_CONTEXT": {"on_request": "tests.web.django_app.load_user"},
}


@pytest.fixture(scope="module")
def django_settings() -> Iterator[None]:
    # Configured once per process; other test modules may have configured it
    # already, so every value this module needs is applied with override_settings.
    if not settings.configured:
        settings.configure(SECRET_KEY="tests-only", INSTALLED_APPS=[], USE_TZ=True, **TEST_SETTINGS)
        django.setup()
    with override_settings(**TEST_SETTINGS):
        yield


def _apps(kind: str) -> Any:
    if kind == "wsgi":
        from django.core.wsgi import get_wsgi_application

        return run_waitress(get_wsgi_application(), threads=8)
    from django.core.asgi import get_asgi_application

    return run_uvicorn(get_asgi_application())


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def server(request: pytest.FixtureRequest, django_settings: None) -> Iterator[str]:
    with _apps(request.param) as url:
        yield url


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_views_see_context_route_and_user(
    server: str, kind: str, captured_logs: CapturedLogs
) -> None:
    r = httpx.get(
        f"{server}/{kind}/zed",
        headers={"X-Request-ID": f"dj-{kind}"},
        cookies={"access_token": "t1"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["request_id"] == r.headers["x-request-id"] == f"dj-{kind}"
    assert body["route"] == f"{kind}/<str:name>"
    assert body["user"] == "dj-t1"
    assert captured_logs.lines_with(f"django {kind} zed") == [(f"dj-{kind}", f"django {kind} zed")]
    if kind == "sync":
        assert body["path"] == "/sync/zed"
        assert r.headers["x-view"] == "sync"


def test_500_404_and_rejection_carry_the_id(server: str, captured_logs: CapturedLogs) -> None:
    boom = httpx.get(f"{server}/boom", headers={"X-Request-ID": "dj-boom"})
    assert (boom.status_code, boom.headers["x-request-id"]) == (500, "dj-boom")
    assert "django detail" not in boom.text
    assert ("dj-boom", "django failing") in captured_logs.lines_with("django failing")
    missing = httpx.get(f"{server}/missing")
    assert missing.status_code == 404
    assert HEX32.fullmatch(missing.headers["x-request-id"])
    tea = httpx.get(f"{server}/teapot", headers={"X-Request-ID": "dj-tea"})
    assert (tea.status_code, tea.text, tea.headers["x-request-id"]) == (418, "teapot", "dj-tea")


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
@pytest.mark.parametrize("path", ["stream", "astream"])
def test_streaming_keeps_context(server: str, path: str) -> None:
    r = httpx.get(f"{server}/{path}", headers={"X-Request-ID": "dj-stream"})
    assert r.headers["x-request-id"] == "dj-stream"
    assert r.text.splitlines() == [f"{i}:dj-stream" for i in range(3)]


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=lambda b: repr(b[:20]))
def test_hostile_ids(server: str, captured_logs: CapturedLogs, hostile: bytes) -> None:
    r = raw_get(server, "/sync/h", [b"X-Request-ID: " + hostile])
    assert r.status in (200, 400, 431)
    if r.status == 200:
        assert json.loads(r.body)["request_id"] == r.header("x-request-id")
    assert_not_echoed(r, hostile, captured_logs)


def test_asgi_middleware_around_the_django_asgi_handler(django_settings: None) -> None:
    from django.core.asgi import get_asgi_application

    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"]):
        app = AsgiMiddleware(get_asgi_application(), header="X-Request-ID")
        with run_uvicorn(app) as url:
            ok = httpx.get(f"{url}/async/a", headers={"X-Request-ID": "dj-asgi"})
            boom = httpx.get(f"{url}/boom", headers={"X-Request-ID": "dj-asgi-boom"})
    assert ok.json()["request_id"] == ok.headers["x-request-id"] == "dj-asgi"
    assert (boom.status_code, boom.headers["x-request-id"]) == (500, "dj-asgi-boom")
