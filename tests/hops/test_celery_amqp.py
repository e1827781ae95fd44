"""Celery on RabbitMQ behaves as on Redis: the Celery worker scenarios, with an amqp:// broker.

The scenarios of tests/queues/test_celery_worker.py (many interleaved requests,
chains, retries, sub-tasks, unserialisable stores, foreign headers, the
request -> task -> sub-task -> HTTP chain, with prefork and threads workers) run
in a fresh pytest process whose Celery app uses the test RabbitMQ as broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.queues.stores import CELERY_BROKER_ENV

PROBE = "from tests.queues.celery_app import app; print(app.conf.broker_url)"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_celery_worker_scenarios_on_amqp(rabbitmq_server: str) -> None:
    env = dict(os.environ)
    env[CELERY_BROKER_ENV] = rabbitmq_server
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_ADDOPTS", None)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tests.queues.celery_app import app; print(app.conf.broker_url)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.startswith("amqp://"), probe.stdout  # the scenarios really use RabbitMQ
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            "tests/queues/test_celery_worker.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout, tail
    assert "skipped" not in proc.stdout, tail
