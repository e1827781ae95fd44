"""One request followed through two services and a real Celery worker.

Service A (Starlette under uvicorn, ASGI middleware, OpenTelemetry SDK with an
in-memory exporter, httpx integration targeting B) calls service B (Flask under
waitress) and publishes a task to a real worker (real Redis), which calls B again.
The root id, the trace id and the causation chain must agree in all three places
and in their JSON logs (docs/propagation.md, docs/task-queues.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asynclocal import current_request, propagation
from asynclocal.integrations import httpx as al_httpx
from asynclocal.integrations import opentelemetry as al_otel
from asynclocal.web.flask import RequestContextExtension
from asynclocal.web.starlette import install as install_starlette
from tests.queues.conftest import ROOT, START_TIMEOUT, CeleryWorker, _stop, worker_env
from tests.support.logs import JsonLines, capture_json_lines
from tests.support.servers import run_uvicorn, run_waitress

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def chain_tasks(redis_server: str) -> ModuleType:
    import importlib

    return importlib.import_module("tests.queues.chain_tasks")


@pytest.fixture(scope="module", params=["prefork", "threads"])
def chain_worker(
    request: pytest.FixtureRequest,
    chain_tasks: ModuleType,
    redis_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CeleryWorker, Path]]:
    pool = request.param
    queue = f"chain-{pool}-{uuid.uuid4().hex[:8]}"
    workdir = tmp_path_factory.mktemp(f"chain-{pool}")
    log = workdir / "worker.log"
    env = worker_env(redis_server)
    env["CHAIN_LOG_DIR"] = str(workdir)
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.queues.chain_tasks",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        "2",
        "--queues",
        queue,
        "--hostname",
        f"{queue}@127.0.0.1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = CeleryWorker(pool, queue, proc, log)
    try:
        assert worker.wait(chain_tasks.ping.apply_async(queue=queue), START_TIMEOUT) == "pong"
        yield worker, workdir / "worker.jsonl"
    finally:
        _stop(proc, sig=signal.SIGQUIT)


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    with capture_json_lines("chain.a", "chain.b") as lines:
        yield lines


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    al_otel.install(start_span=True, tracer_provider=provider)
    try:
        yield exp
    finally:
        al_otel.uninstall()
        al_httpx.uninstall()
        propagation.reset_config()
        provider.shutdown()


def _seen() -> dict[str, Any]:
    ctx = current_request()
    return {
        "request_id": ctx.request_id,
        "root": ctx.root_request_id,
        "parent": ctx.parent_request_id,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
    }


def _service_b() -> Flask:
    app = Flask("chain_b")
    log = logging.getLogger("chain.b")

    @app.get("/b")
    def b() -> Any:
        log.info("b handled")
        return jsonify(_seen())

    RequestContextExtension(app)
    return app


def _service_a(b_url: str, tasks: ModuleType, queue: str) -> Starlette:
    from tests.queues.stores import tenant

    log = logging.getLogger("chain.a")

    async def a(request: Request) -> JSONResponse:
        i = int(request.query_params["i"])
        ctx = current_request()
        ctx.set("plan", f"plan-{i}")
        await asyncio.sleep(random.random() * 0.02)
        log.info("a calling b")
        async with httpx.AsyncClient() as client:
            b_answer = (await client.get(f"{b_url}/b", timeout=10)).json()
        with tenant.scope({"tenant": i}):
            result = tasks.call_b.apply_async((b_url,), queue=queue)
        log.info("a published")
        return JSONResponse({"a": _seen(), "b": b_answer, "task_id": result.id})

    app = Starlette(routes=[Route("/a", a)])
    install_starlette(app)
    return app


def test_one_request_through_two_services_and_a_worker(
    chain_worker: tuple[CeleryWorker, Path],
    chain_tasks: ModuleType,
    exporter: InMemorySpanExporter,
    json_logs: JsonLines,
) -> None:
    worker, worker_log = chain_worker
    n = 8
    with run_waitress(_service_b()) as b_url:
        al_httpx.install(targets=[b_url.split("://", 1)[1]])
        with run_uvicorn(_service_a(b_url, chain_tasks, worker.queue)) as a_url:

            def one(i: int) -> dict[str, Any]:
                r = httpx.get(f"{a_url}/a", params={"i": i}, timeout=30)
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                assert r.headers["x-request-id"] == body["a"]["request_id"]
                task = chain_tasks.app.AsyncResult(body["task_id"])
                body["task_result"] = worker.wait(task, 60)
                body["i"] = i
                return body

            with ThreadPoolExecutor(4) as pool:
                results = list(pool.map(one, range(n)))

    worker_lines = [json.loads(line) for line in worker_log.read_text().splitlines() if line]
    spans = exporter.get_finished_spans()
    for body in results:
        a, b, out = body["a"], body["b"], body["task_result"]
        task, b2 = out["task"], out["b"]
        root, trace = a["request_id"], a["trace_id"]
        assert a["root"] == root
        assert a["parent"] is None
        assert trace
        # A -> B
        assert (b["root"], b["parent"], b["trace_id"]) == (root, root, trace)
        # A -> task: the task id is the hop's request id; carried fields and stores.
        assert task["request_id"] == out["task_id"] == body["task_id"]
        assert (task["root"], task["parent"], task["trace_id"]) == (root, root, trace)
        assert task["plan"] == f"plan-{body['i']}"
        assert task["tenant"] == {"tenant": body["i"]}
        # task -> B
        assert (b2["root"], b2["parent"], b2["trace_id"]) == (root, task["request_id"], trace)
        ids = {a["request_id"], b["request_id"], task["request_id"], b2["request_id"]}
        assert len(ids) == 4
        # OpenTelemetry saw A, B (twice), A's CLIENT span for its call to B and
        # A's PRODUCER span for the task message, in one trace (the worker's
        # spans stay in its own process).
        in_trace = [s for s in spans if format(s.context.trace_id, "032x") == trace]
        names = sorted(s.name for s in in_trace)
        assert names == ["GET", "GET /a", "GET /b", "GET /b", "propagate"], names
        server_a = next(s for s in in_trace if s.name == "GET /a")
        for name in ("GET", "propagate"):
            call = next(s for s in in_trace if s.name == name)
            assert call.parent is not None
            assert call.parent.span_id == server_a.context.span_id
        # JSON logs: A's two lines, B's two lines, the worker's two lines, one chain.
        lines = [ln for ln in json_logs.lines + worker_lines if ln["root_request_id"] == root]
        assert len(lines) == 6, lines
        assert {ln["trace_id"] for ln in lines} == {trace}
        by_message = {ln["message"]: ln for ln in lines if ln["message"] != "b handled"}
        assert by_message["a calling b"]["request_id"] == root
        assert by_message["task calling b"]["request_id"] == task["request_id"]
        assert by_message["task calling b"]["parent_request_id"] == root
        b_lines = sorted(
            (ln["request_id"], ln["parent_request_id"])
            for ln in lines
            if ln["message"] == "b handled"
        )
        assert b_lines == sorted([(b["request_id"], root), (b2["request_id"], task["request_id"])])


def test_task_published_outside_a_request_is_its_own_root(
    chain_worker: tuple[CeleryWorker, Path], chain_tasks: ModuleType
) -> None:
    worker, _ = chain_worker
    with run_waitress(_service_b()) as b_url:
        out = worker.wait(chain_tasks.call_b.apply_async((b_url,), queue=worker.queue), 60)
    task = out["task"]
    assert task["request_id"] == task["root"] == out["task_id"]
    assert task["parent"] is None
    assert task["plan"] is None
    assert task["tenant"] is None
    assert out["b"]["parent"] == out["task_id"]
    assert out["b"]["root"] == out["task_id"]


def test_eager_mode_gives_the_same_chain(chain_tasks: ModuleType) -> None:
    app = chain_tasks.app
    old = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with run_waitress(_service_b()) as b_url:
            al_httpx.install(targets=[b_url.split("://", 1)[1]])

            async def a(request: Request) -> JSONResponse:
                ctx = current_request()
                ctx.set("plan", "eager")
                out = chain_tasks.call_b.apply_async((b_url,)).get()
                assert current_request() is ctx  # the caller gets its own context back
                return JSONResponse({"a": _seen(), "out": out})

            app_a = Starlette(routes=[Route("/a", a)])
            install_starlette(app_a)
            with run_uvicorn(app_a) as a_url:
                body = httpx.get(f"{a_url}/a", timeout=30).json()
    finally:
        app.conf.task_always_eager = old
        al_httpx.uninstall()
    a, task, b = body["a"], body["out"]["task"], body["out"]["b"]
    root = a["request_id"]
    assert (task["root"], task["parent"], task["trace_id"]) == (root, root, a["trace_id"])
    assert task["request_id"] == body["out"]["task_id"] != root
    assert task["plan"] == "eager"
    assert (b["root"], b["parent"], b["trace_id"]) == (root, task["request_id"], a["trace_id"])


def test_rq_job_continues_the_chain(
    redis_server: str, tmp_path: Path, chain_tasks: ModuleType
) -> None:
    import redis
    from rq import Queue

    from asynclocal.integrations.rq import ContextJob
    from tests.queues.conftest import run_rq_worker

    connection = redis.Redis.from_url(f"{redis_server}/1")
    queue = Queue(f"chain-{uuid.uuid4().hex[:8]}", connection=connection, job_class=ContextJob)
    with run_waitress(_service_b()) as b_url:

        async def a(request: Request) -> JSONResponse:
            job = queue.enqueue(chain_tasks.rq_call_b, b_url)
            return JSONResponse({"a": _seen(), "job_id": job.id})

        app_a = Starlette(routes=[Route("/a", a)])
        install_starlette(app_a)
        with run_uvicorn(app_a) as a_url:
            bodies = [httpx.get(f"{a_url}/a", timeout=30).json() for _ in range(3)]
        run_rq_worker(
            redis_server,
            queue.name,
            tmp_path / "rq.log",
            "--job-class",
            "asynclocal.integrations.rq.ContextJob",
        )
    for body in bodies:
        out = ContextJob.fetch(body["job_id"], connection=connection).return_value()
        a, job, b = body["a"], out["job"], out["b"]
        root = a["request_id"]
        assert job["request_id"] == body["job_id"]
        assert (job["root"], job["parent"], job["trace_id"]) == (root, root, a["trace_id"])
        assert (b["root"], b["parent"], b["trace_id"]) == (root, job["request_id"], a["trace_id"])
    connection.close()
