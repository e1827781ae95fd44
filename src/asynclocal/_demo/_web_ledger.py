"""The web demo's gRPC hop: a ledger service the app calls for every served request.

It runs in the peer's process on its own 127.0.0.1 port (``grpc.aio``, built
with a generic handler: JSON messages, no generated code). Unlike the peer's
HTTP API it uses asynclocal's gRPC server interceptor, so each call is a
request continuing the app's: the ledger records the ids its own context
holds (request id, parent, root, trace), which the demo checks against the
app's answer for the same request.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import grpc
import grpc.aio

from ..integrations import grpc as al_grpc
from ..request import current_request

__all__ = ["METHOD", "call_ledger", "start_ledger"]

METHOD = "/demo.Ledger/Record"
_PAUSES = (0.0, 0.0, 0.0005, 0.001)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _loads(raw: bytes) -> Any:
    return json.loads(raw)


async def start_ledger(records: list[dict[str, Any]], seed: int) -> tuple[Any, int]:
    """Start the ledger server; return it and its port. Call inside the running loop."""
    rng = random.Random(seed)

    async def record(request: Any, context: Any) -> dict[str, Any]:
        await asyncio.sleep(rng.choice(_PAUSES))
        ctx = current_request()
        seen = {
            "call": "ledger",
            "subject": request.get("subject"),
            "request_id": ctx.request_id,
            "parent": ctx.parent_request_id,
            "root": ctx.root_request_id,
            "trace_id": ctx.trace_id,
        }
        records.append(seen)
        return seen

    handler = grpc.method_handlers_generic_handler(
        "demo.Ledger",
        {
            "Record": grpc.unary_unary_rpc_method_handler(
                record, request_deserializer=_loads, response_serializer=_dumps
            )
        },
    )
    server = grpc.aio.server(interceptors=[al_grpc.AioServerInterceptor()])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def call_ledger(channel: Any, subject: str) -> dict[str, Any]:
    """One ``Record`` call on `channel` (a ``grpc.aio`` channel made after ``al_grpc.install``)."""
    method = channel.unary_unary(METHOD, request_serializer=_dumps, response_deserializer=_loads)
    answer: dict[str, Any] = await method({"subject": subject}, timeout=30)
    return answer
