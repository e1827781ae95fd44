"""Incoming request ids through `RequestIdPolicy` and the pure ASGI middleware.

Grammar: with the default validator an incoming id is accepted iff it
fullmatches ``[A-Za-z0-9\\-._~:+=/]{1,128}``; with a custom validator iff the
validator returns True and the value fullmatches ``[\\x21-\\x7e]{1,1024}``
(visible ASCII). A peer outside ``trusted_proxies`` never has its id accepted.
Anything else is replaced by a fresh id (32 lowercase hex digits) or, with
``reject_invalid=True``, answered with 400; the rejected value is never in the
response or a log line.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynclocal.request import InvalidRequestId, RequestIdPolicy, is_valid_request_id
from asynclocal.web.asgi import RequestContextMiddleware

from ._props import HOSTILE, MARK, assert_linear, captured_log_lines

ID_GRAMMAR = re.compile(r"[A-Za-z0-9\-._~:+=/]{1,128}")
SAFE_FLOOR = re.compile(r"[\x21-\x7e]{1,1024}")
FRESH = re.compile(r"[0-9a-f]{32}")

_id_chars = "ABCXYZabcxyz0189-._~:+=/"
valid_ids = st.text(_id_chars, min_size=1, max_size=128)
# Latin-1 text (what a header can carry), often near the grammar.
any_ids = st.one_of(
    valid_ids,
    st.text(st.characters(max_codepoint=0xFF), max_size=200),
    st.text(_id_chars + " ;,\x00\r\n\t\x7f\xe9\"'<>", max_size=140),
    st.integers(120, 1100).map(lambda n: "a" * n),
)
# Always rejected by the default rule and by the safety floor, and carrying MARK.
hostile_ids = st.tuples(
    st.text(st.characters(max_codepoint=0xFF), max_size=60),
    st.sampled_from([" ", "\x00", "\r", "\n", "\t", "\x7f", "\xe9", "\xff", ";", ","]),
    st.text(_id_chars, max_size=20),
).map(lambda parts: MARK + parts[1].join(parts[::2]) + parts[1])


@HOSTILE
@given(any_ids)
def test_default_policy_accepts_exactly_the_grammar(value: str) -> None:
    policy = RequestIdPolicy()
    accepted = ID_GRAMMAR.fullmatch(value) is not None
    assert policy.accepts(value) is accepted
    assert is_valid_request_id(value) is accepted
    got = policy.resolve(value, "10.0.0.1")
    assert got == value if accepted else FRESH.fullmatch(got)
    strict = RequestIdPolicy(reject_invalid=True)
    if accepted:
        assert strict.resolve(value) == value
    else:
        with pytest.raises(InvalidRequestId) as info:
            strict.resolve(value)
        assert value not in str(info.value) or len(value) < 4


@HOSTILE
@given(any_ids)
def test_a_permissive_validator_never_passes_the_safety_floor(value: str) -> None:
    policy = RequestIdPolicy(validator=lambda v: True)
    got = policy.resolve(value)
    if SAFE_FLOOR.fullmatch(value):
        assert got == value
    else:
        assert FRESH.fullmatch(got)


@HOSTILE
@given(valid_ids, st.sampled_from(["10.1.2.3", "192.168.0.9", "::1", "", "unix.sock", None]))
def test_untrusted_peers_never_choose_their_id(value: str, peer: str | None) -> None:
    policy = RequestIdPolicy(trusted_proxies=["10.0.0.0/8"])
    got = policy.resolve(value, peer)
    if peer == "10.1.2.3":
        assert got == value
    else:
        assert FRESH.fullmatch(got)


async def _serve(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    from asynclocal import current_request

    ctx = current_request()
    body = ctx.request_id.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _wire_text(messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for message in messages:
        for name, value in message.get("headers", ()):
            parts.append(name.decode("latin-1") + ": " + value.decode("latin-1"))
        parts.append(message.get("body", b"").decode("latin-1"))
    return "\n".join(parts)


@HOSTILE
@given(hostile_ids, st.booleans(), st.integers(1, 3))
def test_hostile_ids_are_never_echoed_or_logged(value: str, reject: bool, repeats: int) -> None:
    app = RequestContextMiddleware(_echo_app, reject_invalid=reject)
    headers = [(b"x-request-id", value.encode("latin-1"))] * repeats
    with captured_log_lines() as lines:
        messages = asyncio.run(_serve(app, headers))
    start = messages[0]
    assert start["status"] == (400 if reject else 200)
    ids = [v for n, v in start["headers"] if n == b"x-request-id"]
    assert len(ids) == 1
    assert FRESH.fullmatch(ids[0].decode())
    assert MARK not in _wire_text(messages)
    assert not any(MARK in line for line in lines)


@HOSTILE
@given(valid_ids, st.integers(2, 4))
def test_a_repeated_id_header_is_never_accepted(value: str, repeats: int) -> None:
    app = RequestContextMiddleware(_echo_app, validator=lambda v: True)
    messages = asyncio.run(_serve(app, [(b"x-request-id", value.encode())] * repeats))
    ids = [v for n, v in messages[0]["headers"] if n == b"x-request-id"]
    assert FRESH.fullmatch(ids[0].decode())


@pytest.mark.parametrize("shape", ["long valid run", "long invalid tail", "visible ASCII"])
def test_resolve_cost_is_linear(shape: str) -> None:
    policy = RequestIdPolicy()
    custom = RequestIdPolicy(validator=lambda v: True)

    def make(n: int) -> object:
        value = {
            "long valid run": "a" * n,
            "long invalid tail": "a" * (n - 1) + " ",
            "visible ASCII": "!" * n,
        }[shape]
        return lambda: (policy.resolve(value), custom.resolve(value))

    assert_linear(make, 16384, f"RequestIdPolicy.resolve ({shape})")  # type: ignore[arg-type]
