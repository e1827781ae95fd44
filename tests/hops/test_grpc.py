"""gRPC: real servers on 127.0.0.1, a chain client -> A -> B, every RPC kind, concurrently."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio
import pytest

from asynclocal.integrations import grpc as al_grpc
from asynclocal.request import RequestContext, RequestIdPolicy, request_storage
from tests.hops.grpc_chain import (
    KINDS,
    STREAM_ITEMS,
    AioServer,
    Records,
    SyncServer,
    call_aio,
    call_sync,
    stub,
)

pytestmark = pytest.mark.usefixtures("loopback_targets")

CALLS = 50


def client_context(i: int, kind: str) -> RequestContext:
    ctx = RequestContext(f"client-{kind}-{i}")
    ctx.ensure_trace()
    return ctx


def check_chain(client: RequestContext, tag: str, answer: Any, kind: str) -> None:
    """A's answer (and B's inside it) belongs to `client`'s call and to nobody else's."""
    items = answer if isinstance(answer, list) else [answer]
    first = items[0]
    assert first["tag"] == tag
    assert first["kind"] == kind
    assert first["parent"] == client.request_id
    assert first["root"] == client.request_id
    assert first["trace_id"] == client.trace_id
    assert first["request_id"] != client.request_id
    assert first["path"] == f"/hops.Chain/{kind}"
    if isinstance(answer, list):
        assert len(items) == STREAM_ITEMS
        for later in items[1:]:  # the whole stream runs in the call's context
            assert later["request_id"] == first["request_id"]
            assert later["trace_id"] == client.trace_id
            assert later.get("tag", tag) == tag
    down = first["downstream"]
    down_items = down if isinstance(down, list) else [down]
    b = down_items[0]
    assert b["tag"] == tag
    assert b["parent"] == first["request_id"]
    assert b["root"] == client.request_id
    assert b["trace_id"] == client.trace_id
    for later in down_items[1:]:
        assert later["request_id"] == b["request_id"]


def check_records(records: Records, answers: dict[str, Any]) -> None:
    """B recorded each call once, under the id it answered that call with."""
    assert len(records.items) == len(answers)
    for record in records.items:
        answer = answers[record["tag"]]
        first = answer[0] if isinstance(answer, list) else answer
        down = first["downstream"]
        down_first = down[0] if isinstance(down, list) else down
        assert record["request_id"] == down_first["request_id"]
        assert record["parent"] == first["request_id"]


def test_sync_chain_every_kind_concurrently() -> None:
    b_records, a_records = Records(), Records()
    with SyncServer(b_records, None) as b:
        b_channel = al_grpc.intercept_channel(grpc.insecure_channel(b.target), b.target)
        with SyncServer(a_records, lambda: b_channel) as a:
            channel = al_grpc.intercept_channel(grpc.insecure_channel(a.target), a.target)

            def one(i: int, kind: str) -> None:
                client = client_context(i, kind)
                tag = f"{kind}-{i}"
                answer = request_storage.run(client, call_sync, channel, kind, tag)
                check_chain(client, tag, answer, kind)
                answers[tag] = answer

            answers: dict[str, Any] = {}
            with ThreadPoolExecutor(16) as pool:
                jobs = [pool.submit(one, i, kind) for i in range(CALLS) for kind in KINDS]
                for job in jobs:
                    job.result()
            channel.close()
        b_channel.close()
    check_records(b_records, answers)
    assert len(a_records.items) == CALLS * len(KINDS)


async def test_aio_chain_every_kind_concurrently() -> None:
    b_records, a_records = Records(), Records()
    async with AioServer(b_records, None) as b:
        b_channel = grpc.aio.insecure_channel(
            b.target, interceptors=al_grpc.aio_client_interceptors(b.target)
        )
        async with AioServer(a_records, lambda: b_channel) as a:
            channel = grpc.aio.insecure_channel(
                a.target, interceptors=al_grpc.aio_client_interceptors(a.target)
            )
            answers: dict[str, Any] = {}

            async def one(i: int, kind: str) -> None:
                client = client_context(i, kind)
                tag = f"{kind}-{i}"
                with request_storage.scope(client):
                    answer = await call_aio(channel, kind, tag)
                check_chain(client, tag, answer, kind)
                answers[tag] = answer

            await asyncio.gather(*(one(i, kind) for i in range(CALLS) for kind in KINDS))
            await channel.close()
        await b_channel.close()
    check_records(b_records, answers)
    assert len(a_records.items) == CALLS * len(KINDS)


def _trailing(call: Any) -> dict[str, str]:
    return dict(call.trailing_metadata() or ())


def test_sync_echo_abort_and_rejection_carry_the_id() -> None:
    records = Records()
    with SyncServer(records, None) as server, grpc.insecure_channel(server.target) as channel:
        method = stub(channel, "unary_unary")
        answer, call = method.with_call({"tag": "plain"}, metadata=[("x-request-id", "gw-1")])
        assert answer["request_id"] == "gw-1"  # a valid gateway id is kept
        assert _trailing(call)["x-request-id"] == "gw-1"

        with pytest.raises(grpc.RpcError) as aborted:
            method({"tag": "abort-1"}, metadata=[("x-request-id", "gw-2")])
        assert aborted.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert _trailing(aborted.value)["x-request-id"] == "gw-2"

        with pytest.raises(grpc.RpcError) as rejected:
            method({"tag": "reject-1"}, metadata=[("x-request-id", "gw-3")])
        assert rejected.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert rejected.value.details() == "Forbidden"
        assert _trailing(rejected.value)["x-request-id"] == "gw-3"

        items = list(
            stub(channel, "unary_stream")({"tag": "s"}, metadata=[("x-request-id", "gw-4")])
        )
        assert {item["request_id"] for item in items} == {"gw-4"}


async def test_aio_echo_abort_and_rejection_carry_the_id() -> None:
    records = Records()
    async with (
        AioServer(records, None) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        method = stub(channel, "unary_unary")
        call = method({"tag": "plain"}, metadata=(("x-request-id", "gw-1"),))
        answer = await call
        assert answer["request_id"] == "gw-1"
        assert dict(await call.trailing_metadata())["x-request-id"] == "gw-1"

        call = method({"tag": "abort-1"}, metadata=(("x-request-id", "gw-2"),))
        with pytest.raises(grpc.aio.AioRpcError) as aborted:
            await call
        assert aborted.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert dict(aborted.value.trailing_metadata())["x-request-id"] == "gw-2"

        call = method({"tag": "abort-own-1"}, metadata=(("x-request-id", "gw-5"),))
        with pytest.raises(grpc.aio.AioRpcError) as own:
            await call
        trailing = dict(own.value.trailing_metadata())
        assert (trailing["x-request-id"], trailing["x-reason"]) == ("gw-5", "quota")

        call = method({"tag": "reject-1"}, metadata=(("x-request-id", "gw-3"),))
        with pytest.raises(grpc.aio.AioRpcError) as rejected:
            await call
        assert rejected.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert rejected.value.details() == "Forbidden"
        assert dict(rejected.value.trailing_metadata())["x-request-id"] == "gw-3"


HOSTILE = [
    "bad\u00e9id",  # non-ASCII: grpcio refuses to send it
    "x" * 10_000,
    "a b",
    "evil;rm",
    "a\tb",
]


def test_hostile_metadata_is_never_echoed_or_logged(caplog: pytest.LogCaptureFixture) -> None:
    records = Records()
    caplog.set_level(logging.DEBUG, logger="asynclocal")
    with SyncServer(records, None) as server, grpc.insecure_channel(server.target) as channel:
        method = stub(channel, "unary_unary")
        for value in HOSTILE:
            metadata = [
                ("x-request-id", value),
                ("x-root-request-id", value),
                ("traceparent", f"00-{value}-0000000000000001-01"),
                ("tracestate", value),
                ("baggage", value),
            ]
            try:
                answer, call = method.with_call({"tag": "h"}, metadata=metadata)
            except ValueError:
                continue  # grpcio refuses to send it: it cannot reach a server either
            except grpc.RpcError:
                continue  # refused by the server: nothing echoed either
            echoed = _trailing(call)["x-request-id"]
            assert echoed != value
            assert answer["request_id"] == echoed
            assert answer["parent"] is None
            assert answer["root"] == echoed
            assert len(answer["trace_id"]) == 32
        # A malformed traceparent next to a valid id: the trace is not continued.
        answer = method(
            {"tag": "h"},
            metadata=[("x-request-id", "fine-1"), ("traceparent", "00-zz-yy-01")],
        )
        assert answer["request_id"] == "fine-1"
        assert answer["trace_id"] != "zz"
    text = caplog.text
    for value in HOSTILE:
        assert value not in text


def test_hostile_values_the_wire_cannot_carry_are_dropped_by_the_interceptor() -> None:
    """CR/LF, NUL and non-ASCII values, as a non-Python client could present them."""
    from asynclocal.integrations._hop import build_context, metadata_text
    from asynclocal.request import RequestContextFactory

    factory = RequestContextFactory()
    for value in ("a\r\nb", "a\x00b", "caf\u00e9", "x" * 10_000, "1\n2"):
        metadata = metadata_text(
            [("x-request-id", value), ("x-root-request-id", "r"), ("traceparent", value)]
        )
        ctx = build_context(
            factory, metadata, method="GRPC", path="/s/m", peer_host=None, client=None
        )
        assert ctx.request_id != value
        assert value not in (ctx.root_request_id or "")
        assert ctx.parent_request_id is None


def test_untrusted_peer_gets_a_fresh_id_and_no_continuation() -> None:
    records = Records()
    policy = RequestIdPolicy(trusted_proxies=["10.0.0.0/8"])
    with (
        SyncServer(records, None, policy=policy) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        answer = stub(channel, "unary_unary")(
            {"tag": "u"},
            metadata=[
                ("x-request-id", "gw-9"),
                ("x-root-request-id", "root-9"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ],
        )
    assert answer["request_id"] != "gw-9"
    assert answer["root"] == answer["request_id"]
    assert answer["trace_id"] != "0af7651916cd43dd8448eb211c80319c"


def test_reject_invalid_answers_invalid_argument_with_a_fresh_id() -> None:
    records = Records()
    with (
        SyncServer(records, None, policy=RequestIdPolicy(reject_invalid=True)) as server,
        grpc.insecure_channel(server.target) as channel,
        pytest.raises(grpc.RpcError) as rejected,
    ):
        stub(channel, "unary_unary")({"tag": "x"}, metadata=[("x-request-id", "no spaces")])
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    echoed = _trailing(rejected.value)["x-request-id"]
    assert echoed != "no spaces"
    assert len(echoed) == 32
    assert records.items == []


def test_client_sends_nothing_to_targets_off_the_allow_list() -> None:
    from asynclocal import propagation

    propagation.configure(targets=["billing.internal"])
    records = Records()
    with SyncServer(records, None) as server:
        channel = al_grpc.intercept_channel(grpc.insecure_channel(server.target), server.target)
        client = RequestContext("client-x")
        answer = request_storage.run(client, call_sync, channel, "unary_unary", "t")
        channel.close()
    assert answer["parent"] is None
    assert answer["root"] == answer["request_id"]
    assert answer["request_id"] != "client-x"


def test_install_patches_channel_constructors() -> None:
    records = Records()
    assert not al_grpc.installed()
    al_grpc.install()
    try:
        assert al_grpc.installed()
        with SyncServer(records, None) as server:
            channel = grpc.insecure_channel(server.target)
            client = RequestContext("client-i")
            answer = request_storage.run(client, call_sync, channel, "unary_unary", "t")
            channel.close()
        assert answer["parent"] == "client-i"
    finally:
        al_grpc.uninstall()
    assert not al_grpc.installed()
    assert grpc.insecure_channel.__module__ == "grpc"


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("127.0.0.1:50051", "grpc://127.0.0.1:50051/s.S/m"),
        ("dns:///billing.internal:443", "grpc://billing.internal:443/s.S/m"),
        ("billing.internal", "grpc://billing.internal:443/s.S/m"),
        ("ipv6:[::1]:50051", "grpc://[::1]:50051/s.S/m"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
    ],
)
def test_target_url(target: str, url: str) -> None:
    assert al_grpc.target_url(target, "/s.S/m") == url


def test_status_mapping() -> None:
    from asynclocal.errors import Forbidden, InvalidRequestId, Unauthenticated

    assert al_grpc.status_for(InvalidRequestId()) == grpc.StatusCode.INVALID_ARGUMENT
    assert al_grpc.status_for(Unauthenticated()) == grpc.StatusCode.UNAUTHENTICATED
    assert al_grpc.status_for(Forbidden("r")) == grpc.StatusCode.PERMISSION_DENIED


def test_opentelemetry_trace_id_agrees_with_ours() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from asynclocal.integrations import opentelemetry as al_otel

    provider = TracerProvider()
    tracer = provider.get_tracer("hops")
    al_otel.install()
    try:
        records = Records()
        with SyncServer(records, None) as server:
            channel = al_grpc.intercept_channel(grpc.insecure_channel(server.target), server.target)

            def call() -> tuple[str, Any]:
                with tracer.start_as_current_span("client"):
                    span = trace.get_current_span().get_span_context()
                    answer = call_sync(channel, "unary_unary", "otel")
                    return trace.format_trace_id(span.trace_id), answer

            trace_id, answer = request_storage.run(RequestContext("client-otel"), call)
            channel.close()
    finally:
        al_otel.uninstall()
    assert answer["trace_id"] == trace_id
    assert answer["parent"] == "client-otel"
