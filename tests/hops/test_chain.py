"""One request's id, chain and trace across HTTP -> gRPC -> task queue -> worker, concurrently.

A Starlette service under uvicorn (the request middleware) calls a gRPC service
(asynclocal's interceptors) for every request; the gRPC handler sends a Dramatiq
message on the real Redis; a real Dramatiq worker runs it. Every hop records what
its own context holds, and every record must belong to its own HTTP request.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from concurrent import futures
from typing import Any

import dramatiq
import grpc
import grpc.aio
import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asynclocal.integrations import grpc as al_grpc
from asynclocal.integrations.dramatiq import AsyncLocalMiddleware
from asynclocal.request import current_request
from asynclocal.web.starlette import install
from tests.hops.grpc_chain import dumps, loads
from tests.hops.jobs import Board, tenant
from tests.queues.stores import redis_url
from tests.support.servers import run_uvicorn

pytestmark = [
    pytest.mark.redis,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("loopback_targets"),
]

REQUESTS = 40


def ids() -> dict[str, Any]:
    ctx = current_request()
    return {
        "request_id": ctx.request_id,
        "parent": ctx.parent_request_id,
        "root": ctx.root_request_id,
        "trace_id": ctx.trace_id,
    }


def test_http_grpc_queue_worker_is_one_chain_per_request(redis_server: str) -> None:
    board = Board()
    rng = random.Random(4)
    broker = RedisBroker(url=redis_url(6), namespace=f"chain-{uuid.uuid4().hex[:8]}")
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(AsyncLocalMiddleware())

    def job(tag: str) -> None:
        board.add(tag, {**ids(), "tenant": tenant.get_store()})

    actor = dramatiq.actor(job, broker=broker, actor_name="chain_job")

    # The gRPC service (sync server): records its context, publishes the job.
    grpc_records: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def book(request: Any, context: Any) -> Any:
        tag = request["tag"]
        mine = ids()
        with lock:
            grpc_records[tag] = mine
        with tenant.scope({"tenant": tag}):
            actor.send(tag)
        return mine

    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), interceptors=[al_grpc.ServerInterceptor()]
    )
    grpc_server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "chain.Ledger",
                {
                    "Book": grpc.unary_unary_rpc_method_handler(
                        book, request_deserializer=loads, response_serializer=dumps
                    )
                },
            ),
        )
    )
    target = f"127.0.0.1:{grpc_server.add_insecure_port('127.0.0.1:0')}"
    grpc_server.start()

    channels: dict[int, Any] = {}

    async def order(request: Request) -> JSONResponse:
        loop_id = id(asyncio.get_running_loop())
        channel = channels.get(loop_id)
        if channel is None:
            channel = channels[loop_id] = grpc.aio.insecure_channel(
                target, interceptors=al_grpc.aio_client_interceptors(target)
            )
        await asyncio.sleep(rng.choice((0.0, 0.001, 0.003)))
        booked = await channel.unary_unary(
            "/chain.Ledger/Book", request_serializer=dumps, response_deserializer=loads
        )({"tag": request.path_params["tag"]}, timeout=20)
        return JSONResponse({"http": ids(), "grpc": booked})

    app = Starlette(routes=[Route("/order/{tag}", order)])
    install(app)
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
    worker.start()
    try:
        with run_uvicorn(app) as base:

            async def burst() -> list[tuple[str, str, dict[str, Any]]]:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:

                    async def one(i: int) -> tuple[str, str, dict[str, Any]]:
                        tag = f"o-{i}"
                        sent = f"gw-{i}-{uuid.uuid4().hex[:6]}"
                        response = await client.get(f"/order/{tag}", headers={"x-request-id": sent})
                        assert response.status_code == 200
                        assert response.headers["x-request-id"] == sent
                        return tag, sent, response.json()

                    return await asyncio.gather(*(one(i) for i in range(REQUESTS)))

            results = asyncio.run(burst())
        board.wait(REQUESTS)
    finally:
        worker.stop()
        broker.close()
        grpc_server.stop(None).wait(5)
    assert len(grpc_records) == REQUESTS
    for tag, sent, body in results:
        http, booked = body["http"], body["grpc"]
        assert http["request_id"] == sent  # the gateway's id is kept by the HTTP hop
        root, trace = http["root"], http["trace_id"]
        assert booked == grpc_records[tag]
        assert booked["parent"] == sent
        assert booked["root"] == root
        assert booked["trace_id"] == trace
        assert booked["request_id"] != sent
        (run,) = board.runs[tag]
        assert run["parent"] == booked["request_id"]
        assert run["root"] == root
        assert run["trace_id"] == trace
        assert run["tenant"] == {"tenant": tag}
