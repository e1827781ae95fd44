"""Sentry events and transactions carry their own request's ids: real servers, real SDK.

Each scenario runs in a child process (Sentry's framework integrations patch
Starlette/Flask/Celery process-wide) with an in-memory transport, fires 50
interleaved requests and prints every payload the SDK sent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sentry_sdk")

ROOT = Path(__file__).resolve().parents[2]
_NUMBER = re.compile(r"(?:boom|msg|thread)-(\d+)|/(?:fail|msg)/(\d+)")


def run_scenario(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("PYTEST_CURRENT_TEST", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.logging.sentry_scenarios", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


def request_number(payload: dict[str, Any]) -> int:
    texts = [
        str(payload.get("message") or ""),
        str((payload.get("logentry") or {}).get("message") or ""),
        str((payload.get("request") or {}).get("url") or ""),
        str(payload.get("transaction") or ""),
        *(str(v.get("value")) for v in (payload.get("exception") or {}).get("values", [])),
    ]
    for text in texts:
        found = _NUMBER.search(text)
        if found:
            return int(found.group(1) or found.group(2))
    raise AssertionError(f"payload names no request: {texts}")


def check(result: dict[str, Any], *, expect_events: int, expect_transactions: int) -> None:
    sent: dict[str, str] = result["sent"]
    payloads: list[dict[str, Any]] = result["payloads"]
    events = [p for p in payloads if p.get("type") != "transaction"]
    transactions = [p for p in payloads if p.get("type") == "transaction"]
    assert len(events) == expect_events
    assert len(transactions) == expect_transactions
    for payload in payloads:
        i = request_number(payload)
        tags = payload.get("tags") or {}
        assert tags.get("request_id") == sent[str(i)], (i, payload.get("type"), tags)
        assert (payload.get("user") or {}).get("id") == f"user-{i}"
        context = payload["contexts"]["asynclocal"]
        assert context["request_id"] == sent[str(i)]
        assert re.fullmatch(r"[0-9a-f]{32}", context["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", context["span_id"])
        assert context["root_request_id"]


def test_asgi_under_uvicorn_events_and_transactions_carry_their_request() -> None:
    result = run_scenario("asgi")
    # 25 failing requests (one error each), 25 with two messages (request + thread).
    check(result, expect_events=75, expect_transactions=50)
    assert all(rid == f"rq-{i}-x" for i, rid in result["sent"].items())


def test_wsgi_flask_under_waitress_events_and_transactions_carry_their_request() -> None:
    result = run_scenario("wsgi")
    check(result, expect_events=50, expect_transactions=50)
