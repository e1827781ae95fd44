"""Fixtures shared by every test area."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asynclocal import threads


@pytest.fixture
def threads_installed() -> Iterator[None]:
    """`asynclocal.threads.install()` for one test, undone afterwards (unless it was on)."""
    was = threads.installed()
    threads.install()
    try:
        yield
    finally:
        if not was:
            threads.uninstall()
