"""Real servers with the real Sentry SDK and an in-memory transport, in a child process.

Run as ``python -m tests.logging.sentry_scenarios MODE`` (MODE: asgi, wsgi);
prints one JSON document: the id each response carried per request number,
and every event and transaction the SDK sent. A child process, because
Sentry's framework integrations patch Starlette/Flask process-wide.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from asynclocal.integrations.sentry import AsyncLocalIntegration
from asynclocal.request import request_storage
from tests.support.servers import run_uvicorn, run_waitress

N = 50


class MemoryTransport(Transport):
    """Keeps every event and transaction payload the SDK would send."""

    def __init__(self) -> None:
        super().__init__()
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type in ("event", "transaction"):
                payload = item.payload.json
                if payload is not None:
                    with self._lock:
                        self.payloads.append(payload)


def _init(transport: MemoryTransport, *integrations: Any) -> None:
    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=transport,
        traces_sample_rate=1.0,
        default_integrations=False,
        integrations=[*integrations, AsyncLocalIntegration()],
    )


def _mark(i: int) -> None:
    ctx = request_storage.get_store()
    assert ctx is not None
    ctx.user = {"id": f"user-{i}"}


def _fire(base: str) -> dict[str, str]:
    def one(i: int) -> tuple[str, str]:
        time.sleep(random.random() * 0.02)
        kind = "fail" if i % 2 else "msg"
        req = urllib.request.Request(f"{base}/{kind}/{i}", headers={"X-Request-ID": f"rq-{i}-x"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                rid = resp.headers["X-Request-ID"]
        except urllib.error.HTTPError as err:
            rid = err.headers["X-Request-ID"]
        return str(i), rid

    with ThreadPoolExecutor(16) as pool:
        return dict(pool.map(one, range(N)))


def asgi() -> dict[str, Any]:
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from asynclocal.web.asgi import RequestContextMiddleware

    transport = MemoryTransport()
    _init(transport)

    async def fail(request: Request) -> PlainTextResponse:
        i = int(request.path_params["i"])
        _mark(i)
        await asyncio.sleep(random.random() * 0.02)
        raise RuntimeError(f"boom-{i}")

    async def msg(request: Request) -> PlainTextResponse:
        i = int(request.path_params["i"])
        _mark(i)
        await asyncio.sleep(random.random() * 0.02)
        sentry_sdk.capture_message(f"msg-{i}")
        # and from a thread the request started
        await asyncio.to_thread(sentry_sdk.capture_message, f"thread-{i}")
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/fail/{i}", fail), Route("/msg/{i}", msg)],
    )
    # Sentry outermost (as its framework integrations place it), asynclocal inside.
    wrapped = SentryAsgiMiddleware(RequestContextMiddleware(app))
    with run_uvicorn(wrapped) as base:
        sent = _fire(base)
        time.sleep(0.5)
    sentry_sdk.flush()
    return {"sent": sent, "payloads": transport.payloads}


def wsgi() -> dict[str, Any]:
    from flask import Flask
    from sentry_sdk.integrations.flask import FlaskIntegration

    from asynclocal.web.flask import RequestContextExtension

    transport = MemoryTransport()
    _init(transport, FlaskIntegration())
    app = Flask("sentry-wsgi")
    RequestContextExtension(app)

    @app.get("/fail/<int:i>")
    def fail(i: int) -> str:
        _mark(i)
        time.sleep(random.random() * 0.02)
        raise RuntimeError(f"boom-{i}")

    @app.get("/msg/<int:i>")
    def msg(i: int) -> str:
        _mark(i)
        time.sleep(random.random() * 0.02)
        sentry_sdk.capture_message(f"msg-{i}")
        return "ok"

    with run_waitress(app, threads=8) as base:
        sent = _fire(base)
        time.sleep(0.5)
    sentry_sdk.flush()
    return {"sent": sent, "payloads": transport.payloads}


def celery(broker: str) -> dict[str, Any]:
    from sentry_sdk.integrations.celery import CeleryIntegration

    # Sentry first: it patches Celery's tracer, which the worker binds at import.
    transport = MemoryTransport()
    _init(transport, CeleryIntegration())

    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    from asynclocal.integrations.celery import install
    from asynclocal.request import RequestContext

    app = Celery("sentry-celery", broker=broker, backend=broker)
    app.conf.update(task_default_queue=f"sentry-{random.getrandbits(32):x}")
    install(app)

    @app.task(name="sentry.job")
    def job(i: int) -> dict[str, Any]:
        ctx = request_storage.get_store()
        assert ctx is not None
        ctx.user = {"id": f"user-{i}"}
        time.sleep(random.random() * 0.02)
        mine = {"request_id": ctx.request_id, "root_request_id": ctx.root_request_id}
        if i % 2:
            raise RuntimeError(f"boom-{i}")
        sentry_sdk.capture_message(f"msg-{i}")
        return mine

    sent: dict[str, str] = {}
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False):
        results = []
        for i in range(20):
            ctx = RequestContext(f"rq-{i}-x")
            results.append((i, request_storage.run(ctx, job.delay, i)))
        for i, result in results:
            sent[str(i)] = result.id  # the task's request id is its task id
            result.get(timeout=30, propagate=False)
        time.sleep(0.5)
    sentry_sdk.flush()
    return {"sent": sent, "payloads": transport.payloads}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = celery(sys.argv[2]) if mode == "celery" else {"asgi": asgi, "wsgi": wsgi}[mode]()
    print(json.dumps(result, default=str))
