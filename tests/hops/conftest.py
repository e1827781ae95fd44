"""Fixtures of the hop tests: propagation settings, real brokers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asynclocal import propagation


@pytest.fixture
def loopback_targets() -> Iterator[None]:
    """Propagation toward 127.0.0.1 only, for one test."""
    propagation.reset_config()
    propagation.configure(targets=["127.0.0.1"])
    try:
        yield
    finally:
        propagation.reset_config()


# The real redis-server the task queue tests start (session-scoped, on 127.0.0.1).
from tests.queues.conftest import redis_server  # noqa: E402, F401


def _require(binary: str, package: str) -> str:
    import os
    import shutil

    found = shutil.which(binary) or next(
        (
            p
            for p in (f"/usr/sbin/{binary}", f"/usr/lib/rabbitmq/bin/{binary}")
            if os.path.exists(p)
        ),
        None,
    )
    if found is None:
        message = (
            f"{binary} is not installed: scripts/_setup.sh installs it (apt-get install {package})"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private nats-server on a free loopback port; yields ``nats://127.0.0.1:PORT``."""
    import socket
    import subprocess
    import time

    from tests.queues.conftest import _stop, _tail
    from tests.support.servers import free_port

    binary = _require("nats-server", "nats-server")
    workdir = tmp_path_factory.mktemp("nats")
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
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start:\n{_tail(log)}")
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        _stop(proc)


RABBITMQ_START_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private rabbitmq-server (own node name, ports, mnesia dir, epmd); yields its amqp:// URL.

    RabbitMQ takes seconds to boot: one node serves the whole session.
    """
    import os
    import socket
    import subprocess
    import time
    import uuid

    from tests.queues.conftest import _stop, _tail
    from tests.support.servers import free_port

    binary = _require("rabbitmq-server", "rabbitmq-server")
    if binary == "/usr/sbin/rabbitmq-server" and os.path.exists("/usr/lib/rabbitmq/bin"):
        binary = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the sbin wrapper switches user
    base = tmp_path_factory.mktemp("rabbitmq")
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "log.console = true\nlog.console.level = warning\nlog.file = false\n"
    )
    env = dict(os.environ)
    env.update(
        HOME=str(base),  # the Erlang cookie lives here: private to this node
        RABBITMQ_NODENAME=f"hops-{uuid.uuid4().hex[:8]}@localhost",
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist_port),
        ERL_EPMD_ADDRESS="127.0.0.1",
        ERL_EPMD_PORT=str(epmd_port),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_PLUGINS_EXPAND_DIR=str(base / "plugins"),
        RABBITMQ_PID_FILE=str(base / "rabbitmq.pid"),
    )
    log = base / "rabbitmq.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + RABBITMQ_START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.5):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmq-server did not start:\n{_tail(log)}")
            time.sleep(0.1)
        yield f"amqp://guest:guest@127.0.0.1:{port}/"
    finally:
        _stop(proc, grace=20)
        # The node started its own epmd on a private port: stop that one only.
        epmd = "/usr/bin/epmd" if os.path.exists("/usr/bin/epmd") else "epmd"
        subprocess.run(
            [epmd, "-port", str(epmd_port), "-kill"],
            env=env,
            capture_output=True,
            timeout=10,
            check=False,
        )
