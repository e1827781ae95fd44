"""Capture JSON log lines (asynclocal's `JsonFormatter`) from named loggers in a test."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any


class JsonLines(logging.Handler):
    """Keeps every record as the dict its JSON line parses to (thread-safe)."""

    def __init__(self) -> None:
        from asynclocal.logging import JsonFormatter

        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        with self._lock:
            self.lines.append(line)


@contextlib.contextmanager
def capture_json_lines(*logger_names: str) -> Iterator[JsonLines]:
    """Send the INFO+ records of `logger_names` (only) to a `JsonLines` handler."""
    handler = JsonLines()
    loggers = [logging.getLogger(name) for name in logger_names]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    try:
        yield handler
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
            lg.propagate = True
