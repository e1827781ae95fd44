"""OpenTelemetry: trace ids of the active span in the request context, a propagator, spans.

::

    from asynclocal.integrations import opentelemetry as al_otel

    al_otel.install()                  # request.trace_id/span_id follow the active span;
                                       # inject() writes the active span's traceparent
    al_otel.install(start_span=True)   # the middleware also starts a SERVER span per request

    # compose with OpenTelemetry's own propagators (put ours last):
    set_global_textmap(CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator(), AsyncLocalPropagator()]))

Needs the ``opentelemetry`` extra (``opentelemetry-api``; the SDK for exporting).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

try:
    from opentelemetry import baggage as otel_baggage
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import (
        CarrierT,
        Getter,
        Setter,
        TextMapPropagator,
        default_getter,
        default_setter,
    )
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
    from opentelemetry.trace.span import TraceState
    from opentelemetry.trace.status import Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.opentelemetry needs the 'opentelemetry' extra: "
        "pip install 'asynclocal[opentelemetry]'"
    ) from exc

from ..propagation import PropagatedContext, extract, get_config
from ..propagation._carrier import (
    ActiveSpan,
    CallKind,
    CallSpan,
    set_call_span_starter,
    set_trace_source,
    write_fields,
)
from ..request import (
    RequestContext,
    add_request_initializer,
    remove_request_initializer,
    request_storage,
)

__all__ = [
    "AsyncLocalPropagator",
    "active_span",
    "install",
    "propagated_from",
    "sync_trace_ids",
    "uninstall",
]

_PROPAGATED_KEY = otel_context.create_key("asynclocal-propagated")


def active_span(context: otel_context.Context | None = None) -> ActiveSpan | None:
    """The ids of the span active in `context` (default: current), or None when there is none."""
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    state = span_context.trace_state.to_header() if span_context.trace_state else None
    return ActiveSpan(
        trace.format_trace_id(span_context.trace_id),
        trace.format_span_id(span_context.span_id),
        int(span_context.trace_flags),
        state or None,
    )


def sync_trace_ids(request: RequestContext | None = None) -> bool:
    """Copy the active span's trace and span ids into the current (or given) request.

    Call it after starting a span of your own if log lines should carry that
    span's id. Returns False (changing nothing) when no span is active or no
    request is.
    """
    ctx = request if request is not None else request_storage.get_store()
    span = active_span()
    if ctx is None or span is None:
        return False
    ctx.trace_id = span.trace_id
    ctx.span_id = span.span_id
    return True


class AsyncLocalPropagator(TextMapPropagator):
    """An OpenTelemetry `TextMapPropagator` for the asynclocal request fields.

    `inject` writes the current request's id and root id headers and the
    allow-listed baggage fields (merged with the context's OpenTelemetry
    baggage, so it may replace `W3CBaggagePropagator` or follow it);
    ``traceparent`` only when `trace_context=True` (leave it False when
    OpenTelemetry's `TraceContextTextMapPropagator` is in the composite).
    `extract` stores the `PropagatedContext` in the returned context (read it
    with `propagated_from`) and, with `trace_context=True`, the remote span as
    parent. Header names and allow-lists come from
    `asynclocal.propagation.configure`.
    """

    def __init__(self, *, trace_context: bool = False) -> None:
        if not isinstance(trace_context, bool):
            raise TypeError("AsyncLocalPropagator(trace_context=) must be a bool")
        self._trace_context = trace_context

    def extract(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> otel_context.Context:
        if context is None:
            context = otel_context.Context()
        headers: dict[str, str] = {}
        try:
            for name in self.fields:
                values = getter.get(carrier, name)
                if values:
                    headers[name] = values[0] if isinstance(values, (list, tuple)) else values
        except Exception:  # a broken carrier must not break the request
            return context
        propagated = extract(headers)
        context = otel_context.set_value(_PROPAGATED_KEY, propagated, context)
        if self._trace_context and propagated.trace_id and propagated.parent_span_id:
            state = (
                TraceState.from_header([propagated.tracestate]) if propagated.tracestate else None
            )
            parent = SpanContext(
                trace_id=int(propagated.trace_id, 16),
                span_id=int(propagated.parent_span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(propagated.trace_flags),
                trace_state=state,
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent), context)
        return context

    def inject(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        headers: dict[str, str] = {}
        entries = otel_baggage.get_all(context)
        write_fields(
            headers,
            request_storage.get_store(),
            trace_context=self._trace_context,
            span=active_span(context) if self._trace_context else None,
            baggage={k: str(v) for k, v in entries.items()} if entries else None,
        )
        for name, value in headers.items():
            setter.set(carrier, name, value)

    @property
    def fields(self) -> set[str]:
        return set(get_config().header_names()) - (
            set() if self._trace_context else {"traceparent", "tracestate"}
        )


def propagated_from(context: otel_context.Context | None = None) -> PropagatedContext | None:
    """The `PropagatedContext` that `AsyncLocalPropagator.extract` stored in `context`."""
    value = otel_context.get_value(_PROPAGATED_KEY, context)
    return value if isinstance(value, PropagatedContext) else None


# -- install: trace source, initializer, optional server span ---------------

_lock = threading.Lock()
_settings: dict[str, Any] = {}


class _ServerSpan:
    """Ends a request's span once: at response start, or when the context is collected."""

    __slots__ = ("__weakref__", "ended", "span", "token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span = span
        self.token = token
        self.ended = False

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.span.end()
        runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
        try:
            # Detached quietly: the response may start in another context (a
            # streaming task), where ContextVar.reset raises; that context dies
            # with the request anyway.
            if runtime is not None:
                runtime.detach(self.token)
        except Exception:
            pass


def _span_name(ctx: RequestContext) -> str:
    target = ctx.route or ctx.path or "/"
    return f"{ctx.method} {target}".strip()


def _start_server_span(ctx: RequestContext, tracer: trace.Tracer) -> None:
    # Start from an empty context: a thread reused by a WSGI server must never
    # parent this request's span on the previous request's.
    parent = propagate.extract(ctx.headers, context=otel_context.Context())
    span = tracer.start_span(
        _span_name(ctx),
        context=parent,
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": ctx.method or "_OTHER",
            "url.path": ctx.path,
            "asynclocal.request_id": ctx.request_id,
        },
    )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    holder = _ServerSpan(span, token)

    def on_response() -> list[tuple[str, str]]:
        holder.end()
        return []

    ctx.on_response(on_response)
    weakref.finalize(ctx, _ServerSpan.end, holder)


_KINDS = {"client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER}


def _start_call_span(
    name: str, kind: CallKind, attributes: Mapping[str, str | int]
) -> CallSpan | None:
    """A child of the active span for one outgoing call (its id is the call's parent-id)."""
    tracer = _settings.get("call_tracer")
    if tracer is None:
        return None
    span = tracer.start_span(name, kind=_KINDS.get(kind, SpanKind.CLIENT), attributes=attributes)
    ids = active_span(trace.set_span_in_context(span))
    if ids is None:
        span.end()
        return None

    def end(status: int | None, error: BaseException | None) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(Status(StatusCode.ERROR))
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    return CallSpan(ids, end)


def _initializer(ctx: RequestContext) -> None:
    try:
        tracer = _settings.get("tracer")
        in_span = trace.get_current_span().get_span_context().is_valid
        if tracer is not None and (_settings.get("always_start") or not in_span):
            _start_server_span(ctx, tracer)
        sync_trace_ids(ctx)
    except Exception:  # tracing must never fail the request
        pass


def install(
    *,
    start_span: bool = False,
    tracer_provider: trace.TracerProvider | None = None,
    always_start_span: bool = False,
    client_spans: bool = True,
) -> None:
    """Connect OpenTelemetry to the request context. Idempotent; call again to change options.

    After it: `asynclocal.propagation.inject` (and every HTTP client
    integration) writes the active span's trace context; every new request
    (through any middleware, `with_request_context` or the Lambda wrapper)
    gets the active span's trace/span ids in `trace_id`/`span_id`, which the
    logging integration prints. With `start_span=True`, a request that has no
    active span (no OpenTelemetry ASGI/WSGI instrumentation around it) gets a
    SERVER span, parented on the incoming ``traceparent`` through the global
    propagator, made current for the request and ended when the response
    starts (or when the request is dropped without a response).
    `always_start_span` starts one even inside an active span.

    With `client_spans` (the default), every outgoing call `inject` writes
    (each HTTP client request, each task message) gets a span of its own, a
    child of the active span: CLIENT for HTTP (ended when the response is
    in, with its status), PRODUCER for other carriers (ended at once). Its
    span id is the ``parent-id`` the callee receives. Turn it off when
    OpenTelemetry's own client instrumentation makes those spans; the calls
    still get distinct parent-ids, but no span is recorded for them.

    Raises:
        TypeError: `tracer_provider` is not an OpenTelemetry TracerProvider.
    """
    if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
        raise TypeError(
            "install(tracer_provider=) expects an opentelemetry TracerProvider, got "
            f"{type(tracer_provider).__name__}"
        )
    if not isinstance(client_spans, bool):
        raise TypeError("install(client_spans=) must be a bool")
    with _lock:
        _settings.clear()
        if start_span or always_start_span:
            _settings["tracer"] = trace.get_tracer("asynclocal", tracer_provider=tracer_provider)
            _settings["always_start"] = always_start_span
        if client_spans:
            _settings["call_tracer"] = trace.get_tracer(
                "asynclocal", tracer_provider=tracer_provider
            )
        set_trace_source(_trace_source)
        set_call_span_starter(_start_call_span if client_spans else None)
        add_request_initializer(_initializer)


def uninstall() -> None:
    """Undo `install()`. Idempotent."""
    with _lock:
        _settings.clear()
        set_trace_source(None)
        set_call_span_starter(None)
        remove_request_initializer(_initializer)


_trace_source: Callable[[], ActiveSpan | None] = active_span
