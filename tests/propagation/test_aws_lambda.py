"""AWS Lambda wrapper: a fresh request context per invocation, from synthetic events.

The Lambda context object is the runtime's input, so a plain class stands in.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, propagation
from asynclocal.integrations.aws_lambda import (
    XRAY_ENV,
    lambda_handler,
    parse_xray_trace_header,
    request_context_for,
)
from asynclocal.request import RequestRejected, current_request, request_storage
from asynclocal.threads import Thread

XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
XRAY_TRACE = "5759e988bd862e3fe1be46a994272793"


@dataclass
class FakeLambdaContext:
    aws_request_id: str
    function_name: str = "pay"


def api_gateway_event(path: str = "/pay", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": headers or {},
        "requestContext": {"identity": {"sourceIp": "203.0.113.9"}},
        "body": "{}",
    }


def http_api_event(headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": "/orders",
        "headers": headers or {},
        "requestContext": {"http": {"method": "GET", "sourceIp": "198.51.100.1"}},
    }


def snapshot() -> dict[str, Any]:
    ctx = current_request()
    return {
        "request_id": ctx.request_id,
        "method": ctx.method,
        "path": ctx.path,
        "client": ctx.client,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
        "root": ctx.root_request_id,
        "parent": ctx.parent_request_id,
    }


@lambda_handler
def sync_handler(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": snapshot()}


@lambda_handler
async def async_handler(event: Any, context: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    inner = await asyncio.create_task(asyncio.to_thread(lambda: 1))  # a boundary inside
    assert inner == 1
    return {"statusCode": 200, "body": snapshot()}


@pytest.fixture(autouse=True)
def no_xray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(XRAY_ENV, raising=False)


@pytest.mark.parametrize("handler", [sync_handler, async_handler], ids=["sync", "async"])
def test_invocation_gets_the_aws_request_id_and_http_fields(handler: Any) -> None:
    result = handler(api_gateway_event(), FakeLambdaContext("aws-req-1"))
    body = result["body"]
    assert (body["request_id"], body["method"], body["path"]) == ("aws-req-1", "POST", "/pay")
    assert body["client"] == "203.0.113.9"
    assert body["root"] == "aws-req-1"
    assert body["parent"] is None
    assert len(body["trace_id"]) == 32  # a fresh trace
    assert result["headers"]["X-Request-ID"] == "aws-req-1"
    assert request_storage.get_store() is None  # nothing left behind


def test_http_api_v2_event() -> None:
    body = sync_handler(http_api_event(), FakeLambdaContext("v2"))["body"]
    assert (body["method"], body["path"], body["client"]) == ("GET", "/orders", "198.51.100.1")


@pytest.mark.parametrize("handler", [sync_handler, async_handler], ids=["sync", "async"])
def test_trace_from_the_xray_environment_value(
    handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(XRAY_ENV, XRAY)
    body = handler({"source": "aws.events"}, FakeLambdaContext("aws-req-2"))["body"]
    assert body["trace_id"] == XRAY_TRACE
    assert body["span_id"] != "53995c3f42cd8ad8"  # a span of its own under the X-Ray parent
    # read per invocation: a new value is seen by the next invocation
    monkeypatch.setenv(XRAY_ENV, XRAY.replace("5759e988", "6759e988"))
    again = handler({}, FakeLambdaContext("aws-req-3"))["body"]
    assert again["trace_id"] == "6759e988bd862e3fe1be46a994272793"


def test_callers_headers_continue_the_chain_and_win_over_xray(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(XRAY_ENV, XRAY)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "X-Request-ID": "caller-1",
        "X-Root-Request-ID": "root-1",
        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
    }
    body = sync_handler(api_gateway_event(headers=headers), FakeLambdaContext("aws-4"))["body"]
    assert body["request_id"] == "aws-4"
    assert (body["root"], body["parent"]) == ("root-1", "caller-1")
    assert body["trace_id"] == trace_id


def test_malformed_inputs_never_fail_the_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(XRAY_ENV, "Root=garbage;Parent=zz")
    event = api_gateway_event(headers={"traceparent": "nope", "baggage": "\x00"})
    body = sync_handler(event, FakeLambdaContext("bad id with spaces"))["body"]
    assert body["request_id"] != "bad id with spaces"
    assert len(body["request_id"]) == 32
    assert len(body["trace_id"]) == 32
    for odd_event in (None, [], "text", {"headers": "not a mapping"}):
        assert sync_handler(odd_event, object())["statusCode"] == 200


def test_xray_header_parser() -> None:
    parsed = parse_xray_trace_header(XRAY)
    assert parsed is not None
    assert (parsed.trace_id, parsed.parent_span_id, parsed.trace_flags) == (
        XRAY_TRACE,
        "53995c3f42cd8ad8",
        1,
    )
    assert parse_xray_trace_header("Root=1-5759e988-bd86;Sampled=1") is None
    assert parse_xray_trace_header(None) is None
    unsampled = parse_xray_trace_header("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")
    assert unsampled is not None
    assert unsampled.trace_flags == 0
    assert unsampled.parent_span_id is None


def test_invocations_on_one_thread_do_not_leak_into_each_other() -> None:
    other: AsyncLocalStorage[str] = AsyncLocalStorage(name="lambda-leak-test")
    seen: list[str | None] = []

    @lambda_handler
    def handler(event: Any, context: Any) -> str:
        seen.append(other.get_store())
        other.enter_with(context.aws_request_id)  # must die with the invocation
        return current_request().request_id

    assert handler({}, FakeLambdaContext("one")) == "one"
    assert handler({}, FakeLambdaContext("two")) == "two"
    assert seen == [None, None]
    assert other.get_store() is None


def test_concurrent_invocations_on_threads_keep_their_own_context() -> None:
    @lambda_handler
    def handler(event: Any, context: Any) -> dict[str, Any]:
        mine = context.aws_request_id
        time.sleep(random.uniform(0, 0.01))
        # a thread started by the handler sees the same request
        box: list[str] = []
        worker = Thread(target=lambda: box.append(current_request().request_id))
        worker.start()
        worker.join(5)
        time.sleep(random.uniform(0, 0.01))
        return {"mine": mine, "seen": current_request().request_id, "thread": box[0]}

    @lambda_handler
    async def ahandler(event: Any, context: Any) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0, 0.01))
        task = asyncio.create_task(asyncio.sleep(0, current_request().request_id))
        return {"mine": context.aws_request_id, "seen": await task}

    jobs = [(handler if n % 2 else ahandler, n) for n in range(80)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(fn, {"n": str(n)}, FakeLambdaContext(f"inv-{n}")) for fn, n in jobs]
        results = [f.result(timeout=30) for f in futures]
    for (fn, n), result in zip(jobs, results):
        assert result["mine"] == result["seen"] == f"inv-{n}"
        if fn is handler:
            assert result["thread"] == f"inv-{n}"


def test_request_rejected_becomes_a_status_for_http_events() -> None:
    class Forbidden(RequestRejected):
        status_code = 403
        public_message = "Forbidden"

    @lambda_handler
    def handler(event: Any, context: Any) -> Any:
        raise Forbidden("details that must not leak")

    result = handler(api_gateway_event(), FakeLambdaContext("rej"))
    assert result["statusCode"] == 403
    assert result["body"] == "Forbidden"
    assert result["headers"]["X-Request-ID"] == "rej"
    with pytest.raises(Forbidden):
        handler({"Records": []}, FakeLambdaContext("sqs"))


async def test_async_handler_inside_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="invoke_async"):
        async_handler({}, FakeLambdaContext("x"))
    result = await async_handler.invoke_async(api_gateway_event(), FakeLambdaContext("in-loop"))
    assert result["body"]["request_id"] == "in-loop"
    assert request_storage.get_store() is None


def test_initializers_run_and_response_headers_are_added() -> None:
    propagation.install()

    @lambda_handler
    def handler(event: Any, context: Any) -> dict[str, Any]:
        current_request().add_response_header("Server-Timing", "db;dur=1")
        return {"statusCode": 201, "headers": {"x-request-id": "app-set"}}

    result = handler(api_gateway_event(), FakeLambdaContext("h1"))
    assert result["headers"] == {"x-request-id": "app-set", "Server-Timing": "db;dur=1"}
    ctx = request_context_for(api_gateway_event(), FakeLambdaContext("h2"))
    assert ctx.request_id == "h2"
    with pytest.raises(TypeError, match="handler"):
        lambda_handler(42)  # type: ignore[call-overload]
