"""Out of the box, a hop continues its caller: no set-up call is needed."""

from __future__ import annotations

import asynclocal
from asynclocal import RequestContext, current_request, request_storage, with_request_context
from asynclocal.propagation import extract, inject, installed


def _caller_headers() -> tuple[RequestContext, dict[str, str]]:
    caller = RequestContext("caller-1", trace_id="a" * 32, span_id="b" * 16)
    headers: dict[str, str] = {}
    request_storage.run(caller, inject, headers)
    return caller, headers


def _seen() -> tuple[str, str | None, str | None, str | None]:
    ctx = current_request()
    return ctx.request_id, ctx.root_request_id, ctx.parent_request_id, ctx.trace_id


def test_continuation_is_installed_on_import() -> None:
    assert asynclocal.__name__ == "asynclocal"
    assert installed()


def test_with_request_context_starts_from_an_extracted_carrier() -> None:
    caller, headers = _caller_headers()
    rid, root, parent, trace = with_request_context(extract(headers), _seen)
    assert rid != caller.request_id
    assert (root, parent, trace) == ("caller-1", "caller-1", caller.trace_id)


def test_with_request_context_continues_from_plain_headers() -> None:
    caller, headers = _caller_headers()
    rid, root, parent, trace = with_request_context(headers, _seen)
    assert rid != caller.request_id
    assert (root, parent, trace) == ("caller-1", "caller-1", caller.trace_id)


def test_a_gateway_id_without_a_chain_is_adopted_as_is() -> None:
    rid, root, parent, _trace = with_request_context({"X-Request-ID": "gw-77"}, _seen)
    assert (rid, root, parent) == ("gw-77", "gw-77", None)


def test_with_request_context_accepts_a_ready_context() -> None:
    ready = RequestContext("ready-1", method="TASK", path="/jobs/sync")
    assert with_request_context(ready, current_request) is ready


def test_a_request_without_trace_headers_starts_its_own_trace_on_first_read() -> None:
    def ids() -> tuple[str | None, str | None, str | None, str | None]:
        ctx = current_request()
        first = (ctx.trace_id, ctx.span_id)
        return (*first, ctx.trace_id, ctx.span_id)

    trace, span, trace_again, span_again = with_request_context({"accept": "*/*"}, ids)
    assert trace is not None
    assert len(trace) == 32
    assert int(trace, 16) != 0
    assert span is not None
    assert len(span) == 16
    assert int(span, 16) != 0
    assert (trace_again, span_again) == (trace, span)
    other, _, _, _ = with_request_context({"accept": "*/*"}, ids)
    assert other != trace


def test_an_explicit_trace_id_is_kept() -> None:
    ctx = RequestContext("r-1", trace_id="c" * 32, span_id="d" * 16)
    assert with_request_context(
        ctx, lambda: (current_request().trace_id, current_request().span_id)
    ) == ("c" * 32, "d" * 16)
