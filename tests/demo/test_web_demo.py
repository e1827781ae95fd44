"""`python -m asynclocal demo` with its web phase, run end to end as a user runs it.

Each run starts the example service and its peer under uvicorn on loopback
ports, fires a concurrent burst and checks every response, log line and peer
call; these tests assert on what the CLI prints and its exit status.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest

from asynclocal._demo import _web
from asynclocal._demo._web_client import plan

pytestmark = pytest.mark.skipif(
    _web.unavailable() is not None, reason="the 'demo' extra is not installed"
)


def _row(stdout: str, phase: str) -> list[str]:
    rows = [line.split(None, 5) for line in stdout.splitlines() if line.startswith(phase + " ")]
    assert len(rows) == 1, stdout
    return rows[0]


def test_web_phase_checks_every_request_and_reports_the_service_numbers(run_demo) -> None:
    requests, seed = 100, 5
    done = run_demo(
        [
            "demo",
            "--phases",
            "web",
            "--requests",
            str(requests),
            "--seed",
            str(seed),
            "--no-progress",
        ]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: zero mix-ups" in done.stdout
    _, count, checks, mixups, _, note = _row(done.stdout, "web")
    assert int(count) == requests
    assert int(mixups) == 0
    # Every request is checked on many points (status, ids, headers, log lines, peer calls).
    assert int(checks) >= 20 * requests
    planned = plan(requests, seed)
    forbidden = sum(p.expected == 403 for p in planned)
    refreshes = sum(p.expired and p.expected == 200 for p in planned)
    assert 0 < forbidden < requests
    assert refreshes > 0
    # The numbers come from the service's real answers and the peer's records.
    assert f"{forbidden} x 403" in note
    assert f"{refreshes} token refreshes" in note
    assert "p50 " in note
    assert "p95 " in note


def test_a_mixed_up_response_fails_the_demo(run_demo) -> None:
    # Corrupt what one response says its request id is: the checks must catch it.
    prelude = (
        "import dataclasses\n"
        "from asynclocal._demo import _web_client\n"
        "_send = _web_client._send\n"
        "async def corrupted(client, p, secret):\n"
        "    outcome = await _send(client, p, secret)\n"
        "    if p.seq == 7:\n"
        "        outcome = dataclasses.replace(outcome, echoed_id='someone-else')\n"
        "    return outcome\n"
        "_web_client._send = corrupted\n"
    )
    done = run_demo(
        ["demo", "--phases", "web", "--requests", "30", "--no-progress"], prelude=prelude
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stderr
    assert "request 7 " in done.stderr
    assert int(_row(done.stdout, "web")[3]) > 0


def test_without_the_demo_extra_the_web_phase_is_skipped_and_the_rest_runs(run_demo) -> None:
    done = run_demo(
        ["demo", "--phases", "asyncio,web", "--requests", "20", "--no-progress"],
        prelude="import sys\nsys.modules['uvicorn'] = None  # as if not installed",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: needs the 'demo' extra (uvicorn not installed)" in done.stdout
    assert "pip install 'asynclocal[demo]'" in done.stdout
    assert int(_row(done.stdout, "asyncio")[1]) == 20


def test_a_service_answers_while_open_and_is_gone_after(tmp_path: Path) -> None:
    with _web._service("peer", [], b"test-secret", tmp_path) as url:
        records = json.loads(urllib.request.urlopen(f"{url}/_records", timeout=10).read())
        assert records == []
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
