"""Fuzz `RequestIdPolicy.resolve`: accepted iff the grammar holds, else a fresh id or 400."""

from __future__ import annotations

from _checks import HEX32, ID_GRAMMAR, SAFE_FLOOR, not_leaked, text
from _harness import instrumented, main

with instrumented():
    from asynclocal.request import InvalidRequestId, RequestIdPolicy

DEFAULT = RequestIdPolicy()
CUSTOM = RequestIdPolicy(validator=lambda value: True)
STRICT = RequestIdPolicy(reject_invalid=True)
TRUSTED = RequestIdPolicy(trusted_proxies=["10.0.0.0/8", "::1"])

SEEDS = [b"abc-123", b"a" * 129, b"id\r\nSet-Cookie: x=1", b"caf\xe9", b"10.0.0.1|abc"]


def one_input(data: bytes) -> None:
    value = text(data)
    valid = ID_GRAMMAR.fullmatch(value) is not None
    got = DEFAULT.resolve(value, None)
    assert got == value if valid else HEX32.fullmatch(got)
    got = CUSTOM.resolve(value, None)
    assert got == value if SAFE_FLOOR.fullmatch(value) else HEX32.fullmatch(got)
    try:
        got = STRICT.resolve(value)
    except InvalidRequestId as exc:
        assert not valid
        not_leaked(value, str(exc), exc.public_message)
    else:
        assert valid
        assert got == value
    peer, _, rest = value.partition("|")
    got = TRUSTED.resolve(rest, peer)
    assert got == rest or HEX32.fullmatch(got)


if __name__ == "__main__":
    main(one_input, SEEDS)
