"""The README's recipes run as pasted.

Each ``<!-- recipe: STACK FILE -->`` block of README.md is written to a fresh directory
exactly as printed and started with the command the README gives (on a free
127.0.0.1 port instead of 8000): uvicorn, the Flask and Django development servers, a
real Celery worker on a real Redis. A request (or a published task) then checks the
id: the response's ``x-request-id`` header, the id in the body and the id on the log
line written while serving it are one and the same, for a generated id and for one the
client sent.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RECIPE = re.compile(r"<!-- recipe: (\w+) (\S+) -->\n```python\n(.*?)\n```", re.S)

pytestmark = pytest.mark.timeout(120)


def recipes() -> dict[tuple[str, str], str]:
    return {(m[1], m[2]): m[3] + "\n" for m in RECIPE.finditer(README.read_text())}


def _write(stack: str, where: Path) -> None:
    files = {name: text for (s, name), text in recipes().items() if s == stack}
    assert files, f"README.md has no {stack} recipe"
    for name, text in files.items():
        (where / name).write_text(text)


def _env(where: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # The package under test, then the recipe's own directory (as `python app.py` would).
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(where)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def _process(cmd: list[str], where: Path, env: dict[str, str]) -> Iterator[Path]:
    log = where / "output.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=where, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def _get(url: str, log: Path, **kwargs: object) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the server never answered:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.1)


def _wait_for_line(log: Path, needle: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line contains {needle!r}:\n{log.read_text()[-3000:]}")


def _check_server(cmd: list[str], where: Path, port: int) -> None:
    with _process(cmd, where, _env(where)) as log:
        url = f"http://127.0.0.1:{port}/hello"
        for sent in (None, "abc-123"):
            headers = {"X-Request-ID": sent} if sent else {}
            answer = _get(url, log, headers=headers)
            assert answer.status_code == 200, answer.text
            rid = answer.headers["x-request-id"]
            assert answer.json() == {"request_id": rid}
            if sent:
                assert rid == sent
            assert _wait_for_line(log, f"[{rid}] hello").startswith("INFO")


def test_every_stack_has_a_recipe_of_about_twenty_lines() -> None:
    found = recipes()
    assert {stack for stack, _ in found} == {"fastapi", "flask", "django", "celery"}
    for (stack, name), text in found.items():
        assert len(text.splitlines()) <= 40, (stack, name)


def test_fastapi_recipe(tmp_path: Path) -> None:
    _write("fastapi", tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)]
    _check_server(cmd, tmp_path, port)


def test_flask_recipe(tmp_path: Path) -> None:
    _write("flask", tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    _check_server(cmd, tmp_path, port)


def test_django_recipe(tmp_path: Path) -> None:
    _write("django", tmp_path)
    port = free_port()
    # As printed (with Django's autoreloader); only the port differs.
    _check_server([sys.executable, "app.py", "runserver", str(port)], tmp_path, port)


def test_celery_recipe(tmp_path: Path, redis_server: str) -> None:
    _write("celery", tmp_path)
    env = {**_env(tmp_path), "REDIS_URL": f"{redis_server}/0"}
    # As printed: the default prefork pool, so the task runs in a forked child.
    worker = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel=INFO"]
    with _process(worker, tmp_path, env) as log:
        _wait_for_line(log, "ready")
        published = subprocess.run(
            [sys.executable, "publish.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert published.returncode == 0, published.stderr[-3000:]
        result = ast.literal_eval(published.stdout.strip())  # the dict the recipe prints
        assert result["parent_request_id"] == "web-1"
        task_id = result["request_id"]
        assert re.fullmatch(r"[0-9a-f-]{36}", task_id), task_id
        assert _wait_for_line(log, "greeting ann").startswith(f"INFO [{task_id}]")
