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
