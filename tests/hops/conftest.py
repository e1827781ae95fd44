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
