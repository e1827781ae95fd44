"""Fixtures: a clean propagation configuration per test, echo servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asynclocal import propagation
from asynclocal.propagation._carrier import set_call_span_starter, set_trace_source
from tests.support.servers import run_uvicorn

from ._apps import echo_app


@pytest.fixture(autouse=True)
def clean_propagation() -> Iterator[None]:
    """Every test starts and ends with the defaults: continuation on, no client integration."""
    propagation.reset_config()
    propagation.install()
    yield
    propagation.install()
    set_trace_source(None)
    set_call_span_starter(None)
    propagation.reset_config()
    from asynclocal.integrations import aiohttp_client, httpx, requests

    httpx.uninstall()
    requests.uninstall()
    aiohttp_client.uninstall()
    try:
        from asynclocal.integrations import opentelemetry
    except ImportError:
        return
    opentelemetry.uninstall()


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """An allow-listed downstream that echoes the headers it received."""
    with run_uvicorn(echo_app()) as url:
        yield url


@pytest.fixture(scope="module")
def third_party_url() -> Iterator[str]:
    """Another echo server standing for a third party (never a propagation target)."""
    with run_uvicorn(echo_app()) as url:
        yield url
