"""Every web setup call takes explicit, typed keyword options; a typo fails at the call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from asynclocal import with_request_context
from asynclocal.errors import ConfigurationError, UnknownOptionError
from asynclocal.request import RequestContextFactory, RequestIdPolicy


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    pass


def _wsgi_app(environ: Any, start_response: Any) -> list[bytes]:  # pragma: no cover
    return []


def _setups() -> list[tuple[str, Callable[..., Any], Callable[..., Any]]]:
    """(name, callable, call(**options)) for every public setup that takes options."""
    for framework in ("aiohttp", "flask", "litestar", "starlette"):
        pytest.importorskip(framework, reason=f"{framework} is not installed (no wheel here)")
    from aiohttp import web as aioweb
    from flask import Flask
    from litestar import Litestar
    from starlette.applications import Starlette

    from asynclocal.web import aiohttp, asgi, fastapi, flask, litestar, starlette, wsgi

    def asgi_mw(**o: Any) -> Any:
        return asgi.RequestContextMiddleware(_asgi_app, **o)

    def wsgi_mw(**o: Any) -> Any:
        return wsgi.RequestContextMiddleware(_wsgi_app, **o)

    def star(**o: Any) -> Any:
        return starlette.add_request_context(Starlette(), **o)

    def star_install(**o: Any) -> Any:
        return starlette.install(Starlette(), **o)

    def fast(**o: Any) -> Any:
        return fastapi.add_request_context(Starlette(), **o)

    def aio_setup(**o: Any) -> Any:
        return aiohttp.setup(aioweb.Application(), **o)

    def lite(**o: Any) -> Any:
        return litestar.wrap(Litestar(route_handlers=[]), **o)

    def flask_ext(**o: Any) -> Any:
        return flask.RequestContextExtension(Flask("t"), **o)

    def wrc(**o: Any) -> Any:
        return with_request_context({}, lambda: None, **o)

    return [
        ("asgi", asgi.RequestContextMiddleware, asgi_mw),
        ("wsgi", wsgi.RequestContextMiddleware, wsgi_mw),
        ("starlette", starlette.add_request_context, star),
        ("starlette.install", starlette.install, star_install),
        ("fastapi", fastapi.add_request_context, fast),
        ("aiohttp.setup", aiohttp.setup, aio_setup),
        ("aiohttp.make_middleware", aiohttp.make_middleware, aiohttp.make_middleware),
        ("litestar.wrap", litestar.wrap, lite),
        ("litestar.middleware", litestar.middleware, litestar.middleware),
        ("flask", flask.RequestContextExtension, flask_ext),
        ("factory", RequestContextFactory, RequestContextFactory),
        ("with_request_context", with_request_context, wrc),
    ]


@pytest.mark.parametrize("index", range(12))
def test_a_typo_names_the_option_and_the_valid_ones(index: int) -> None:
    name, target, call = _setups()[index]
    params = inspect.signature(target).parameters.values()
    assert not any(p.kind is p.VAR_KEYWORD for p in params), name
    assert {"on_request", "header", "trusted_proxies", "continue_trace"} <= {
        p.name for p in params
    }, name
    with pytest.raises(UnknownOptionError) as info:
        call(hedaer="X-Id")
    message = str(info.value)
    assert "'hedaer'" in message
    assert "did you mean 'header'" in message
    assert "trusted_proxies" in message
    assert "continue_trace" in message
    # One class for both habits: `except TypeError` and `except ConfigurationError`.
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ConfigurationError)


@pytest.mark.parametrize("index", range(12))
def test_the_options_work(index: int) -> None:
    _, _, call = _setups()[index]
    call(header="X-Correlation-ID", trusted_proxies=["10.0.0.0/8"], continue_trace=False)


def test_factory_and_options_do_not_mix() -> None:
    from asynclocal.web.asgi import RequestContextMiddleware

    with pytest.raises(TypeError, match="not both"):
        RequestContextMiddleware(_asgi_app, factory=RequestContextFactory(), header="X-A")
    with pytest.raises(TypeError, match="not both"):
        RequestContextFactory(policy=RequestIdPolicy(), header="X-A")


def test_bad_values_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="header"):
        RequestIdPolicy(header="X Bad")
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        RequestIdPolicy(trusted_proxies=["not-a-network"])


def test_django_settings_keys_are_checked() -> None:
    import django
    from django.conf import settings
    from django.test import override_settings

    if not settings.configured:
        settings.configure(SECRET_KEY="tests-only", INSTALLED_APPS=[], USE_TZ=True)
        django.setup()
    from asynclocal.web.django import RequestContextMiddleware

    def get_response(request: Any) -> Any:  # pragma: no cover
        return None

    with (
        override_settings(ASYNCLOCAL_REQUEST_CONTEXT={"trusted_proxy": ["10.0.0.0/8"]}),
        pytest.raises(ConfigurationError) as info,
    ):
        RequestContextMiddleware(get_response)
    assert "'trusted_proxy'" in str(info.value)
    assert "trusted_proxies" in str(info.value)
    with (
        override_settings(ASYNCLOCAL_REQUEST_CONTEXT={"on_request": "no.such.module.fn"}),
        pytest.raises(ConfigurationError, match="does not import"),
    ):
        RequestContextMiddleware(get_response)
    with (
        override_settings(ASYNCLOCAL_REQUEST_CONTEXT=["header"]),
        pytest.raises(ConfigurationError, match="must be a dict"),
    ):
        RequestContextMiddleware(get_response)
    with override_settings(
        ASYNCLOCAL_REQUEST_CONTEXT={"header": "X-Corr", "continue_trace": False}
    ):
        middleware = RequestContextMiddleware(get_response)
    assert middleware.factory.header == "X-Corr"
    assert middleware.factory.continue_trace is False


def test_propagation_configure_id_settings_are_deprecated() -> None:
    from asynclocal import propagation

    try:
        with pytest.deprecated_call(match="RequestIdPolicy"):
            propagation.configure(reuse_request_id=True)
        with pytest.deprecated_call(match="RequestIdPolicy"):
            propagation.configure(id_generator=lambda: "hop-1")
    finally:
        propagation.reset_config()


def test_propagation_install_sets_the_default_only_for_factories_that_do_not_say() -> None:
    from asynclocal import propagation

    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    unset, on, off = (
        RequestContextFactory(),
        RequestContextFactory(continue_trace=True),
        RequestContextFactory(continue_trace=False),
    )
    assert propagation.installed()
    try:
        propagation.uninstall()
        assert not propagation.installed()
        assert unset.from_headers(headers).trace_id != "0af7651916cd43dd8448eb211c80319c"
        assert on.from_headers(headers).trace_id == "0af7651916cd43dd8448eb211c80319c"
    finally:
        propagation.install()
    assert unset.from_headers(headers).trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert off.from_headers(headers).trace_id != "0af7651916cd43dd8448eb211c80319c"


def test_importing_asynclocal_installs_nothing() -> None:
    import subprocess
    import sys

    code = (
        "import asynclocal, asynclocal.web.asgi, asynclocal.propagation\n"
        "from asynclocal.request import _context\n"
        "assert _context._initializers == (), _context._initializers\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "ok"
