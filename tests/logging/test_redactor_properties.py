"""Properties of the redactor: never raises, a secret never survives, bounded, linear."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynclocal.logging import REDACTED, Formatter, Redactor, default_redactor

SECRET_KEYS = (
    "password",
    "passwd",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "X-Api-Key",
    "authorization",
    "Authorization",
    "client_secret",
    "cookie",
    "session",
    "sessionid",
    "csrftoken",
    "private_key",
    "db_password",
    "AWS_SECRET_ACCESS_KEY",
)
SEPARATORS = ("=", ": ", ":", " = ", '": "', "': '", "%3D", "%3A", '\\": \\"')
TAILS = ("", " ", "&next=1", "; theme=dark", '"', "'", ", user=bob", "\n", "}", ")")
secrets_st = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=10
).map(lambda s: "S" + s[:40])
prefix_st = st.text(max_size=60)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_never_raises_and_output_is_bounded(text: str) -> None:
    out = default_redactor.redact_text(text)
    assert isinstance(out, str)
    assert len(out) <= len(REDACTED) * (len(text) + 1)
    assert default_redactor.redact_text(out) == out or REDACTED in out  # stable


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix_st,
    st.sampled_from(SECRET_KEYS),
    st.sampled_from(SEPARATORS),
    secrets_st,
    st.sampled_from(TAILS),
    prefix_st,
)
def test_a_secret_after_a_secret_key_never_survives(
    prefix: str, key: str, sep: str, secret: str, tail: str, suffix: str
) -> None:
    text = f"{prefix} {key}{sep}{secret}{tail}{suffix}"
    out = default_redactor.redact_text(text)
    assert secret not in out


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SECRET_KEYS), secrets_st, st.text(max_size=30))
def test_secrets_in_nested_json_never_survive(key: str, secret: str, other: str) -> None:
    inner = json.dumps({"user": other, key: secret})
    for text in (inner, json.dumps({"event": inner}), json.dumps({"a": json.dumps({"b": inner})})):
        assert secret not in default_redactor.redact_text(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200), st.sampled_from(SECRET_KEYS), secrets_st)
def test_values_under_secret_keys_never_survive(other: str, key: str, secret: str) -> None:
    value = {"note": other, key: secret, "nested": [{key: secret}, (key, secret)]}
    assert secret not in repr(default_redactor.redact_value(value))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_the_formatter_never_raises_and_keeps_one_line(text: str) -> None:
    import logging

    record = logging.LogRecord("p", logging.INFO, "f", 1, "%s", (text,), None)
    line = Formatter("%(message)s").format(record)
    assert "\n" not in line
    assert "\r" not in line


def _cost(fn: Callable[[str], object], text: str) -> float:
    # CPU time of this process, best of 7: other processes on a shared machine
    # do not inflate it.
    best = float("inf")
    for _ in range(7):
        start = time.process_time()
        fn(text)
        best = min(best, time.process_time() - start)
    return best


# Worst cases for a scanner of keys, quotes, brackets, URLs and percent-encoding.
HOSTILE_UNITS = {
    "separators": "a:",
    "assignments": "a=",
    "secret-keys": "password: ",
    "secret-key-quotes": 'password:"',
    "unterminated-quotes": '"password=\\',
    "brackets": "password={[(",
    "header-pairs": "'password', '",
    "url-userinfo": "://a:",
    "encoded-url": "%3A//a%3A",
    "percent-runs": "%41",
    "long-word": "a",
    "spaces-after-key": "a ",
    "scheme-words": "password: Token ",
    "jwt-like": "eyJ",
    "backslashes": "\\",
    "mixed": 'k="v", password: {x: ',
}


@pytest.mark.parametrize("unit", HOSTILE_UNITS.values(), ids=HOSTILE_UNITS.keys())
def test_cost_is_linear_in_the_input(unit: str) -> None:
    redactor = Redactor(extra_keys=("remember_me",))
    small = unit * (4096 // len(unit))
    large = unit * (8 * 4096 // len(unit))
    redactor.redact_text(small)  # warm caches
    ratios = []
    for _ in range(3):  # a noisy measurement is repeated, a quadratic one never passes
        ratio = _cost(redactor.redact_text, large) / max(_cost(redactor.redact_text, small), 1e-6)
        ratios.append(ratio)
        # Linear: 8x the input costs about 8x; quadratic would cost about 64x.
        if ratio < 24:
            break
    assert min(ratios) < 24, f"8x input cost {ratios}"
