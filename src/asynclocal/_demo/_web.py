"""The demo's ``web`` phase: a real service under uvicorn, a second service, a burst, checks.

Two processes are started on free 127.0.0.1 ports (`_web_server`): the
example app (`_web_app`: cookie login, RBAC, SQLite transactions, JSON logs,
``Server-Timing``) and its peer (`_web_peer`: token server and accounts API).
This process fires the planned burst at the app (`_web_client`), then checks
every response, every line of the app's JSON log and every call the peer
recorded (`_web_check`). Needs the 'demo' extra; without it the phase is
skipped and says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ._base import Phase, Progress, Tally, register
from ._web_data import SECRET_ENV

if TYPE_CHECKING:
    from ._web_check import Stats
    from ._web_client import Outcome

__all__ = ["CONCURRENCY", "unavailable"]

#: Requests in flight at once during the burst.
CONCURRENCY = 32
# greenlet: asynclocal.transactions imports sqlalchemy.ext.asyncio, which needs it.
_NEEDS = ("starlette", "uvicorn", "httpx", "pythonjsonlogger", "sqlalchemy", "greenlet", "grpc")
_START_TIMEOUT = 30.0


def unavailable() -> str | None:
    """Why the web phase cannot run here (a missing extra), or None."""
    missing = [name for name in _NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"needs the 'demo' extra ({', '.join(missing)} not installed): "
            "pip install 'asynclocal[demo]'"
        )
    return None


@contextmanager
def _service(
    role: str,
    args: list[str],
    secret: bytes,
    workdir: Path,
    extra_ports: list[int] | None = None,
) -> Iterator[str]:
    """Start `_web_server role`; yield its base URL once it is READY; stop it on exit.

    Other ports the service reports (the peer's gRPC ledger) are appended to `extra_ports`.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, SECRET_ENV: secret.decode()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    stderr_path = workdir / f"{role}.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asynclocal._demo._web_server",
                role,
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
        )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        first: list[str] = []
        out = proc.stdout
        reader = threading.Thread(target=lambda: first.append(out.readline()), daemon=True)
        reader.start()
        reader.join(_START_TIMEOUT)
        ready, *ports = (first[0] if first else "").split()
        if ready != "READY" or not ports or not all(p.isdigit() for p in ports):
            tail = stderr_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the demo's {role} service did not start:\n{tail}")
        if extra_ports is not None:
            extra_ports.extend(int(p) for p in ports[1:])
        yield f"http://127.0.0.1:{ports[0]}"
    finally:
        proc.stdin.close()  # the server stops when its stdin closes
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


def _in_flight(requests: int) -> int:
    return max(1, min(CONCURRENCY, requests))


def _percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _burst(
    requests: int, seed: int, secret: bytes, progress: Progress, tally: Tally, stats: Stats
) -> tuple[list[Outcome], float]:
    """Start both services, fire the burst, stop them, run every check."""
    from ._web_check import check_logs, check_peer, check_responses
    from ._web_client import fire, plan

    planned = plan(requests, seed)
    with tempfile.TemporaryDirectory(prefix="asynclocal-demo-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        log_path = workdir / "app.jsonl"
        ledger_ports: list[int] = []
        peer_args = ["--seed", str(seed)]
        peer_url = stack.enter_context(_service("peer", peer_args, secret, workdir, ledger_ports))
        if not ledger_ports:
            raise RuntimeError("the demo's peer service did not report its gRPC ledger port")
        app_args = ["--peer-url", peer_url, "--log", str(log_path)]
        app_args += ["--ledger", f"127.0.0.1:{ledger_ports[0]}"]
        app_args += ["--db", str(workdir / "app.db"), "--rows", str(requests)]
        app_url = stack.enter_context(_service("app", app_args, secret, workdir))
        outcomes, seconds = fire(app_url, planned, secret, _in_flight(requests), progress)
        with urllib.request.urlopen(f"{peer_url}/_records", timeout=30) as response:
            records = json.loads(response.read())
        stack.close()  # stop both services: the app's log is complete once it exited
        check_responses(outcomes, tally, stats)
        check_logs(log_path.read_text(encoding="utf-8"), outcomes, tally, stats)
        check_peer(records, outcomes, tally, stats)
        if tally.mixups:
            for role in ("app", "peer"):
                tail = (workdir / f"{role}.stderr").read_text(errors="replace")[-3000:]
                if tail.strip():
                    print(f"--- the {role} service's stderr ---\n{tail}", file=sys.stderr)
    return outcomes, seconds


def _run_web(requests: int, seed: int, progress: Progress) -> tuple[Tally, str]:
    from ._web_check import Stats

    tally = Tally()
    stats = Stats()
    secret = secrets.token_hex(16).encode()
    try:
        outcomes, seconds = _burst(requests, seed, secret, progress, tally, stats)
    except (RuntimeError, OSError) as exc:
        tally.check("the demo's services running", str(exc), "web phase")
        return tally, "failed: the services did not run"
    latencies = [o.seconds * 1000 for o in outcomes if o.error is None]
    rate = len(outcomes) / seconds if seconds else 0.0
    note = (
        f"{stats.forbidden} x 403, {stats.refreshes} token refreshes, "
        f"{stats.log_lines} log lines, {stats.peer_calls} peer calls; "
        f"p50 {_percentile(latencies, 50):.0f}ms p95 {_percentile(latencies, 95):.0f}ms, "
        f"{rate:.0f} req/s ({_in_flight(requests)} in flight)"
    )
    return tally, note


register(
    Phase(
        "web",
        "a Starlette service under uvicorn, a peer HTTP service and a gRPC ledger, hit by a "
        "concurrent HTTP burst (cookie login, RBAC, SQLite transactions, token refresh, "
        "a gRPC hop, JSON logs, Server-Timing)",
        _run_web,
        unavailable,
    )
)
