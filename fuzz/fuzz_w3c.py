"""Fuzz the W3C parsers (traceparent, tracestate, baggage) and `extract` through public names."""

from __future__ import annotations

from _checks import HEX16, HEX32, pairs, text
from _harness import instrumented, main

with instrumented():
    from asynclocal.propagation import (
        extract,
        parse_baggage,
        parse_traceparent,
        parse_tracestate,
    )

SEEDS = [
    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    b"userId=alice,serverNode=DF%2028;prop",
    b"traceparent:00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\ntracestate:a=b",
]


def one_input(data: bytes) -> None:
    value = text(data)
    parent = parse_traceparent(value)
    if parent is not None:
        assert HEX32.fullmatch(parent.trace_id)
        assert HEX16.fullmatch(parent.parent_id)
    state = parse_tracestate(value)
    assert state is None or isinstance(state, str)
    baggage = parse_baggage(value)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in baggage.items())
    propagated = extract({text(n): text(v) for n, v in pairs(data)})
    assert propagated.trace_id is None or HEX32.fullmatch(propagated.trace_id)


if __name__ == "__main__":
    main(one_input, SEEDS)
