"""Context through the same real Redis into real `rq worker` subprocesses."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, Retry
from rq.job import Job

from asynclocal import RequestContext, request_storage
from asynclocal.integrations import rq as al_rq
from asynclocal.integrations.rq import ContextNotSerializableError
from tests.queues import rq_jobs
from tests.queues.conftest import run_rq_worker
from tests.queues.stores import local_only, tenant

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]

# (how the enqueuer is set up, extra `rq worker` arguments)
SETUPS = {
    "ContextJob+SimpleWorker": (
        "job_class",
        ["--job-class", "tests.queues.rq_jobs.PlanJob", "--worker-class", "rq.worker.SimpleWorker"],
    ),
    "install()+forking Worker": ("install", ["-c", "tests.queues.rq_settings"]),
}


class Setup:
    def __init__(self, name: str, redis_url: str, tmp: Path) -> None:
        self.name = name
        self.redis_url = redis_url
        self.tmp = tmp
        mode, self.worker_args = SETUPS[name]
        self.connection = redis.Redis.from_url(f"{redis_url}/1")
        self.queue = Queue(
            f"rq-{uuid.uuid4().hex[:8]}",
            connection=self.connection,
            job_class=rq_jobs.PlanJob if mode == "job_class" else Job,
        )

    def run_worker(self) -> None:
        run_rq_worker(self.redis_url, self.queue.name, self.tmp / "worker.log", *self.worker_args)

    def result(self, job: Job) -> Any:
        job = Job.fetch(job.id, connection=self.connection)
        assert job.get_status() == "finished", f"job {job.id} is {job.get_status()}"
        return job.return_value()


@pytest.fixture(params=sorted(SETUPS))
def setup(request: pytest.FixtureRequest, redis_server: str, tmp_path: Path) -> Iterator[Setup]:
    if SETUPS[request.param][0] == "install":
        al_rq.install(fields=["plan"])
    try:
        yield Setup(request.param, redis_server, tmp_path)
    finally:
        al_rq.uninstall()


def _request(i: int) -> RequestContext:
    ctx = RequestContext(f"req-{i}-{random.getrandbits(32):08x}")
    ctx.set("plan", f"plan-{i}")
    return ctx


def _assert_in_request(seen: dict[str, Any], ctx: RequestContext, i: int) -> None:
    assert seen["request_id"] == seen["task_id"]
    assert (seen["root"], seen["parent"]) == (ctx.request_id, ctx.request_id)
    assert seen["trace_id"] == ctx.trace_id
    assert seen["tenant"] == {"tenant": i}
    assert seen["plan"] == f"plan-{i}"
    assert seen["local"] is None


def test_jobs_retries_and_subjobs_see_their_own_request(setup: Setup) -> None:
    queue = setup.queue
    enqueued: list[tuple[str, int | None, RequestContext | None, Job]] = []

    async def handler(i: int) -> None:
        ctx = request_storage.get_store()
        local_only.enter_with("request-local")
        await asyncio.sleep(random.uniform(0, 0.003))
        enqueued.append(("record", i, ctx, queue.enqueue(rq_jobs.record)))
        await asyncio.sleep(random.uniform(0, 0.003))
        kind = ("async", "flaky", "spawn")[i % 3]
        if kind == "async":
            job = queue.enqueue(rq_jobs.async_record)
        elif kind == "flaky":
            job = queue.enqueue(rq_jobs.flaky, 2, retry=Retry(max=2))
        else:
            job = queue.enqueue(rq_jobs.spawn_child)
        enqueued.append((kind, i, ctx, job))

    async def no_request() -> None:
        await asyncio.sleep(random.uniform(0, 0.003))
        enqueued.append(("record", None, None, queue.enqueue(rq_jobs.record)))

    async def main() -> None:
        jobs: list[Any] = []
        for i in range(18):
            jobs.append(request_storage.run(_request(i), tenant.run, {"tenant": i}, handler, i))
            if i % 3 == 0:
                jobs.append(no_request())
        await asyncio.gather(*jobs)

    asyncio.run(main())
    setup.run_worker()

    workers: Counter[str] = Counter()
    for kind, i, ctx, job in enqueued:
        seen = setup.result(job)
        assert seen["task_id"] == job.id
        workers[seen["worker"]] += 1
        if ctx is None:
            assert seen["request_id"] == seen["root"] == job.id
            assert (seen["parent"], seen["tenant"], seen["plan"], seen["local"]) == (
                None,
                None,
                None,
                None,
            )
            continue
        assert i is not None
        _assert_in_request(seen, ctx, i)
        if kind == "flaky":
            raw = setup.connection.lrange(f"rq-attempts:{job.id}", 0, -1)
            attempts = [json.loads(a) for a in raw]
            assert len(attempts) == 3
            for attempt in attempts:
                _assert_in_request(attempt, ctx, i)
        elif kind == "spawn":
            child = setup.result(Job(seen["child_id"], connection=setup.connection))
            assert child["parent"] == job.id
            assert child["root"] == ctx.request_id
            assert child["tenant"] == {"tenant": i}
            assert child["plan"] == f"plan-{i}"
    if "SimpleWorker" in setup.name:
        assert len(workers) == 1  # one process ran every job: leaks would have shown


def test_unserialisable_store_fails_at_enqueue(setup: Setup) -> None:
    with pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant"):
        tenant.run({"bad": {1}}, setup.queue.enqueue, rq_jobs.record)
    assert setup.queue.count == 0


def test_install_validates_fields() -> None:
    with pytest.raises(TypeError, match="list of field names"):
        al_rq.install(fields="plan")
    with pytest.raises(TypeError, match="non-empty str"):
        al_rq.install(fields=[""])
    assert not al_rq.installed()
