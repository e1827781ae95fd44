"""Fuzz the ``Cookie`` parser: never raises, bounded output, names without separators."""

from __future__ import annotations

from _checks import text
from _harness import instrumented, main

with instrumented():
    from asynclocal.request import MAX_COOKIES, parse_cookie_header

SEEDS = [
    b"a=1; b=2",
    b'access_token="\\\\\\\\\\\\"; theme=dark',
    b'a="x\\"y\\012"; b=""; c="',
    b"  ;=; a = b ;;",
]


def one_input(data: bytes) -> None:
    header = text(data)
    cookies = parse_cookie_header(header)
    assert len(cookies) <= MAX_COOKIES
    assert sum(len(k) + len(v) for k, v in cookies.items()) <= len(header)
    for name, value in cookies.items():
        assert name
        assert ";" not in name
        assert "=" not in name
        assert ";" not in value


if __name__ == "__main__":
    main(one_input, SEEDS)
