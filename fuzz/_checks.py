"""Grammars and small helpers shared by the fuzz targets."""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine
from typing import Any

ID_GRAMMAR = re.compile(r"[A-Za-z0-9\-._~:+=/]{1,128}")
SAFE_FLOOR = re.compile(r"[\x21-\x7e]{1,1024}")
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def text(data: bytes) -> str:
    """Bytes as header text, the way servers hand them over (Latin-1)."""
    return data.decode("latin-1")


def pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    """Lines of ``name:value`` (a line without a colon is a name with an empty value)."""
    out = []
    for line in data.split(b"\n"):
        name, _, value = line.partition(b":")
        if name:
            out.append((name.lower(), value))
    return out


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never really waits, without an event loop."""
    try:
        while True:
            coro.send(None)
    except StopIteration as stop:
        return stop.value


class LogLines(logging.Handler):
    """Collects every message logged while installed (root logger, all levels)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> LogLines:
        root = logging.getLogger()
        root.addHandler(self)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


def not_leaked(value: str, *outputs: str) -> None:
    """A rejected value of some length appears in none of `outputs`."""
    if len(value) >= 12:
        for out in outputs:
            assert value not in out, "a rejected value was echoed or logged"
