"""Fuzz Lambda events (JSON, or header lines in the v1/v2/ALB shapes) through the wrapper."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from _checks import HEX16, HEX32, ID_GRAMMAR, TOKEN, pairs, text
from _harness import instrumented, main

with instrumented():
    from asynclocal import current_request
    from asynclocal.integrations.aws_lambda import lambda_handler

SEEDS = [
    b'{"httpMethod": "GET", "path": "/", "headers": {"X-Request-ID": "abc"}}',
    b'{"version": "2.0", "rawPath": "/", "cookies": ["a=1"], "requestContext": {"http": '
    b'{"method": "GET"}}}',
    b'{"httpMethod": "GET", "multiValueHeaders": {"cookie": ["a=1", "b=2"]}}',
    b"x-request-id:abc\ntraceparent:00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
]
CONTEXT = SimpleNamespace(aws_request_id="fuzz-invocation")


def _event(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        pass
    lines = [(text(n), text(v)) for n, v in pairs(data)]
    shape = data[0] % 3 if data else 0
    if shape == 0:
        return {"httpMethod": "GET", "path": "/", "headers": dict(lines)}
    if shape == 1:
        multi: dict[str, list[str]] = {}
        for name, value in lines:
            multi.setdefault(name, []).append(value)
        return {"httpMethod": "GET", "path": "/", "multiValueHeaders": multi}
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": dict(lines),
        "cookies": [v for n, v in lines if n == "cookie"],
        "requestContext": {"http": {"method": "GET", "sourceIp": "1.2.3.4"}},
    }


def handler(event: Any, context: Any) -> Any:
    ctx = current_request()
    assert ctx.request_id == "fuzz-invocation"
    for value in (ctx.parent_request_id, ctx.root_request_id):
        assert value is None or ID_GRAMMAR.fullmatch(value)
    assert ctx.trace_id is None or HEX32.fullmatch(ctx.trace_id)
    assert ctx.span_id is None or HEX16.fullmatch(ctx.span_id)
    dict(ctx.cookies)
    return {"statusCode": 200, "body": "ok"}


WRAPPED = lambda_handler(handler)


def one_input(data: bytes) -> None:
    result = WRAPPED(_event(data), CONTEXT)
    if isinstance(result, dict) and isinstance(result.get("headers"), dict):
        for name, value in result["headers"].items():
            assert TOKEN.fullmatch(name)
            assert isinstance(value, str)


if __name__ == "__main__":
    main(one_input, SEEDS)
