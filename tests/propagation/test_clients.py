"""Outgoing HTTP clients: headers reach allow-listed targets only, redirects included.

Each client talks to real echo servers on 127.0.0.1: `echo_url` is the
allow-listed target, `third_party_url` stands for anything else.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import httpx
import pytest
import requests

from asynclocal import propagation
from asynclocal.integrations import aiohttp_client as al_aiohttp
from asynclocal.integrations import httpx as al_httpx
from asynclocal.integrations import requests as al_requests
from asynclocal.request import RequestContext, request_storage

PROPAGATED = ("x-request-id", "x-root-request-id", "traceparent", "baggage")


def new_ctx(n: int = 0) -> RequestContext:
    ctx = RequestContext(f"req-{n}", access_token=f"token-{n}", fields={"tenant": f"t{n}"})
    ctx.root_request_id = f"root-{n}"
    return ctx


def allow(url: str) -> None:
    host = urlsplit(url).netloc
    propagation.configure(targets=[host], baggage_fields=["tenant"])


# -- one "get(url) -> received headers" per client flavour -------------------


def httpx_sync(url: str) -> dict[str, str]:
    with al_httpx.instrument(httpx.Client(follow_redirects=True)) as client:
        received: dict[str, str] = client.get(url).json()["received"]
        return received


def requests_session(url: str) -> dict[str, str]:
    with al_requests.instrument(requests.Session()) as session:
        received: dict[str, str] = session.get(url, timeout=10).json()["received"]
        return received


async def httpx_async(url: str) -> dict[str, str]:
    async with al_httpx.instrument(httpx.AsyncClient(follow_redirects=True)) as client:
        received: dict[str, str] = (await client.get(url)).json()["received"]
        return received


async def aiohttp_session(url: str) -> dict[str, str]:
    session = aiohttp.ClientSession(middlewares=[al_aiohttp.middleware()])
    async with session, session.get(url) as response:
        received: dict[str, str] = (await response.json())["received"]
        return received


async def aiohttp_trace_config(url: str) -> dict[str, str]:
    session = aiohttp.ClientSession(trace_configs=[al_aiohttp.trace_config()])
    async with session, session.get(url) as response:
        received: dict[str, str] = (await response.json())["received"]
        return received


SYNC_CLIENTS = [httpx_sync, requests_session]
ASYNC_CLIENTS = [httpx_async, aiohttp_session]


def assert_propagated(received: dict[str, str], ctx: RequestContext) -> None:
    assert received["x-request-id"] == ctx.request_id
    assert received["x-root-request-id"] == ctx.root_request_id
    version, trace_id, parent_id, flags = received["traceparent"].split("-")
    # the request's trace, a span id of the call's own, sampled + random trace id
    assert (version, trace_id, flags) == ("00", ctx.trace_id, "03")
    assert parent_id != ctx.span_id
    assert len(parent_id) == 16
    assert received["baggage"] == f"tenant={ctx.get('tenant')}"
    assert "authorization" not in received  # the token is a secret


def assert_clean(received: dict[str, str]) -> None:
    leaked = {name: received[name] for name in PROPAGATED if name in received}
    assert leaked == {}
    assert "authorization" not in received


@pytest.mark.parametrize("get", SYNC_CLIENTS, ids=lambda f: f.__name__)
def test_sync_client_propagates_to_targets_only(
    get: Callable[[str], dict[str, str]], echo_url: str, third_party_url: str
) -> None:
    allow(echo_url)
    ctx = new_ctx()
    with request_storage.scope(ctx):
        assert_propagated(get(echo_url + "/x"), ctx)
        assert_clean(get(third_party_url + "/x"))
        # a target redirecting to a third party: the copied headers are stripped
        assert_clean(get(f"{echo_url}/redirect?to={quote(third_party_url + '/landed')}"))


@pytest.mark.parametrize("get", ASYNC_CLIENTS, ids=lambda f: f.__name__)
async def test_async_client_propagates_to_targets_only(
    get: Callable[[str], Awaitable[dict[str, str]]], echo_url: str, third_party_url: str
) -> None:
    allow(echo_url)
    ctx = new_ctx()
    with request_storage.scope(ctx):
        assert_propagated(await get(echo_url + "/x"), ctx)
        assert_clean(await get(third_party_url + "/x"))
        assert_clean(await get(f"{echo_url}/redirect?to={quote(third_party_url + '/landed')}"))


async def test_aiohttp_trace_config_propagates_to_targets(
    echo_url: str, third_party_url: str
) -> None:
    allow(echo_url)
    ctx = new_ctx()
    with request_storage.scope(ctx):
        assert_propagated(await aiohttp_trace_config(echo_url + "/x"), ctx)
        assert_clean(await aiohttp_trace_config(third_party_url + "/x"))


def test_nothing_leaves_the_process_by_default(echo_url: str) -> None:
    propagation.configure(baggage_fields=["tenant"])  # targets left at the default: none
    with request_storage.scope(new_ctx()):
        assert_clean(httpx_sync(echo_url))
        assert_clean(requests_session(echo_url))


def test_outside_a_request_nothing_is_sent(echo_url: str) -> None:
    allow(echo_url)
    assert_clean(httpx_sync(echo_url))


def test_callers_own_headers_win(echo_url: str) -> None:
    allow(echo_url)
    with request_storage.scope(new_ctx()), al_httpx.instrument(httpx.Client()) as client:
        received = client.get(echo_url, headers={"X-Request-ID": "mine"}).json()["received"]
    assert received["x-request-id"] == "mine"


def test_forward_authorization_is_opt_in_and_target_only(
    echo_url: str, third_party_url: str
) -> None:
    allow(echo_url)
    propagation.configure(forward_authorization=True)
    with request_storage.scope(new_ctx(3)):
        assert httpx_sync(echo_url)["authorization"] == "Bearer token-3"
        assert requests_session(echo_url)["authorization"] == "Bearer token-3"
        assert "authorization" not in httpx_sync(third_party_url)


def test_per_client_targets_override_the_configuration(echo_url: str) -> None:
    propagation.configure(targets=["nowhere.invalid"])
    with request_storage.scope(new_ctx()):
        with al_httpx.instrument(httpx.Client(), targets=[urlsplit(echo_url).netloc]) as client:
            assert "x-request-id" in client.get(echo_url).json()["received"]
        assert_clean(httpx_sync(echo_url))
    with pytest.raises(ValueError, match="propagation target"):
        al_httpx.instrument(httpx.Client(), targets=["bad host name!"])


def test_install_covers_clients_created_afterwards(echo_url: str) -> None:
    allow(echo_url)
    al_httpx.install()
    al_requests.install()
    al_httpx.install()  # idempotent
    ctx = new_ctx(5)
    with request_storage.scope(ctx):
        assert httpx.get(echo_url).json()["received"]["x-request-id"] == "req-5"
        assert requests.get(echo_url, timeout=10).json()["received"]["x-request-id"] == "req-5"
        with httpx.Client() as client:
            assert len(client.event_hooks["request"]) == 1
    al_httpx.uninstall()
    al_requests.uninstall()
    with request_storage.scope(ctx):
        assert_clean(httpx.get(echo_url).json()["received"])
        assert_clean(requests.get(echo_url, timeout=10).json()["received"])


async def test_aiohttp_install_covers_new_sessions(echo_url: str) -> None:
    allow(echo_url)
    al_aiohttp.install()
    ctx = new_ctx(6)
    with request_storage.scope(ctx):
        async with aiohttp.ClientSession() as session, session.get(echo_url) as response:
            received: dict[str, Any] = (await response.json())["received"]
    assert received["x-request-id"] == "req-6"


async def test_concurrent_requests_each_send_their_own_ids(echo_url: str) -> None:
    allow(echo_url)

    async def one(n: int, client: httpx.AsyncClient) -> tuple[RequestContext, dict[str, str]]:
        ctx = new_ctx(n)
        with request_storage.scope(ctx):
            await asyncio.sleep(random.uniform(0, 0.02))
            received: dict[str, str] = (await client.get(echo_url)).json()["received"]
            return ctx, received

    async with al_httpx.instrument(httpx.AsyncClient()) as client:
        results = await asyncio.wait_for(asyncio.gather(*(one(n, client) for n in range(60))), 60)
    for ctx, received in results:
        assert_propagated(received, ctx)


def test_instrument_targets_win_over_install(echo_url: str) -> None:
    propagation.configure(targets=["nowhere.invalid"])
    al_httpx.install()
    al_requests.install()
    mine = [urlsplit(echo_url).netloc]
    with request_storage.scope(new_ctx(8)):
        with al_httpx.instrument(httpx.Client(), targets=mine) as client:
            assert len(client.event_hooks["request"]) == 1
            assert client.get(echo_url).json()["received"]["x-request-id"] == "req-8"
        session = al_requests.instrument(al_requests.instrument(requests.Session()), targets=mine)
        with session:
            received = session.get(echo_url, timeout=10).json()["received"]
        assert received["x-request-id"] == "req-8"
        # sessions and clients left alone follow the configured targets
        assert_clean(requests.get(echo_url, timeout=10).json()["received"])
        assert_clean(httpx.get(echo_url).json()["received"])


def test_an_empty_allow_list_is_reported_once(
    echo_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from asynclocal.propagation import _outgoing

    _outgoing._reset_empty_targets_warning()
    caplog.set_level(logging.WARNING, logger="asynclocal.propagation")
    with al_httpx.instrument(httpx.Client()) as client:
        client.get(echo_url + "/outside")  # outside a request nothing would be sent: no warning
        assert caplog.records == []
        with request_storage.scope(new_ctx()):
            for _ in range(3):
                assert "x-request-id" not in client.get(echo_url + "/x").json()["received"]
        with request_storage.scope(new_ctx(1)), requests.Session() as session:
            al_requests.instrument(session).get(echo_url + "/y")
    warnings = [r for r in caplog.records if r.name == "asynclocal.propagation"]
    assert len(warnings) == 1  # once per process, whichever client
    assert warnings[0].levelno == logging.WARNING
    assert "allow-list is empty" in warnings[0].getMessage()
    assert "configure(targets=" in warnings[0].getMessage()
    _outgoing._reset_empty_targets_warning()
