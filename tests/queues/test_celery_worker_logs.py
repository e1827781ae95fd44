"""A real Celery worker's log output: one JSON handler, every task line with its own ids."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from asynclocal.request import RequestContext, request_storage

from .conftest import ROOT, _stop, worker_env


def test_worker_and_task_lines_go_through_one_json_handler_with_each_tasks_ids(
    redis_server: str, tmp_path: Path
) -> None:
    import importlib

    tasks = importlib.import_module("tests.queues.celery_logging_app")
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    cmd = [
        sys.executable, "-m", "celery", "-A", "tests.queues.celery_logging_app", "worker",
        "--pool", "threads", "--concurrency", "4", "--queues", queue,
        "--hostname", f"{queue}@127.0.0.1", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "--loglevel", "INFO",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=worker_env(redis_server), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        assert tasks.ping.apply_async(queue=queue).get(timeout=60) == "pong"
        rng = random.Random(7)
        published = []
        for i in range(30):
            ctx = RequestContext(f"web-{i}")
            result = request_storage.run(
                ctx, tasks.work.apply_async, (i, rng.random() * 0.05), queue=queue
            )
            published.append((i, result))
        task_ids = {i: result.get(timeout=60) for i, result in published}
        time.sleep(0.3)
    finally:
        _stop(proc, sig=signal.SIGTERM)

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    # Celery prints its banner and Python its warnings without logging; every
    # *log* line is JSON (no line in Celery's own "[date: LEVEL/Process]" format).
    celery_format = re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]*: [A-Z]+/")
    assert not [line for line in lines if celery_format.match(line)]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    by_message = {r["message"]: r for r in records}
    for i, task_id in task_ids.items():
        for message in (f"working on {i}", f"done with {i} password=[REDACTED]"):
            record = by_message[message]
            assert record["request_id"] == task_id
            assert record["root_request_id"] == f"web-{i}"
            assert record["parent_request_id"] == f"web-{i}"
    assert "hunter2secret" not in log.read_text()
    assert any(r["name"].startswith("celery") for r in records)  # the worker's own lines


pytestmark = pytest.mark.timeout(180)
