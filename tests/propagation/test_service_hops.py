"""One request through two services.

Service A (Starlette under uvicorn, the ASGI middleware, the httpx integration with
B as its only target, the OpenTelemetry SDK with an in-memory exporter) calls
service B (Flask under waitress); ids, trace, baggage and secrets are checked on both
sides and in the JSON logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import asynclocal
from asynclocal import current_request, propagation, with_request_context
from asynclocal.integrations import httpx as al_httpx
from asynclocal.integrations import opentelemetry as al_otel
from asynclocal.propagation import extract, inject
from asynclocal.web.flask import RequestContextExtension
from asynclocal.web.starlette import install as install_starlette
from tests.support.logs import JsonLines, capture_json_lines
from tests.support.servers import run_uvicorn, run_waitress

pytestmark = pytest.mark.timeout(60)

HEX = set("0123456789abcdef")


def _seen() -> dict[str, Any]:
    ctx = current_request()
    return {
        "request_id": ctx.request_id,
        "root": ctx.root_request_id,
        "parent": ctx.parent_request_id,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
        "tenant": ctx.get("tenant"),
        "access_token": ctx.access_token,
    }


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    with capture_json_lines("hops.a", "hops.b") as lines:
        yield lines


@pytest.fixture
def clean_config() -> Iterator[None]:
    propagation.reset_config()
    try:
        yield
    finally:
        propagation.reset_config()
        al_httpx.uninstall()


def _service_b() -> Flask:
    app = Flask("hops_b")
    log = logging.getLogger("hops.b")

    @app.get("/b")
    def b() -> Any:
        seen = _seen()
        log.info("b handled")
        return jsonify({**seen, "headers": dict(current_request().headers)})

    RequestContextExtension(app)
    return app


def _service_a(b_url: str, per_client_targets: list[str] | None = None) -> Starlette:
    log = logging.getLogger("hops.a")

    async def a(request: Request) -> JSONResponse:
        await asyncio.sleep(random.random() * 0.02)
        ctx = current_request()
        tenant = request.query_params.get("tenant")
        if tenant:
            ctx.set("tenant", tenant)
        ctx.access_token = "secret-token-a"
        log.info("a before call")
        if per_client_targets is None:
            async with httpx.AsyncClient() as client:
                answer = (await client.get(f"{b_url}/b", timeout=10)).json()
        else:
            async with al_httpx.instrument(
                httpx.AsyncClient(), targets=per_client_targets
            ) as client:
                answer = (await client.get(f"{b_url}/b", timeout=10)).json()
        log.info("a after call")
        return JSONResponse({"a": _seen(), "b": answer})

    app = Starlette(routes=[Route("/a", a)])
    install_starlette(app)
    return app


@dataclass
class _Otel:
    exporter: InMemorySpanExporter


@pytest.fixture
def otel() -> Iterator[_Otel]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    al_otel.install(start_span=True, tracer_provider=provider)
    try:
        yield _Otel(exporter)
    finally:
        al_otel.uninstall()
        provider.shutdown()


def _hostport(url: str) -> str:
    return url.split("://", 1)[1]


def test_continuation_is_on_after_import() -> None:
    assert propagation.installed(), "import asynclocal must install continuation by default"
    assert asynclocal.propagation is propagation


def test_a_to_b_one_trace_one_chain_in_otel_and_json_logs(
    clean_config: None, otel: _Otel, json_logs: JsonLines
) -> None:
    with run_waitress(_service_b()) as b_url:
        al_httpx.install(targets=[_hostport(b_url)])
        with run_uvicorn(_service_a(b_url)) as a_url:

            def one(i: int) -> tuple[dict[str, Any], httpx.Response]:
                r = httpx.get(f"{a_url}/a", timeout=20)
                return r.json(), r

            with ThreadPoolExecutor(10) as pool:
                results = list(pool.map(one, range(20)))

    a_ids = set()
    for body, response in results:
        a, b = body["a"], body["b"]
        assert response.status_code == 200
        assert response.headers["x-request-id"] == a["request_id"]
        # A started the chain: it is its own root, with no parent.
        assert a["root"] == a["request_id"]
        assert a["parent"] is None
        assert a["trace_id"]
        assert len(a["trace_id"]) == 32
        assert set(a["trace_id"]) <= HEX
        # B is a fresh hop of the same chain and the same trace.
        assert b["request_id"] != a["request_id"]
        assert b["parent"] == a["request_id"]
        assert b["root"] == a["request_id"]
        assert b["trace_id"] == a["trace_id"]
        assert b["span_id"] != a["span_id"]
        # Secrets never travel.
        assert "authorization" not in b["headers"]
        assert b["access_token"] is None
        a_ids.add(a["request_id"])
    assert len(a_ids) == 20

    # OpenTelemetry: one trace per request; A's server span -> A's CLIENT span
    # for the call -> B's server span.
    spans = otel.exporter.get_finished_spans()
    by_trace: dict[str, list[Any]] = {}
    for span in spans:
        by_trace.setdefault(format(span.context.trace_id, "032x"), []).append(span)
    for body, _ in results:
        a, b = body["a"], body["b"]
        three = by_trace[a["trace_id"]]
        assert len(three) == 3, [s.name for s in three]
        span_a = next(s for s in three if format(s.context.span_id, "016x") == a["span_id"])
        span_b = next(s for s in three if format(s.context.span_id, "016x") == b["span_id"])
        call = next(s for s in three if s not in (span_a, span_b))
        assert call.parent is not None
        assert span_b.parent is not None
        assert call.parent.span_id == span_a.context.span_id
        assert span_b.parent.span_id == call.context.span_id

    # JSON logs: every line of both services carries its own request's trace and chain.
    by_request = {line["request_id"]: line for line in json_logs.lines}
    assert len(json_logs.lines) == 60
    for body, _ in results:
        a, b = body["a"], body["b"]
        a_lines = [ln for ln in json_logs.lines if ln["request_id"] == a["request_id"]]
        assert [ln["message"] for ln in a_lines] == ["a before call", "a after call"]
        for ln in a_lines:
            assert ln["trace_id"] == a["trace_id"]
            assert ln["root_request_id"] == a["request_id"]
        b_line = by_request[b["request_id"]]
        assert b_line["name"] == "hops.b"
        assert b_line["trace_id"] == a["trace_id"]
        assert b_line["root_request_id"] == a["request_id"]
        assert b_line["parent_request_id"] == a["request_id"]


def test_without_targets_nothing_leaks(clean_config: None) -> None:
    propagation.configure(baggage_fields=["tenant"])
    with run_waitress(_service_b()) as b_url:
        al_httpx.install()  # no targets anywhere: the default allow-list is empty
        with run_uvicorn(_service_a(b_url)) as a_url:
            body = httpx.get(f"{a_url}/a", params={"tenant": "acme"}, timeout=20).json()
    a, b = body["a"], body["b"]
    for header in (
        "x-request-id",
        "x-root-request-id",
        "traceparent",
        "tracestate",
        "baggage",
        "authorization",
    ):
        assert header not in b["headers"], header
    assert b["root"] == b["request_id"]
    assert b["parent"] is None
    assert b["trace_id"] != a["trace_id"]
    assert b["tenant"] is None


def test_allow_listed_baggage_travels_but_secrets_do_not(clean_config: None) -> None:
    propagation.configure(baggage_fields=["tenant"])
    with run_waitress(_service_b()) as b_url:
        a_app = _service_a(b_url, per_client_targets=[_hostport(b_url)])
        with run_uvicorn(a_app) as a_url:
            body = httpx.get(f"{a_url}/a", params={"tenant": "acme"}, timeout=20).json()
        # A caller cannot set arbitrary or secret fields through baggage.
        forged = httpx.get(
            f"{b_url}/b",
            headers={"baggage": "access_token=stolen,role=admin,tenant=t9"},
            timeout=10,
        ).json()
    a, b = body["a"], body["b"]
    assert b["tenant"] == "acme"
    assert b["parent"] == a["request_id"]
    assert b["trace_id"] == a["trace_id"]
    assert "secret-token-a" not in json.dumps(b["headers"])
    assert forged["tenant"] == "t9"
    assert forged["access_token"] is None


GARBAGE: list[dict[str, Any]] = [
    {"traceparent": "garbage", "tracestate": "x=1", "baggage": "%%%;;==,=,,"},
    {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
    {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
    {"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"},
    {"traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"},
    {"x-request-id": "a\r\nSet-Cookie: x=1", "x-root-request-id": "\x00"},
    {"x-request-id": "é" * 10, "baggage": "k=" + "v" * 10000},
    {"traceparent": 5, "baggage": None, "x-request-id": b"bytes"},  # not even strings
    {},
]


@pytest.mark.parametrize("carrier", GARBAGE)
def test_extract_of_garbage_never_raises_and_starts_fresh(carrier: dict[str, Any]) -> None:
    propagated = extract(carrier)
    assert propagated.trace_id is None
    assert propagated.request_id is None
    assert propagated.root_request_id is None
    seen = with_request_context(propagated, _seen)
    assert seen["request_id"]
    assert seen["root"] == seen["request_id"]
    assert seen["parent"] is None
    fresh = seen["trace_id"]
    assert fresh is None or (len(fresh) == 32 and fresh != "0" * 32)


def test_future_traceparent_version_is_accepted_per_w3c() -> None:
    # W3C Trace Context §3.2.4: a higher version is parsed for the version-00 fields.
    header = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"
    propagated = extract({"traceparent": header})
    assert propagated.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert propagated.parent_span_id == "00f067aa0ba902b7"


def test_oversized_baggage_is_cut_to_w3c_limits() -> None:
    propagation.configure(baggage_fields=["tenant"])
    try:
        members = ",".join(f"k{i}=v{i}" for i in range(400))
        propagated = extract({"baggage": "tenant=t1," + members})
        assert 0 < len(propagated.baggage) <= 180
        assert propagated.baggage.get("tenant") == "t1"
        big = extract({"baggage": ",".join(f"k{i}={'x' * 200}" for i in range(100))})
        size = len(",".join(f"{k}={v}" for k, v in big.baggage.items()))
        assert 0 < size <= 8192
    finally:
        propagation.reset_config()


def test_garbage_headers_through_a_real_middleware_get_200() -> None:
    with run_waitress(_service_b()) as b_url:
        r = httpx.get(
            f"{b_url}/b",
            headers={
                "traceparent": "00-zz-yy-01",
                "baggage": ";;;=,%ZZ=%",
                "x-root-request-id": "!!",
            },
            timeout=10,
        )
    assert r.status_code == 200
    seen = r.json()
    assert seen["root"] == seen["request_id"]
    assert seen["parent"] is None
    assert r.headers["x-request-id"] == seen["request_id"]


def test_with_request_context_of_extract_continues_the_hop() -> None:
    caller = asynclocal.RequestContext("caller-1")
    headers: dict[str, str] = {}
    asynclocal.request_storage.run(caller, inject, headers)
    assert headers["x-request-id"] == "caller-1"
    assert "traceparent" in headers  # a request without a trace gets one at its first inject
    trace_id = headers["traceparent"].split("-")[1]

    seen = with_request_context(extract(headers), _seen)
    assert seen["parent"] == "caller-1"
    assert seen["root"] == "caller-1"
    assert seen["request_id"] not in (None, "caller-1")
    assert seen["trace_id"] == trace_id
    assert seen["span_id"] != headers["traceparent"].split("-")[2]

    async def handler() -> dict[str, Any]:
        await asyncio.sleep(0)
        return _seen()

    seen_async = asyncio.run(with_request_context(extract(headers), handler))
    assert seen_async["parent"] == "caller-1"
    assert seen_async["trace_id"] == trace_id
    assert seen_async["request_id"] != seen["request_id"]


def test_reuse_request_id_keeps_one_id() -> None:
    propagation.configure(reuse_request_id=True)
    try:
        seen = with_request_context(extract({"x-request-id": "keep-me"}), _seen)
    finally:
        propagation.reset_config()
    assert seen["request_id"] == "keep-me"


def test_gateway_id_is_adopted_and_asynclocal_caller_id_becomes_parent() -> None:
    with run_waitress(_service_b()) as b_url:
        gateway = httpx.get(f"{b_url}/b", headers={"x-request-id": "gw-1"}, timeout=10)
        hop = httpx.get(
            f"{b_url}/b",
            headers={"x-request-id": "caller-9", "x-root-request-id": "root-9"},
            timeout=10,
        )
    g = gateway.json()
    assert (g["request_id"], g["root"], g["parent"]) == ("gw-1", "gw-1", None)
    assert gateway.headers["x-request-id"] == "gw-1"
    h = hop.json()
    assert h["request_id"] not in ("caller-9", "root-9")
    assert (h["root"], h["parent"]) == ("root-9", "caller-9")
    assert hop.headers["x-request-id"] == h["request_id"]


def test_uninstall_opts_out_of_continuation() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {
        "x-request-id": "caller-1",
        "x-root-request-id": "root-1",
        "traceparent": traceparent,
    }
    propagation.uninstall()
    try:
        assert not propagation.installed()
        with run_waitress(_service_b()) as b_url:
            off = httpx.get(f"{b_url}/b", headers=headers, timeout=10).json()
        assert off["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736"
        assert off["parent"] is None
        assert off["root"] in (None, off["request_id"])
    finally:
        propagation.install()
    with run_waitress(_service_b()) as b_url:
        on = httpx.get(f"{b_url}/b", headers=headers, timeout=10).json()
    assert on["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (on["root"], on["parent"]) == ("root-1", "caller-1")
