"""Fixtures for the core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asynclocal import processes


@pytest.fixture
def processes_installed() -> Iterator[None]:
    """`asynclocal.processes.install()` for one test, undone afterwards."""
    was = processes.installed()
    processes.install()
    try:
        yield
    finally:
        if not was:
            processes.uninstall()
