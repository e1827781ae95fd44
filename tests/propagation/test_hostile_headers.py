"""Hostile propagation input: line feeds never pass the parsers and never travel on.

A ``$`` in a pattern matches before a final newline, so ``tracestate: a=b\\n``
or a baggage key ``tenant\\n`` used to pass validation, and every outgoing
call of that request failed with httpx's ``Illegal header value``. Each path a
value can come in by is covered: HTTP-style carriers (extract -> inject), a
Lambda event, a task-message carrier. Also: the baggage scan stays inside its
8,192-byte bound, and setup values with a line feed are refused.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from asynclocal import propagation
from asynclocal.integrations import _queue
from asynclocal.integrations import httpx as al_httpx
from asynclocal.integrations.aws_lambda import lambda_handler
from asynclocal.propagation import w3c
from asynclocal.request import current_request, request_storage

TP = "00-12345678901234567890123456789012-1234567890123456-01"
HOSTILE = {
    "traceparent": TP,
    "tracestate": "a=b\n",
    "baggage": "tenant\n=acme,plan=gold\n,region=eu",
}


def assert_sendable(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        assert "\n" not in value
        assert "\r" not in value, name
    httpx.Request("GET", "http://127.0.0.1/", headers=headers)  # raises on an illegal value


def test_parsers_refuse_a_final_line_feed() -> None:
    assert w3c.parse_tracestate("a=b\n") is None
    assert w3c.parse_tracestate("a\n=b") is None
    assert w3c.parse_traceparent(TP + "\n") is None
    assert w3c.parse_baggage("tenant\n=acme") == {}
    assert w3c.parse_baggage("tenant=acme\n") == {}
    assert not w3c.valid_baggage_key("tenant\n")
    assert not w3c.valid_tracestate_key("a\n")
    assert not w3c.valid_tracestate_value("b\n")


def test_extract_then_inject_never_reemits_a_line_feed() -> None:
    propagation.configure(baggage_fields=["tenant", "plan", "region"])
    propagated = propagation.extract(HOSTILE)
    assert propagated.trace_id == TP.split("-")[1]  # the valid traceparent is kept
    assert propagated.tracestate is None
    assert dict(propagated.baggage) == {"region": "eu"}
    hop = propagation.continue_request(propagated)
    out: dict[str, str] = {"baggage": "tenant\n=x"}  # a hostile value already in the carrier
    propagation.inject(out, request=hop)
    assert "tracestate" not in out
    assert out["baggage"] == "region=eu"
    assert_sendable(out)


def test_a_context_holding_a_line_feed_never_sends_it() -> None:
    ctx = propagation.continue_request(propagation.extract({"traceparent": TP}))
    ctx.tracestate = "a=b\n"  # set by code, not parsed
    out: dict[str, str] = {}
    propagation.inject(out, request=ctx)
    assert "tracestate" not in out
    assert_sendable(out)


def test_lambda_event_headers_with_line_feeds(echo_url: str) -> None:
    propagation.configure(targets=["127.0.0.1"], baggage_fields=["tenant", "region"])

    @lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ctx = current_request()
        out: dict[str, str] = {}
        propagation.inject(out)
        assert_sendable(out)
        # the request's own outgoing call goes through
        with al_httpx.instrument(httpx.Client()) as client:
            received = client.get(echo_url + "/x").json()["received"]
        return {"tracestate": ctx.tracestate, "out": out, "received": received}

    class Context:
        aws_request_id = "lambda-req-1"
        function_name = "f"

    event = {"httpMethod": "GET", "path": "/x", "headers": dict(HOSTILE), "body": None}
    result = handler(event, Context())
    assert result["tracestate"] is None
    assert "tracestate" not in result["out"]
    assert result["received"]["traceparent"].split("-")[1] == TP.split("-")[1]
    assert "tracestate" not in result["received"]


def test_task_carrier_with_line_feeds() -> None:
    propagation.configure(baggage_fields=["tenant", "region"])
    raw = json.dumps({"v": 1, "carrier": {"x-request-id": "caller-1", **HOSTILE}})
    activation = _queue.activate(raw, task_id="task-1", task_name="send")
    try:
        ctx = request_storage.get_store()
        assert ctx is not None
        assert ctx.request_id == "task-1"
        assert ctx.tracestate is None
        assert ctx.trace_id == TP.split("-")[1]
        out: dict[str, str] = {}
        propagation.inject(out)
        assert "tracestate" not in out
        assert_sendable(out)
    finally:
        activation.undo()


def test_configure_refuses_line_feeds_in_names_and_targets() -> None:
    with pytest.raises(ValueError, match="header name"):
        propagation.configure(request_id_header="x-request-id\n")
    with pytest.raises(ValueError, match="header name"):
        propagation.configure(root_request_id_header="x-root\n")
    with pytest.raises(ValueError, match="not a host name"):
        propagation.configure(targets=["api.internal\n:8443"])
    with pytest.raises(ValueError, match="W3C Baggage keys"):
        propagation.configure(baggage_fields=["tenant\n"])


def test_baggage_scan_stops_at_its_byte_bound_on_empty_members() -> None:
    # a valid member after 8192 bytes of empty members is past the bound: never read
    assert w3c.parse_baggage("," * w3c.BAGGAGE_MAX_BYTES + "k=v") == {}
    assert w3c.parse_baggage(", \t" * 5000 + "k=v") == {}
    assert w3c.parse_baggage("bad member," * 1000 + "k=v") == {}  # malformed ones count too
    # within the bound, empty and malformed members are skipped as before
    assert w3c.parse_baggage(",,, ,bad member,k=v") == {"k": "v"}
    edge = "," * (w3c.BAGGAGE_MAX_BYTES - 3) + "k=v"  # its last byte is byte 8192
    assert len(edge) == w3c.BAGGAGE_MAX_BYTES
    assert w3c.parse_baggage(edge) == {"k": "v"}
    assert w3c.parse_baggage("," + edge) == {}  # one byte further: cut


def test_duplicated_headers_in_multi_value_carriers() -> None:
    from multidict import CIMultiDict

    other = "00-22222222222222222222222222222222-1234567890123456-01"
    for carrier in (
        CIMultiDict([("traceparent", TP), ("traceparent", other)]),
        httpx.Headers([("traceparent", TP), ("traceparent", other)]),
        {"traceparent": [TP, other]},
        {"traceparent": TP, "TraceParent": other},
    ):
        assert propagation.extract(carrier).trace_id is None, type(carrier)  # type: ignore[arg-type]
    states = CIMultiDict([("traceparent", TP), ("tracestate", "a=1"), ("tracestate", "b=2")])
    assert propagation.extract(states).tracestate == "a=1,b=2"  # type: ignore[arg-type]


def test_rejected_values_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "a=supersecret-value\n"
    propagation.extract({"traceparent": TP, "tracestate": secret, "baggage": "k\n=" + secret})
    assert "supersecret" not in caplog.text
