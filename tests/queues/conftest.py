"""A real redis-server and real Celery / RQ worker subprocesses, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.queues.stores import REDIS_URL_ENV
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (and its children, in its own session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of our own process group only
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "<no output>"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port; yields ``redis://127.0.0.1:PORT``."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = (
            "redis-server is not installed: scripts/test.sh installs it (apt-get install "
            "redis-server); the task queue tests need a real Redis"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs Redis: a missing binary is a broken setup
        pytest.skip(message)
    import redis

    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = workdir / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"redis://127.0.0.1:{port}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{_tail(log)}") from None
                time.sleep(0.05)
        client.close()
        old = os.environ.get(REDIS_URL_ENV)
        os.environ[REDIS_URL_ENV] = url
        try:
            yield url
        finally:
            if old is None:
                os.environ.pop(REDIS_URL_ENV, None)
            else:
                os.environ[REDIS_URL_ENV] = old
    finally:
        import gc

        gc.collect()  # let pending Celery results unsubscribe while Redis still runs
        _stop(proc)


def worker_env(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env[REDIS_URL_ENV] = redis_url
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.fixture(scope="session")
def celery_app(redis_server: str) -> ModuleType:
    """The task module the worker runs, imported after the Redis URL is known."""
    import importlib

    return importlib.import_module("tests.queues.celery_app")


class CeleryWorker:
    """A real `celery worker` subprocess consuming its own queue."""

    def __init__(self, pool: str, queue: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.pool = pool
        self.queue = queue
        self.proc = proc
        self.log = log

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"the celery worker ({self.pool}) exited with {self.proc.returncode}:\n"
                f"{_tail(self.log)}"
            )

    def wait(self, result: Any, timeout: float = 30.0) -> Any:
        """`result.get()`, failing fast (with the worker's output) when the worker died."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                return result.get(timeout=1.0)
            except CeleryTimeout:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no result from the {self.pool} worker after {timeout}s:\n"
                        f"{_tail(self.log)}"
                    ) from None


@pytest.fixture(scope="module", params=["prefork", "threads"])
def celery_worker(
    request: pytest.FixtureRequest,
    celery_app: ModuleType,
    redis_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CeleryWorker]:
    """A real Celery worker: prefork with 2 processes, or the threads pool with 3 threads."""
    pool = request.param
    queue = f"q-{pool}-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp(f"celery-{pool}") / "worker.log"
    concurrency = "2" if pool == "prefork" else "3"
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.queues.celery_app",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        concurrency,
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
            cmd,
            cwd=ROOT,
            env=worker_env(redis_server),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = CeleryWorker(pool, queue, proc, log)
    try:
        assert worker.wait(celery_app.ping.apply_async(queue=queue), START_TIMEOUT) == "pong"
        yield worker
    finally:
        _stop(proc, sig=signal.SIGQUIT)  # cold shutdown: the tests left no work behind


def run_rq_worker(
    redis_url: str, queue: str, log: Path, *extra: str, timeout: float = 60.0
) -> None:
    """Run `rq worker --burst` on `queue` until it has done all the work (bounded)."""
    cmd = [
        sys.executable,
        "-c",
        "import sys; from rq.cli import main; sys.exit(main())",
        "worker",
        "--burst",
        "--url",
        f"{redis_url}/1",
        "--logging_level",
        "WARNING",
        *extra,
        queue,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=worker_env(redis_url),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"rq worker did not finish in {timeout}s:\n{_tail(log)}") from None
    finally:
        _stop(proc)
    if code != 0:
        raise RuntimeError(f"rq worker exited with {code}:\n{_tail(log)}")
