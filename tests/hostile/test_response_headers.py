"""Response headers asynclocal sends: `ctx.add_response_header`, `on_response`, `RequestRejected`.

Grammar (the one rule, `asynclocal._header_rules`): a name is an RFC 9110
token, ``[!#$%&'*+\\-.^_`|~0-9A-Za-z]+``; a value is Latin-1 text without CR,
LF or other control characters, ``[\\t\\x20-\\x7e\\x80-\\xff]*``. Anything else
is refused at the call with ValueError (TypeError for non-str), and the error
message never repeats the value.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynclocal import current_request
from asynclocal.request import RequestContext, RequestRejected
from asynclocal.web.asgi import RequestContextMiddleware

from ._props import HOSTILE, MARK, assert_linear

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")

names = st.one_of(
    st.text("!#$%&'*+-.^_`|~0-9AZaz", min_size=1, max_size=12),
    st.text(st.characters(), max_size=12),
    st.sampled_from(["X-A: b", "X A", "X-T\r\nSet-Cookie", "", "Caf\xe9", "X\x00"]),
)
values = st.one_of(
    st.text(st.characters(max_codepoint=0xFF), max_size=40),
    st.text(st.characters(), max_size=40),
    st.sampled_from(["Caf\xe9 \u20ac", "a\r\nSet-Cookie: x=1", "tab\tok", "\x7f", "\x00"]),
)


def valid(name: str, value: str) -> bool:
    return TOKEN.fullmatch(name) is not None and FIELD_VALUE.fullmatch(value) is not None


@HOSTILE
@given(names, values)
def test_add_response_header_accepts_exactly_the_grammar(name: str, value: str) -> None:
    ctx = RequestContext("r-1")
    hostile_value = MARK + value
    if valid(name, hostile_value):
        ctx.add_response_header(name, hostile_value)
        assert ctx.response_headers() == [(name, hostile_value)]
    else:
        with pytest.raises(ValueError, match="header") as info:
            ctx.add_response_header(name, hostile_value)
        assert MARK not in str(info.value)
        assert ctx.response_headers() == []


@HOSTILE
@given(names, values)
def test_rejection_headers_accept_exactly_the_grammar(name: str, value: str) -> None:
    hostile_value = MARK + value
    if valid(name, hostile_value):
        exc = RequestRejected("no", headers=[(name, hostile_value)])
        assert exc.headers == ((name, hostile_value),)
    else:
        with pytest.raises(ValueError, match="header") as info:
            RequestRejected("no", headers=[(name, hostile_value)])
        assert MARK not in str(info.value)


@HOSTILE
@given(st.lists(st.tuples(names, values), max_size=4))
def test_callback_headers_never_break_the_response(pairs: list[tuple[str, str]]) -> None:
    # Whatever on_response callbacks return, the response starts, with only valid headers.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        current_request().on_response(lambda: pairs)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None}
    asyncio.run(RequestContextMiddleware(app)(scope, receive, send))
    assert sent[0]["status"] == 200
    for raw_name, raw_value in sent[0]["headers"]:
        assert valid(raw_name.decode("latin-1"), raw_value.decode("latin-1"))


def test_validation_cost_is_linear() -> None:
    def make(n: int) -> object:
        good = "v" * n
        bad = "v" * (n - 1) + "\x00"
        pairs = [("Retry-After", "1")] * (n // 16)

        def job() -> object:
            ctx = RequestContext("r-1")
            ctx.add_response_header("X-Long", good)
            try:
                ctx.add_response_header("X-Bad", bad)
            except ValueError:
                pass
            return ctx.response_headers(), RequestRejected("no", headers=pairs)

        return job

    assert_linear(make, 8192, "response header validation")  # type: ignore[arg-type]


def test_joining_repeated_rejection_headers_is_linear() -> None:
    from asynclocal.request._rejected import joined_rejection_headers

    def make(count: int) -> object:
        exc = RequestRejected("no", headers=[("Vary", "accept-encoding")] * count)
        return lambda: joined_rejection_headers(exc)

    assert_linear(make, 2000, "joined rejection headers")  # type: ignore[arg-type]
