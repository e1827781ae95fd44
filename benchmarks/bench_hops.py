"""Per-message overhead of the hop integrations against the same transport without asynclocal.

Run: ``.venv/bin/python benchmarks/bench_hops.py [--quick]``

Starts its own nats-server, rabbitmq-server and redis-server on 127.0.0.1 (the
Debian packages scripts/_setup.sh installs; a missing one skips its row) and
measures, each in rounds that alternate the two variants so that machine load
hits both alike (best round kept):

* gRPC unary call (``grpc.aio`` client and server on loopback): bare, and with
  `AioServerInterceptor` plus the client interceptors, the call made inside a
  request context (so metadata is injected, extracted and continued);
* aio-pika publish + consume: messages published to a queue and consumed by a
  callback, bare and with `asynclocal.integrations.aio_pika.install()`;
* NATS request/reply: sequential requests to a responder, bare and with
  `asynclocal.integrations.nats.install()`;
* one queue job: a Dramatiq message on Redis, from ``send`` to the actor having
  run in a worker thread, bare and with `AsyncLocalMiddleware`.

Prints µs per message for both variants, the difference and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.brokers import BrokerMissing, run_nats, run_rabbitmq, run_redis  # noqa: E402

from asynclocal import RequestContext, request_storage  # noqa: E402


def _request() -> RequestContext:
    ctx = RequestContext(f"bench-{time.monotonic_ns()}")
    ctx.ensure_trace()
    return ctx


async def _best(
    rounds: int, count: int, variants: dict[str, Callable[[int], Awaitable[float]]]
) -> dict[str, float]:
    """µs per message of each variant: best of `rounds`, the variants interleaved."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, run in variants.items():
            seconds = await run(count)
            best[name] = min(best[name], seconds / count * 1e6)
    return best


# --- gRPC ------------------------------------------------------------------------------------


async def bench_grpc(rounds: int, count: int) -> dict[str, float]:
    import grpc
    import grpc.aio

    from asynclocal.integrations import grpc as al_grpc

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    def handler() -> Any:
        return grpc.method_handlers_generic_handler(
            "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
        )

    async def serve(interceptors: list[Any]) -> tuple[Any, str]:
        server = grpc.aio.server(interceptors=interceptors)
        server.add_generic_rpc_handlers((handler(),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, f"127.0.0.1:{port}"

    bare_server, bare_target = await serve([])
    ours_server, ours_target = await serve([al_grpc.AioServerInterceptor()])
    bare = grpc.aio.insecure_channel(bare_target)
    ours = grpc.aio.insecure_channel(
        ours_target,
        interceptors=al_grpc.aio_client_interceptors(ours_target, targets=["127.0.0.1"]),
    )
    bare_call = bare.unary_unary("/bench.Echo/Call")
    ours_call = ours.unary_unary("/bench.Echo/Call")
    for _ in range(200):  # warm up both paths
        await bare_call(b"x")
        with request_storage.scope(_request()):
            await ours_call(b"x")

    async def run_bare(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await bare_call(b"x")
        return time.perf_counter() - start

    async def run_ours(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            with request_storage.scope(_request()):
                await ours_call(b"x")
        return time.perf_counter() - start

    try:
        return await _best(rounds, count, {"bare": run_bare, "asynclocal": run_ours})
    finally:
        await bare.close()
        await ours.close()
        await bare_server.stop(None)
        await ours_server.stop(None)


# --- aio-pika ----------------------------------------------------------------------------------


async def bench_aio_pika(url: str, rounds: int, count: int) -> dict[str, float]:
    import aio_pika

    from asynclocal.integrations import aio_pika as al_aio_pika

    connection = await aio_pika.connect(url, timeout=20)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=256)

    async def run(n: int) -> float:
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        done = asyncio.Event()
        seen = 0

        async def handler(message: Any) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == n:
                done.set()

        tag = await queue.consume(handler)
        start = time.perf_counter()
        with request_storage.scope(_request()):
            for i in range(n):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"%d" % i), routing_key=queue.name
                )
        await done.wait()
        elapsed = time.perf_counter() - start
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return elapsed

    async def run_bare(n: int) -> float:
        return await run(n)

    async def run_ours(n: int) -> float:
        al_aio_pika.install()
        try:
            return await run(n)
        finally:
            al_aio_pika.uninstall()

    try:
        await run_bare(50)
        await run_ours(50)
        return await _best(rounds, count, {"bare": run_bare, "asynclocal": run_ours})
    finally:
        await connection.close()


# --- NATS ---------------------------------------------------------------------------------------


async def bench_nats(url: str, rounds: int, count: int) -> dict[str, float]:
    import nats

    from asynclocal.integrations import nats as al_nats

    async def run(n: int) -> float:
        client = await nats.connect(servers=[url])
        try:

            async def responder(msg: Any) -> None:
                await msg.respond(msg.data)

            await client.subscribe("bench.rpc", cb=responder)
            start = time.perf_counter()
            with request_storage.scope(_request()):
                for _ in range(n):
                    await client.request("bench.rpc", b"x", timeout=10)
            return time.perf_counter() - start
        finally:
            await client.drain()

    async def run_bare(n: int) -> float:
        return await run(n)

    async def run_ours(n: int) -> float:
        al_nats.install()
        try:
            return await run(n)
        finally:
            al_nats.uninstall()

    await run_bare(50)
    await run_ours(50)
    return await _best(rounds, count, {"bare": run_bare, "asynclocal": run_ours})


# --- a Dramatiq job on Redis -----------------------------------------------------------------


async def bench_dramatiq(url: str, rounds: int, count: int) -> dict[str, float]:
    import uuid

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from asynclocal.integrations.dramatiq import AsyncLocalMiddleware

    def run_sync(with_context: bool, n: int) -> float:
        broker = RedisBroker(url=f"{url}/5", namespace=f"bench-{uuid.uuid4().hex[:8]}")
        if with_context:
            broker.add_middleware(AsyncLocalMiddleware())
        done = threading.Event()
        lock = threading.Lock()
        seen = [0]

        def job(i: int) -> None:
            with lock:
                seen[0] += 1
                if seen[0] == n:
                    done.set()

        actor = dramatiq.actor(job, broker=broker, actor_name="job")
        worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=20)
        worker.start()
        try:
            start = time.perf_counter()
            with request_storage.scope(_request()):
                for i in range(n):
                    actor.send(i)
            done.wait(120)
            return time.perf_counter() - start
        finally:
            worker.stop()
            broker.close()

    async def run_bare(n: int) -> float:
        return await asyncio.to_thread(run_sync, False, n)

    async def run_ours(n: int) -> float:
        return await asyncio.to_thread(run_sync, True, n)

    return await _best(rounds, count, {"bare": run_bare, "asynclocal": run_ours})


def _row(name: str, result: dict[str, float] | str) -> None:
    if isinstance(result, str):
        print(f"| {name} | - | - | - | {result} |")
        return
    bare, ours = result["bare"], result["asynclocal"]
    print(f"| {name} | {bare:.1f} | {ours:.1f} | {ours - bare:+.1f} | {ours / bare:.2f}x |")


async def main_async(quick: bool) -> None:
    rounds = 3 if quick else 5
    scale = 1 if quick else 4
    print(f"Python {platform.python_version()} on {platform.machine()}; best of {rounds} rounds")
    print()
    print("| message | bare µs | asynclocal µs | difference µs | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    _row("gRPC unary call (grpc.aio)", await bench_grpc(rounds, 500 * scale))
    with tempfile.TemporaryDirectory(prefix="bench-hops-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        urls: dict[str, str] = {}
        for name, starter in (("rabbitmq", run_rabbitmq), ("nats", run_nats), ("redis", run_redis)):
            workdir = base / name
            workdir.mkdir()
            try:
                urls[name] = stack.enter_context(starter(workdir))
            except BrokerMissing as exc:
                urls[name] = ""
                print(f"({exc})", file=sys.stderr)
        rabbit, nats_url, redis_url = urls["rabbitmq"], urls["nats"], urls["redis"]
        _row(
            "aio-pika publish + consume",
            await bench_aio_pika(rabbit, rounds, 500 * scale) if rabbit else "no rabbitmq-server",
        )
        _row(
            "NATS request/reply",
            await bench_nats(nats_url, rounds, 500 * scale) if nats_url else "no nats-server",
        )
        _row(
            "Dramatiq job on Redis (send to run)",
            await bench_dramatiq(redis_url, rounds, 250 * scale) if redis_url else "no redis",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    args = parser.parse_args()
    asyncio.run(main_async(args.quick))


if __name__ == "__main__":
    main()
