"""OpenTelemetry: one trace across two real services, and log lines that carry it.

Uses the OpenTelemetry SDK with an in-memory exporter (a private
TracerProvider, so the global one is left alone).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from asynclocal import propagation
from asynclocal.integrations import opentelemetry as al_otel
from asynclocal.logging import ContextFilter
from asynclocal.propagation import w3c
from asynclocal.request import RequestContext, request_storage, with_request_context
from tests.support.servers import run_uvicorn, run_waitress

from ._apps import logger, service_app, wsgi_service_app


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def logs() -> Iterator[Capture]:
    handler = Capture()
    handler.addFilter(ContextFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def test_one_trace_across_two_services_and_their_logs(
    provider: TracerProvider, exporter: InMemorySpanExporter, logs: Capture
) -> None:
    propagation.install()
    propagation.configure(targets=["127.0.0.1"])
    al_otel.install(start_span=True, tracer_provider=provider)
    with (
        run_uvicorn(service_app("B")) as b_url,
        run_uvicorn(service_app("A", lambda: b_url + "/b")) as a_url,
    ):
        answer: dict[str, Any] = httpx.get(a_url + "/a", timeout=20).json()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"GET /a", "GET", "GET /b"}
    a_span, call, b_span = spans["GET /a"], spans["GET"], spans["GET /b"]
    assert a_span.kind == b_span.kind == SpanKind.SERVER
    assert call.kind == SpanKind.CLIENT
    trace_id = trace.format_trace_id(a_span.context.trace_id)
    # one trace: A's server span -> A's CLIENT span for the call -> B's server span
    assert b_span.context.trace_id == call.context.trace_id == a_span.context.trace_id
    assert call.parent is not None
    assert b_span.parent is not None
    assert call.parent.span_id == a_span.context.span_id
    assert b_span.parent.span_id == call.context.span_id
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["http.request.method"] == "GET"
    assert a_span.parent is None
    # the request contexts expose the spans' ids
    a_ctx, b_ctx = answer["ctx"], answer["downstream"]["ctx"]
    assert a_ctx["trace_id"] == b_ctx["trace_id"] == trace_id
    assert a_ctx["span_id"] == trace.format_span_id(a_span.context.span_id)
    assert b_ctx["span_id"] == trace.format_span_id(b_span.context.span_id)
    assert b_ctx["parent_request_id"] == a_ctx["request_id"]
    assert b_span.attributes is not None
    assert b_span.attributes["asynclocal.request_id"] == b_ctx["request_id"]
    # both services' log lines carry the same trace id, each its own request id
    lines = {r.getMessage().split()[0]: r for r in logs.records}
    assert set(lines) == {"A", "B"}
    assert lines["A"].trace_id == lines["B"].trace_id == trace_id  # type: ignore[attr-defined]
    assert lines["A"].request_id == a_ctx["request_id"]  # type: ignore[attr-defined]
    assert lines["B"].request_id == b_ctx["request_id"]  # type: ignore[attr-defined]
    assert lines["B"].span_id == b_ctx["span_id"]  # type: ignore[attr-defined]


def test_request_inside_an_active_span_takes_its_ids(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    al_otel.install(tracer_provider=provider)  # no server span of our own: follow the active one
    tracer = provider.get_tracer("test")
    sent: list[str] = []
    with tracer.start_as_current_span("outer") as outer:

        def handler() -> RequestContext:
            ctx = request_storage.get_store()
            assert ctx is not None
            headers: dict[str, str] = {}
            span_id = propagation.inject(headers)
            assert headers["traceparent"].split("-")[2] == span_id != ctx.span_id
            sent.append(span_id)
            return ctx

        ctx = with_request_context({}, handler)
    assert ctx.trace_id == trace.format_trace_id(outer.get_span_context().trace_id)
    assert ctx.span_id == trace.format_span_id(outer.get_span_context().span_id)
    # the call's parent-id is a PRODUCER span of its own, a child of the active span
    produced = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER)
    assert trace.format_span_id(produced.context.span_id) == sent[0]
    assert produced.parent is not None
    assert produced.parent.span_id == outer.get_span_context().span_id


def test_without_client_spans_calls_still_get_distinct_parent_ids(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    al_otel.install(tracer_provider=provider, client_spans=False)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer") as outer:
        ctx = RequestContext("r1")
        with request_storage.scope(ctx):
            sent = {propagation.inject({}) for _ in range(3)}
    assert len(sent) == 3
    assert trace.format_span_id(outer.get_span_context().span_id) not in sent
    assert [s.name for s in exporter.get_finished_spans()] == ["outer"]
    with pytest.raises(TypeError, match="client_spans"):
        al_otel.install(client_spans="yes")  # type: ignore[arg-type]


def test_sync_trace_ids_follows_a_child_span(provider: TracerProvider) -> None:
    al_otel.install()
    tracer = provider.get_tracer("test")
    ctx = RequestContext("r1")
    with request_storage.scope(ctx):
        assert al_otel.sync_trace_ids() is False  # no span active
        with tracer.start_as_current_span("child") as child:
            assert al_otel.sync_trace_ids() is True
            # inject follows the active span's trace even before a sync
            headers: dict[str, str] = {}
            propagation.inject(headers)
    assert ctx.span_id == trace.format_span_id(child.get_span_context().span_id)
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert trace_id == ctx.trace_id
    assert parent_id != ctx.span_id  # the call's own span id


def test_without_otel_span_the_request_keeps_its_own_trace() -> None:
    al_otel.install()
    propagation.install()
    ctx = with_request_context({}, lambda: request_storage.get_store())
    assert ctx is not None
    assert ctx.trace_id is not None
    assert len(ctx.trace_id) == 32


def test_propagator_composes_with_opentelemetry(provider: TracerProvider) -> None:
    propagation.configure(baggage_fields=["tenant"])
    composite = CompositePropagator(
        [TraceContextTextMapPropagator(), al_otel.AsyncLocalPropagator()]
    )
    assert {"traceparent", "x-request-id", "baggage"} <= composite.fields
    tracer = provider.get_tracer("test")
    ctx = RequestContext("req-1", fields={"tenant": "acme"}, access_token="secret")
    carrier: dict[str, str] = {}
    with request_storage.scope(ctx), tracer.start_as_current_span("client") as span:
        otel_ctx = baggage.set_baggage("region", "eu")
        composite.inject(carrier, context=otel_ctx)
    assert carrier["traceparent"].split("-")[1] == trace.format_trace_id(
        span.get_span_context().trace_id
    )
    assert carrier["x-request-id"] == "req-1"
    assert w3c.parse_baggage(carrier["baggage"]) == {"region": "eu", "tenant": "acme"}
    assert "secret" not in repr(carrier)

    extracted = composite.extract(carrier, context=Context())
    propagated = al_otel.propagated_from(extracted)
    assert propagated is not None
    assert propagated.parent_request_id == "req-1"
    remote = trace.get_current_span(extracted).get_span_context()
    assert remote.is_remote
    assert remote.trace_id == span.get_span_context().trace_id


def test_propagator_with_its_own_trace_context() -> None:
    prop = al_otel.AsyncLocalPropagator(trace_context=True)
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    extracted = prop.extract({"traceparent": f"00-{trace_id}-{span_id}-01"})
    remote = trace.get_current_span(extracted).get_span_context()
    assert (remote.trace_id, remote.span_id) == (int(trace_id, 16), int(span_id, 16))
    junk = prop.extract({"traceparent": "junk", "baggage": "\x00"})
    assert not trace.get_current_span(junk).get_span_context().is_valid
    with pytest.raises(TypeError, match="bool"):
        al_otel.AsyncLocalPropagator(trace_context="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TracerProvider"):
        al_otel.install(tracer_provider="provider")  # type: ignore[arg-type]


def test_asgi_service_calling_a_wsgi_service_is_one_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter, logs: Capture
) -> None:
    propagation.install()
    propagation.configure(targets=["127.0.0.1"])
    al_otel.install(start_span=True, tracer_provider=provider)
    with (
        run_waitress(wsgi_service_app("W"), threads=1) as w_url,
        run_uvicorn(service_app("A", lambda: w_url + "/w")) as a_url,
    ):
        first: dict[str, Any] = httpx.get(a_url + "/a", timeout=20).json()
        # the same waitress thread serves a request that has no trace: a new root
        plain: dict[str, Any] = httpx.get(w_url + "/w", timeout=20).json()
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["GET", "GET /a", "GET /w", "GET /w"]
    a_span = next(s for s in spans if s.name == "GET /a")
    call = next(s for s in spans if s.name == "GET")
    w_spans = [s for s in spans if s.name == "GET /w"]
    child = next(s for s in w_spans if s.parent is not None)
    root = next(s for s in w_spans if s.parent is None)
    assert child.parent is not None
    assert call.parent is not None
    assert call.parent.span_id == a_span.context.span_id
    assert child.parent.span_id == call.context.span_id
    assert child.context.trace_id == a_span.context.trace_id
    assert root.context.trace_id != a_span.context.trace_id
    assert first["downstream"]["ctx"]["trace_id"] == first["ctx"]["trace_id"]
    assert plain["ctx"]["trace_id"] == trace.format_trace_id(root.context.trace_id)
    w_lines = [r for r in logs.records if r.getMessage().startswith("W ")]
    assert {r.trace_id for r in w_lines} == {  # type: ignore[attr-defined]
        first["ctx"]["trace_id"],
        plain["ctx"]["trace_id"],
    }
