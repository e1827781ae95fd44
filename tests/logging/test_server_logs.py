"""Real servers' own log lines carry each request's id, under 50 interleaved requests.

uvicorn, hypercorn, Django (under uvicorn and waitress) and gunicorn run as
processes configured with `logging_config(json=True)`; the test reads their
log output: the failed request's traceback record, Django's 4xx warnings and
the access line must each name their own request.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
N = 50
pytestmark = pytest.mark.timeout(180)


@contextlib.contextmanager
def serve(mode: str, log: Path) -> Iterator[str]:
    port = free_port()
    if mode == "gunicorn":
        cmd = [
            sys.executable, "-m", "gunicorn", "-c", str(ROOT / "tests/logging/gunicorn_conf.py"),
            "-b", f"127.0.0.1:{port}", "tests.logging.server_scenarios:wsgi_app",
        ]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "tests.logging.server_scenarios", mode, str(port)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("PYTEST_CURRENT_TEST", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            wait_for_port(port, timeout=30)
        except TimeoutError:
            raise RuntimeError(log.read_text()[-3000:]) from None
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def fire(base: str, kinds: tuple[str, ...]) -> list[tuple[str, str, int, str]]:
    """(kind, n, status, id) of N interleaved requests with random delays."""

    def one(i: int) -> tuple[str, str, int, str]:
        kind = kinds[i % len(kinds)]
        n = str(i + 1)
        time.sleep(random.random() * 0.05)
        try:
            with urllib.request.urlopen(f"{base}/{kind}/{n}", timeout=20) as resp:
                return kind, n, resp.status, resp.headers["X-Request-ID"]
        except urllib.error.HTTPError as err:
            return kind, n, err.code, err.headers["X-Request-ID"]

    with ThreadPoolExecutor(16) as pool:
        sent = list(pool.map(one, range(N)))
    ids = [rid for *_, rid in sent]
    assert all(ids)
    assert len(set(ids)) == N
    return sent


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def check_access_and_app_lines(
    found: list[dict[str, Any]], sent: list[tuple[str, str, int, str]]
) -> None:
    access = {r["http_path"]: r for r in found if r["name"] == "asynclocal.access"}
    assert len(access) == N
    for kind, n, status, rid in sent:
        line = access[f"/{kind}/{n}"]
        assert line["request_id"] == rid
        assert line["http_status"] == status
        assert line["http_method"] == "GET"
        assert line["user_id"] == f"user-{n}"
        assert line["root_request_id"] == rid
        assert line["trace_id"]
        assert line["duration_ms"] >= 0
        if kind == "ok" and status == 200:
            assert line["response_bytes"] == 3 * int(n)
    app = {r["message"]: r for r in found if r["name"] == "tests.app"}
    for kind, n, _status, rid in sent:
        if kind == "ok":
            assert app[f"handling {n}"]["request_id"] == rid


def traceback_record(found: list[dict[str, Any]], n: str) -> dict[str, Any]:
    matches = [r for r in found if f"RuntimeError: boom-{n}\n" in (r.get("exc_info") or "") + "\n"]
    assert len(matches) == 1, [r["message"] for r in matches]
    return matches[0]


@pytest.mark.parametrize("mode", ["uvicorn", "hypercorn"])
def test_asgi_servers_traceback_record_and_access_line_carry_each_requests_id(
    mode: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with serve(mode, log) as base:
        sent = fire(base, ("ok", "fail", "ok"))
        time.sleep(0.3)
    found = records(log)
    check_access_and_app_lines(found, sent)
    server_logger = f"{mode}.error"
    for kind, n, status, rid in sent:
        if kind == "fail":
            assert status == 500
            record = traceback_record(found, n)
            assert record["name"] == server_logger
            assert record["request_id"] == rid
            assert record["user_id"] == f"user-{n}"
    assert not [r for r in found if r["name"] == f"{mode}.access"]  # replaced by ours
    assert "\x1b[" not in log.read_text()
    assert all("color_message" not in r for r in found)


@pytest.mark.parametrize("mode", ["django-asgi", "django-wsgi"])
def test_django_4xx_warnings_500_and_access_line_carry_each_requests_id(
    mode: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    kinds = ("ok", "missing", "forbidden", "raise404", "deny", "fail")
    with serve(mode, log) as base:
        sent = fire(base, kinds)
        time.sleep(0.3)
    found = records(log)
    check_access_and_app_lines(found, sent)
    expected = {
        "missing": "Not Found: /missing/{n}",
        "forbidden": "Forbidden: /forbidden/{n}",
        "raise404": "Not Found: /raise404/{n}",
        "deny": "Forbidden (Permission denied): /deny/{n}",
        "fail": "Internal Server Error: /fail/{n}",
    }
    django_lines = [r for r in found if r["name"] == "django.request"]
    for kind, n, _status, rid in sent:
        if kind in expected:
            message = expected[kind].format(n=n)
            matches = [r for r in django_lines if r["message"] == message]
            assert len(matches) == 1, (message, [r["message"] for r in django_lines][:10])
            assert matches[0]["request_id"] == rid
            assert matches[0]["user_id"] == f"user-{n}"


def test_gunicorn_500_record_and_access_line_carry_each_requests_id(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with serve("gunicorn", log) as base:
        sent = fire(base, ("ok", "fail"))
        time.sleep(0.3)
    found = records(log)
    check_access_and_app_lines(found, sent)
    for kind, n, status, rid in sent:
        if kind == "fail":
            assert status == 500
            assert traceback_record(found, n)["request_id"] == rid
    assert any(r["name"] == "gunicorn.error" for r in found)  # gunicorn's own lines, as JSON
