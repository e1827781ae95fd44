"""AWS Lambda invocations continue the caller's chain; API Gateway v2 events and X-Ray."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import asynclocal
from asynclocal import current_request
from asynclocal.integrations.aws_lambda import lambda_handler
from asynclocal.request import RequestRejected

pytestmark = pytest.mark.timeout(60)


def _seen() -> dict[str, Any]:
    ctx = current_request()
    return {
        "request_id": ctx.request_id,
        "root": ctx.root_request_id,
        "parent": ctx.parent_request_id,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
        "tenant": ctx.get("tenant"),
        "access_token": ctx.access_token,
    }


# --- AWS Lambda -----------------------------------------------------------------------------


class _LambdaContext:
    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id
        self.function_name = "fn"


def _v2_event(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "test",
            },
            "requestId": "apigw-id",
            "stage": "$default",
        },
        "body": "{}",
        "isBase64Encoded": False,
    }


def test_lambda_api_gateway_v2_event_continues_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)

    @lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ctx = current_request()
        return {
            "statusCode": 200,
            "body": json.dumps({**_seen(), "method": ctx.method, "path": ctx.path}),
        }

    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = _v2_event(
        "/orders",
        {"x-request-id": "up-1", "x-root-request-id": "root-0", "traceparent": traceparent},
    )
    result = handler(event, _LambdaContext("aws-req-1"))
    seen = json.loads(result["body"])
    assert seen["request_id"] == "aws-req-1"
    assert seen["parent"] == "up-1"
    assert seen["root"] == "root-0"
    assert seen["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (seen["method"], seen["path"]) == ("POST", "/orders")
    headers = {k.lower(): v for k, v in result["headers"].items()}
    assert headers["x-request-id"] == "aws-req-1"
    # Nothing leaks out of the invocation.
    assert asynclocal.request_storage.get_store() is None


def test_lambda_xray_env_and_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    )

    @lambda_handler
    async def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event["rawPath"] == "/deny":
            raise RequestRejected("no")
        return {"statusCode": 200, "body": json.dumps(_seen())}

    seen = json.loads(handler(_v2_event("/ok", {}), _LambdaContext("aws-2"))["body"])
    assert seen["trace_id"] == "5759e988bd862e3fe1be46a994272793"
    assert seen["root"] == "aws-2"
    assert seen["parent"] is None
    denied = handler(_v2_event("/deny", {}), _LambdaContext("aws-3"))
    assert 400 <= denied["statusCode"] < 500


def test_lambda_concurrent_invocations_on_threads_never_mix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    import time

    @lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        first = current_request().request_id
        time.sleep(random.random() * 0.01)
        return {"statusCode": 200, "body": json.dumps({"first": first, **_seen()})}

    def invoke(i: int) -> tuple[int, dict[str, Any]]:
        tp = f"00-{i + 1:032x}-{i + 1:016x}-01"
        out = handler(
            _v2_event(
                f"/p{i}",
                {"traceparent": tp, "x-request-id": f"up-{i}", "x-root-request-id": f"root-{i}"},
            ),
            _LambdaContext(f"aws-{i}"),
        )
        return i, json.loads(out["body"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(invoke, range(40)))
    for i, seen in results:
        assert seen["first"] == seen["request_id"] == f"aws-{i}"
        assert seen["parent"] == f"up-{i}"
        assert seen["root"] == f"root-{i}"
        assert seen["trace_id"] == f"{i + 1:032x}"


def test_lambda_api_gateway_v2_cookies_reach_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # Payload 2.0 moves the Cookie header into a `cookies` list: the
    # access-token cookie must still be readable from the context.
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)

    @lambda_handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ctx = current_request()
        return {
            "statusCode": 200,
            "body": json.dumps(
                {
                    "token": ctx.cookies.get("access_token"),
                    "theme": ctx.cookies.get("theme"),
                    "client": ctx.client,
                }
            ),
        }

    event = _v2_event("/me", {"user-agent": "t"})
    event["cookies"] = ["access_token=abc", "theme=dark"]
    seen = json.loads(handler(event, _LambdaContext("aws-c"))["body"])
    assert seen == {"token": "abc", "theme": "dark", "client": "203.0.113.9"}
