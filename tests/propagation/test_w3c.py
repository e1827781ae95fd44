"""W3C Trace Context and Baggage codecs: what a malformed header does, and the limits."""

from __future__ import annotations

import random

import pytest

from asynclocal.propagation.w3c import (
    BAGGAGE_MAX_BYTES,
    BAGGAGE_MAX_MEMBERS,
    format_baggage,
    format_traceparent,
    new_span_id,
    new_trace_id,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_valid_traceparent_round_trips() -> None:
    parsed = parse_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert parsed == (TRACE, SPAN, 1)
    assert format_traceparent(*parsed) == f"00-{TRACE}-{SPAN}-01"


def test_future_version_with_extra_fields_is_accepted() -> None:
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01-what-the-future-holds") == (TRACE, SPAN, 1)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 must be exactly 55 chars
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
        f"00-{'0' * 32}-{SPAN}-01",  # zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # zero span id
        f"00-{TRACE[:-1]}g-{SPAN}-01",  # non-hex
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}-{SPAN}-1",
        f"cc-{TRACE}-{SPAN}-01x",  # longer but no dash after flags
        "00-" + "a" * 600,
    ],
)
def test_malformed_traceparent_is_rejected(header: str) -> None:
    assert parse_traceparent(header) is None


def test_traceparent_parser_is_total_on_random_input() -> None:
    rng = random.Random(5)
    alphabet = "0123456789abcdefABCDEF-xz \t\r\n\x00é"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70)))
        result = parse_traceparent(text)
        assert result is None or len(result.trace_id) == 32
    assert parse_traceparent(None) is None
    assert parse_traceparent(b"00-abc") is None  # type: ignore[arg-type]


def test_tracestate_validation() -> None:
    assert parse_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE") == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert parse_tracestate("vendor@tenant=x") == "vendor@tenant=x"
    assert parse_tracestate("Bad-Key=1") is None
    assert parse_tracestate("a=1,a=2") == "a=1"  # a duplicated key: the first one kept
    assert parse_tracestate("a=1,b") is None
    assert parse_tracestate(",".join(f"k{i}=v" for i in range(33))) is None
    assert parse_tracestate(",".join(f"k{i}=v" for i in range(32))) is not None


def test_generated_ids_are_valid_and_distinct() -> None:
    traces = {new_trace_id() for _ in range(200)}
    spans = {new_span_id() for _ in range(200)}
    assert len(traces) == 200
    assert len(spans) == 200
    for trace_id, span_id in zip(traces, spans):
        assert parse_traceparent(format_traceparent(trace_id, span_id, 1)) is not None


def test_baggage_round_trips_special_characters() -> None:
    values = {"tenant": "acme corp", "plan": "gold,silver;x=1", "name": "café %20 😀"}
    assert parse_baggage(format_baggage(values)) == values


def test_baggage_parser_skips_malformed_members_and_properties() -> None:
    parsed = parse_baggage("a=1, bad member ,=novalue, noequals, b=2;prop=x;flag, c=%ZZ, d=%C3")
    assert parsed == {"a": "1", "b": "2", "c": "%ZZ"}
    assert parse_baggage("x=a%00b") == {}  # control characters are refused
    assert parse_baggage(None) == {}
    assert parse_baggage(12) == {}  # type: ignore[arg-type]


def test_incoming_baggage_is_cut_at_180_members() -> None:
    header = ",".join(f"k{i}=v" for i in range(500))
    parsed = parse_baggage(header)
    assert len(parsed) == BAGGAGE_MAX_MEMBERS
    assert list(parsed)[:3] == ["k0", "k1", "k2"]


def test_incoming_baggage_is_cut_at_8192_bytes() -> None:
    header = ",".join(f"k{i}={'v' * 1000}" for i in range(20))
    parsed = parse_baggage(header)
    kept = format_baggage(parsed)
    assert len(kept.encode()) <= BAGGAGE_MAX_BYTES
    assert 7 <= len(parsed) <= 8
    assert list(parsed) == [f"k{i}" for i in range(len(parsed))]


def test_outgoing_baggage_respects_both_limits() -> None:
    many = format_baggage({f"k{i}": "v" for i in range(400)})
    assert many.count(",") + 1 == BAGGAGE_MAX_MEMBERS
    big = format_baggage({f"k{i}": "é" * 500 for i in range(30)})
    assert len(big.encode()) <= BAGGAGE_MAX_BYTES
    assert parse_baggage(big)  # what was kept is still valid
    assert format_baggage({"bad key": "x", "ok": "y"}) == "ok=y"
