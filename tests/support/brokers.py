"""Start real brokers on 127.0.0.1: nats-server, rabbitmq-server, redis-server.

Each helper is a context manager yielding the broker's URL and stopping the
process (and only it) on exit. Used by tests/hops and benchmarks/bench_hops.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import free_port

__all__ = ["BrokerMissing", "find_binary", "run_nats", "run_rabbitmq", "run_redis"]

RABBITMQ_START_TIMEOUT = 90.0


class BrokerMissing(RuntimeError):
    """The broker's binary is not installed."""


def find_binary(binary: str, package: str) -> str:
    """The path of `binary`; raises `BrokerMissing` naming the Debian `package`."""
    candidates = [shutil.which(binary), f"/usr/sbin/{binary}", f"/usr/lib/rabbitmq/bin/{binary}"]
    for path in candidates:
        if path and os.path.exists(path):
            return path
    raise BrokerMissing(
        f"{binary} is not installed: scripts/_setup.sh installs it (apt-get install {package})"
    )


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "<no output>"


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of our own process group only
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _wait_port(
    proc: subprocess.Popen[bytes], port: int, log: Path, what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{_tail(log)}")
        time.sleep(0.05)


@contextlib.contextmanager
def run_nats(workdir: Path) -> Iterator[str]:
    """A private nats-server on a free loopback port; yields ``nats://127.0.0.1:PORT``."""
    binary = find_binary("nats-server", "nats-server")
    port = free_port()
    log = workdir / "nats.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_port(proc, port, log, "nats-server", 20)
        yield f"nats://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def run_rabbitmq(workdir: Path) -> Iterator[str]:
    """A private rabbitmq-server; yields ``amqp://guest:guest@127.0.0.1:PORT/``.

    Own node name, AMQP/distribution/epmd ports, mnesia and log directories and
    Erlang cookie (``HOME``), all under `workdir`. It takes seconds to boot.
    """
    binary = find_binary("rabbitmq-server", "rabbitmq-server")
    if binary == "/usr/sbin/rabbitmq-server" and os.path.exists("/usr/lib/rabbitmq/bin"):
        binary = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the sbin wrapper switches user
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    (workdir / "enabled_plugins").write_text("[].\n")
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "log.console = true\nlog.console.level = warning\nlog.file = false\n"
    )
    env = dict(os.environ)
    env.update(
        HOME=str(workdir),  # the Erlang cookie lives here: private to this node
        RABBITMQ_NODENAME=f"hops-{uuid.uuid4().hex[:8]}@localhost",
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist_port),
        ERL_EPMD_ADDRESS="127.0.0.1",
        ERL_EPMD_PORT=str(epmd_port),
        RABBITMQ_MNESIA_BASE=str(workdir / "mnesia"),
        RABBITMQ_LOG_BASE=str(workdir / "log"),
        RABBITMQ_CONFIG_FILE=str(workdir / "rabbitmq"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(workdir / "enabled_plugins"),
        RABBITMQ_PLUGINS_EXPAND_DIR=str(workdir / "plugins"),
        RABBITMQ_PID_FILE=str(workdir / "rabbitmq.pid"),
    )
    log = workdir / "rabbitmq.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        _wait_port(proc, port, log, "rabbitmq-server", RABBITMQ_START_TIMEOUT)
        yield f"amqp://guest:guest@127.0.0.1:{port}/"
    finally:
        _stop(proc, grace=20)
        # The node started its own epmd on a private port: stop that one only.
        subprocess.run(
            [shutil.which("epmd") or "epmd", "-port", str(epmd_port), "-kill"],
            env=env,
            capture_output=True,
            timeout=10,
            check=False,
        )


@contextlib.contextmanager
def run_redis(workdir: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port; yields ``redis://127.0.0.1:PORT``."""
    binary = find_binary("redis-server", "redis-server")
    port = free_port()
    log = workdir / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_port(proc, port, log, "redis-server", 15)
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(proc)
