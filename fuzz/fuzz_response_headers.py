"""Fuzz response headers: `ctx.add_response_header` and `RequestRejected(headers=...)`."""

from __future__ import annotations

from _checks import FIELD_VALUE, TOKEN, not_leaked
from _harness import instrumented, main

with instrumented():
    from asynclocal.request import RequestContext, RequestRejected

SEEDS = [b"X-Tenant\nt1", b"X A\nb", b"X-T\nCaf\xc3\xa9 \xe2\x82\xac", b"Retry-After\n3\r\nX: y"]


def one_input(data: bytes) -> None:
    decoded = data.decode("utf-8", "replace")
    name, _, value = decoded.partition("\n")
    valid = TOKEN.fullmatch(name) is not None and FIELD_VALUE.fullmatch(value) is not None
    ctx = RequestContext("fuzz")
    try:
        ctx.add_response_header(name, value)
    except ValueError as exc:
        assert not valid
        not_leaked(value, str(exc))
    else:
        assert valid
        assert ctx.response_headers() == [(name, value)]
    try:
        RequestRejected("fuzz", headers=[(name, value)])
    except ValueError as exc:
        assert not valid
        not_leaked(value, str(exc))
    else:
        assert valid


if __name__ == "__main__":
    main(one_input, SEEDS)
