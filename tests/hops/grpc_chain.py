"""Real gRPC services on 127.0.0.1 built with generic handlers (JSON messages, no stubs).

Service ``hops.Chain`` has one method per RPC kind. Server B answers with what
its request context holds; server A does the same after calling B with the
same kind of RPC, so a test sees both hops of every call.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio

from asynclocal.integrations import grpc as al_grpc
from asynclocal.request import current_request, request_storage

SERVICE = "hops.Chain"
KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
METHODS = {kind: f"/{SERVICE}/{kind}" for kind in KINDS}
STREAM_ITEMS = 3


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def loads(raw: bytes) -> Any:
    return json.loads(raw)


def seen() -> dict[str, Any]:
    """What the current request context says, for the test to compare."""
    ctx = current_request()
    return {
        "request_id": ctx.request_id,
        "root": ctx.root_request_id,
        "parent": ctx.parent_request_id,
        "trace_id": ctx.trace_id,
        "path": ctx.path,
    }


def _pause(rng: random.Random) -> float:
    return rng.choice((0.0, 0.0, 0.001, 0.003))


def stub(channel: Any, kind: str) -> Any:
    factory = getattr(channel, kind)
    return factory(METHODS[kind], request_serializer=dumps, response_deserializer=loads)


class Records:
    """What a server saw, per call (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = []

    def add(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.items.append(item)


# --- sync servers ------------------------------------------------------------------------


def sync_handlers(records: Records, downstream: Callable[[], Any] | None) -> Any:
    """A generic handler; `downstream()` gives a channel to B (None: this is B)."""
    rng = random.Random(7)

    def visit(tag: str, kind: str, context: Any) -> dict[str, Any]:
        time.sleep(_pause(rng))
        mine = {"tag": tag, "kind": kind, **seen()}
        if tag.startswith("reject"):
            from asynclocal.errors import Forbidden

            raise Forbidden("not for this caller")
        if tag.startswith("abort"):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "aborted by the handler")
        records.add(mine)
        if downstream is not None:
            mine["downstream"] = call_sync(downstream(), kind, tag)
        return mine

    def unary_unary(request: Any, context: Any) -> Any:
        return visit(request["tag"], "unary_unary", context)

    def unary_stream(request: Any, context: Any) -> Iterator[Any]:
        first = visit(request["tag"], "unary_stream", context)
        yield first
        for i in range(1, STREAM_ITEMS):
            time.sleep(_pause(rng))
            yield {"i": i, **seen()}

    def stream_unary(requests: Iterator[Any], context: Any) -> Any:
        tags = [r["tag"] for r in requests]
        assert len(set(tags)) == 1, tags
        return visit(tags[0], "stream_unary", context)

    def stream_stream(requests: Iterator[Any], context: Any) -> Iterator[Any]:
        for i, request in enumerate(requests):
            if i == 0:
                yield visit(request["tag"], "stream_stream", context)
            else:
                yield {"i": i, "tag": request["tag"], **seen()}

    kw = {"request_deserializer": loads, "response_serializer": dumps}
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "unary_unary": grpc.unary_unary_rpc_method_handler(unary_unary, **kw),
            "unary_stream": grpc.unary_stream_rpc_method_handler(unary_stream, **kw),
            "stream_unary": grpc.stream_unary_rpc_method_handler(stream_unary, **kw),
            "stream_stream": grpc.stream_stream_rpc_method_handler(stream_stream, **kw),
        },
    )


def call_sync(channel: Any, kind: str, tag: str, metadata: Any = None) -> Any:
    """One call of `kind`; streaming answers come back as lists."""
    method = stub(channel, kind)
    requests = [{"tag": tag} for _ in range(STREAM_ITEMS)]
    if kind == "unary_unary":
        return method({"tag": tag}, metadata=metadata, timeout=20)
    if kind == "unary_stream":
        return list(method({"tag": tag}, metadata=metadata, timeout=20))
    if kind == "stream_unary":
        return method(iter(requests), metadata=metadata, timeout=20)
    return list(method(iter(requests), metadata=metadata, timeout=20))


class SyncServer:
    def __init__(self, records: Records, downstream: Callable[[], Any] | None, **options: Any):
        self.records = records
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=24),
            interceptors=[al_grpc.ServerInterceptor(**options)],
            maximum_concurrent_rpcs=None,
        )
        self.server.add_generic_rpc_handlers((sync_handlers(records, downstream),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"

    def __enter__(self) -> SyncServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None).wait(5)


# --- asyncio servers -----------------------------------------------------------------------


def aio_handlers(records: Records, downstream: Callable[[], Any] | None) -> Any:
    rng = random.Random(11)

    async def visit(tag: str, kind: str, context: Any) -> dict[str, Any]:
        await asyncio.sleep(_pause(rng))
        mine = {"tag": tag, "kind": kind, **seen()}
        if tag.startswith("reject"):
            from asynclocal.errors import Forbidden

            raise Forbidden("not for this caller")
        if tag.startswith("abort-own"):  # with trailing metadata of its own
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "aborted", (("x-reason", "quota"),)
            )
        if tag.startswith("abort"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "aborted by the handler")
        records.add(mine)
        if downstream is not None:
            mine["downstream"] = await call_aio(downstream(), kind, tag)
        return mine

    async def unary_unary(request: Any, context: Any) -> Any:
        return await visit(request["tag"], "unary_unary", context)

    async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
        yield await visit(request["tag"], "unary_stream", context)
        for i in range(1, STREAM_ITEMS):
            await asyncio.sleep(_pause(rng))
            yield {"i": i, **seen()}

    async def stream_unary(requests: AsyncIterator[Any], context: Any) -> Any:
        tags = [r["tag"] async for r in requests]
        assert len(set(tags)) == 1, tags
        return await visit(tags[0], "stream_unary", context)

    async def stream_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        i = 0
        async for request in requests:
            if i == 0:
                yield await visit(request["tag"], "stream_stream", context)
            else:
                yield {"i": i, "tag": request["tag"], **seen()}
            i += 1

    kw = {"request_deserializer": loads, "response_serializer": dumps}
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "unary_unary": grpc.unary_unary_rpc_method_handler(unary_unary, **kw),
            "unary_stream": grpc.unary_stream_rpc_method_handler(unary_stream, **kw),
            "stream_unary": grpc.stream_unary_rpc_method_handler(stream_unary, **kw),
            "stream_stream": grpc.stream_stream_rpc_method_handler(stream_stream, **kw),
        },
    )


async def call_aio(channel: Any, kind: str, tag: str, metadata: Any = None) -> Any:
    method = stub(channel, kind)

    async def requests() -> AsyncIterator[Any]:
        for _ in range(STREAM_ITEMS):
            yield {"tag": tag}

    if kind == "unary_unary":
        return await method({"tag": tag}, metadata=metadata, timeout=20)
    if kind == "unary_stream":
        return [item async for item in method({"tag": tag}, metadata=metadata, timeout=20)]
    if kind == "stream_unary":
        return await method(requests(), metadata=metadata, timeout=20)
    return [item async for item in method(requests(), metadata=metadata, timeout=20)]


class AioServer:
    def __init__(self, records: Records, downstream: Callable[[], Any] | None, **options: Any):
        self.records = records
        self.downstream = downstream
        self.options = options
        self.server: Any = None
        self.target = ""

    async def __aenter__(self) -> AioServer:
        self.server = grpc.aio.server(interceptors=[al_grpc.AioServerInterceptor(**self.options)])
        self.server.add_generic_rpc_handlers((aio_handlers(self.records, self.downstream),))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{port}"
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(None)


def current_store_is_empty() -> bool:
    return request_storage.get_store() is None
