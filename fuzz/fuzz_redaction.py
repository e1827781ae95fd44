"""Fuzz the log redactor through its public functions: never raises, returns text."""

from __future__ import annotations

from _checks import text
from _harness import instrumented, main

with instrumented():
    from asynclocal.logging import default_redactor, escape_control

SEEDS = [
    b"password=hunter2 token: abc",
    b'{"api_key": "k", "Authorization": "Bearer x"}',
    b"http://alice:pw@host/ http%3A//alice%3Apw%40host",
    b"Error: password: hunter2secret\nValueError: token=abc",
]


def one_input(data: bytes) -> None:
    value = data.decode("utf-8", "replace")
    redactor = default_redactor
    masked = redactor.redact_text(value)
    assert isinstance(masked, str)
    assert isinstance(redactor.redact_value({"password": value, "x": [value]}), dict)
    escaped = escape_control(text(data))
    assert "\n" not in escaped
    assert "\r" not in escaped


if __name__ == "__main__":
    main(one_input, SEEDS)
