"""Fixtures of the hop tests: propagation settings, real brokers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from asynclocal import propagation
from tests.support.brokers import BrokerMissing, run_nats, run_rabbitmq


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


def _broker(starter: Any, tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    import os

    try:
        with starter(tmp_path_factory.mktemp(name)) as url:
            yield url
    except BrokerMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))  # CI installs every broker: a missing one is a broken setup
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private nats-server on 127.0.0.1 for the session; yields its nats:// URL."""
    yield from _broker(run_nats, tmp_path_factory, "nats")


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private rabbitmq-server for the session (it is slow to boot); yields its amqp:// URL."""
    yield from _broker(run_rabbitmq, tmp_path_factory, "rabbitmq")
