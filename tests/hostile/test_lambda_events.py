"""Lambda events (API Gateway REST v1, HTTP API / function URL v2, ALB) through the wrapper.

Grammar: the request id is ``context.aws_request_id`` when it passes
`is_valid_request_id`, else fresh; headers come from ``headers`` (str values
only), then ``multiValueHeaders`` (every str value, a repeated name joined with
``", "``, cookie with ``"; "``), then payload 2.0's ``cookies`` list as the
``Cookie`` header; incoming ids and trace ids are accepted only in their
grammar. Nothing in an event makes the wrapper raise, and no hostile value is
echoed in the result or logged.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from asynclocal import current_request
from asynclocal.integrations.aws_lambda import lambda_handler, request_context_for
from asynclocal.request import RequestRejected

from ._props import HOSTILE, MARK, assert_linear, captured_log_lines

ID_GRAMMAR = re.compile(r"[A-Za-z0-9\-._~:+=/]{1,128}")
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
header_names = st.sampled_from(
    [
        "X-Request-ID",
        "x-request-id",
        "X-Root-Request-ID",
        "traceparent",
        "tracestate",
        "baggage",
        "Cookie",
        "cookie",
        "Host",
        "X-Forwarded-For",
    ]
) | st.text(max_size=10)
header_values = st.one_of(
    st.text(max_size=60),
    st.just("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    st.text(max_size=20).map(lambda t: MARK + t + "\r\n"),
    json_values,
)
headers = st.dictionaries(header_names, header_values, max_size=8)
multi_headers = st.dictionaries(
    header_names, st.lists(header_values, max_size=4) | json_values, max_size=6
)

v1_events = st.fixed_dictionaries(
    {
        "httpMethod": st.sampled_from(["GET", "POST"]),
        "path": st.text(max_size=20),
        "headers": headers | st.none(),
        "multiValueHeaders": multi_headers | st.none(),
        "requestContext": st.fixed_dictionaries(
            {
                "identity": st.fixed_dictionaries(
                    {"sourceIp": st.sampled_from(["1.2.3.4", "::1"]) | json_values}
                )
            }
        ),
    }
)
v2_events = st.fixed_dictionaries(
    {
        "version": st.just("2.0"),
        "rawPath": st.text(max_size=20),
        "headers": headers,
        "cookies": st.lists(st.text(max_size=20) | json_values, max_size=5) | json_values,
        "requestContext": st.fixed_dictionaries(
            {
                "http": st.fixed_dictionaries(
                    {"method": st.sampled_from(["GET", "PUT"]), "sourceIp": st.just("5.6.7.8")}
                )
            }
        ),
    }
)
alb_events = st.fixed_dictionaries(
    {
        "httpMethod": st.just("GET"),
        "path": st.just("/"),
        "multiValueHeaders": multi_headers,
        "requestContext": st.just({"elb": {"targetGroupArn": "arn:aws:..."}}),
    }
)
any_events = st.one_of(v1_events, v2_events, alb_events, json_values)
contexts = st.builds(
    SimpleNamespace,
    aws_request_id=st.one_of(
        st.text(max_size=140), st.just("c6af9ac6-7b61-11e6-9a41-93e8deadbeef"), json_values
    ),
)


def _check_context(ctx: Any, context: Any) -> None:
    aws = getattr(context, "aws_request_id", None)
    if isinstance(aws, str) and ID_GRAMMAR.fullmatch(aws):
        assert ctx.request_id == aws
    else:
        assert ID_GRAMMAR.fullmatch(ctx.request_id)
    for value in (ctx.parent_request_id, ctx.root_request_id):
        assert value is None or ID_GRAMMAR.fullmatch(value)
    assert ctx.trace_id is None or HEX32.fullmatch(ctx.trace_id)
    assert ctx.span_id is None or HEX16.fullmatch(ctx.span_id)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in ctx.headers.items())
    assert isinstance(dict(ctx.cookies), dict)


@HOSTILE
@given(any_events, contexts)
def test_any_event_builds_a_valid_context(event: Any, context: Any) -> None:
    ctx = request_context_for(event, context)
    _check_context(ctx, context)


def _handler(event: Any, context: Any) -> Any:
    ctx = current_request()
    _check_context(ctx, context)
    if isinstance(event, dict) and event.get("path") == "/reject":
        raise RequestRejected("no", headers=[("Retry-After", "1")])
    return {"statusCode": 200, "body": "ok"}


@HOSTILE
@given(st.one_of(v1_events, v2_events, alb_events), contexts)
def test_hostile_values_are_never_echoed_or_logged(event: Any, context: Any) -> None:
    wrapped = lambda_handler(_handler)
    with captured_log_lines() as lines:
        result = wrapped(event, context)
    assert isinstance(result, dict)
    assert result["statusCode"] == 200
    assert MARK not in repr(result)
    assert not any(MARK in line for line in lines)


def test_multi_value_headers_are_joined() -> None:
    event = {
        "httpMethod": "GET",
        "path": "/",
        "headers": {"X-A": "last-only", "Host": "h"},
        "multiValueHeaders": {
            "X-A": ["1", "2"],
            "x-a": ["3"],
            "Cookie": ["a=1", "b=2"],
            "X-Request-ID": ["r1", "r2"],
            "Bad": "not a list",
        },
        "requestContext": {"elb": {}},
    }
    ctx = request_context_for(event, SimpleNamespace(aws_request_id="inv-1"))
    assert ctx.headers["x-a"] == "1, 2, 3"
    assert ctx.headers["host"] == "h"
    assert dict(ctx.cookies) == {"a": "1", "b": "2"}
    assert ctx.headers["x-request-id"] == "r1, r2"
    assert ctx.parent_request_id is None  # a repeated id is no id
    assert "bad" not in ctx.headers


def test_event_cost_is_linear() -> None:
    def make(count: int) -> object:
        event = {
            "httpMethod": "GET",
            "path": "/",
            "headers": {f"x-h{i}": "v" * 20 for i in range(count)},
            "multiValueHeaders": {
                "x-request-id": ["0123456789abcdef"] * count,
                "cookie": [f"c{i}=v" for i in range(count)],
            },
            "cookies": [f"d{i}=v" for i in range(count)],
        }
        context = SimpleNamespace(aws_request_id="inv-1")
        return lambda: request_context_for(event, context).cookies

    assert_linear(make, 400, "Lambda event headers")  # type: ignore[arg-type]
