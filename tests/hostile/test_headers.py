"""Request headers from an ASGI scope, a WSGI environ, aiohttp and Lambda, as `ctx.headers`.

Grammar: names are lower-cased; a name sent more than once is one entry, its
values joined in order with ``", "`` (``"; "`` for ``cookie``). The view never
raises on any bytes, holds nothing the request did not send, and costs linear
time in the header block, however often a name repeats.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynclocal import current_request, with_request_context
from asynclocal.request import RequestContextFactory

from ._props import HOSTILE, assert_linear

_names = st.one_of(
    st.sampled_from([b"x-request-id", b"cookie", b"x-a", b"X-A", b"content-type"]),
    st.binary(min_size=1, max_size=12),
)
_header_lists = st.lists(st.tuples(_names, st.binary(max_size=40)), max_size=30)


def expected_view(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    values: dict[str, list[str]] = {}
    for name, value in raw:
        values.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return {k: ("; " if k == "cookie" else ", ").join(v) for k, v in values.items()}


def _scope(raw: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": raw,
        "client": ("127.0.0.1", 1),
    }


def _headers_seen() -> dict[str, str]:
    ctx = current_request()
    ctx.cookies  # noqa: B018 - parsing must not raise either
    return dict(ctx.headers)


@HOSTILE
@given(_header_lists)
def test_asgi_view_joins_repeats_and_never_raises(raw: list[tuple[bytes, bytes]]) -> None:
    seen = with_request_context(_scope(raw), _headers_seen)
    assert seen == expected_view(raw)
    total = sum(len(n) + len(v) + 2 for n, v in raw)
    assert sum(len(k) + len(v) for k, v in seen.items()) <= total


@HOSTILE
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(max_codepoint=0xFF), min_size=1, max_size=12),
            st.text(st.characters(max_codepoint=0xFF), max_size=40),
        ),
        max_size=20,
    )
)
def test_wsgi_environ_view(pairs: list[tuple[str, str]]) -> None:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.version": (1, 0)}
    expected: dict[str, str] = {}
    for name, value in pairs:
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = value
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            expected[key[5:].replace("_", "-").lower()] = value
    seen = with_request_context(environ, _headers_seen)
    assert seen == expected


# Keys by which `with_request_context` recognises a scope or an environ instead.
_DISPATCH_KEYS = {"type", "request_method", "wsgi.version"}


@HOSTILE
@given(
    st.dictionaries(
        st.text(max_size=12).filter(lambda k: k.lower() not in _DISPATCH_KEYS),
        st.text(max_size=40),
        max_size=20,
    )
)
def test_plain_mapping_view(headers: dict[str, str]) -> None:
    seen = with_request_context(headers, _headers_seen)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered[name.lower()] = value
    assert seen == lowered


def test_repeated_cookie_headers_are_one_cookie_string() -> None:
    raw = [(b"cookie", b"a=1"), (b"x-a", b"p"), (b"cookie", b"b=2; a=3"), (b"x-a", b"q")]
    seen = with_request_context(_scope(raw), lambda: dict(current_request().cookies))
    assert seen == {"a": "1", "b": "2"}
    assert with_request_context(_scope(raw), _headers_seen)["x-a"] == "p, q"


# -- cost: repeated names were joined by copying the growing value (quadratic) --------------

_FACTORY = RequestContextFactory()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
        (b"cookie", b"session=0123456789"),
        (b"x-forwarded-for", b"10.0.0.1"),
    ],
)
def test_repeated_header_cost_is_linear(name: bytes, value: bytes) -> None:
    def make(count: int) -> object:
        scope = _scope([(name, value)] * count)

        def job() -> object:
            ctx = _FACTORY.from_asgi(scope)
            return dict(ctx.headers), ctx.cookies

        return job

    # 5,000 -> 40,000 repeats.
    assert_linear(make, 5000, f"{name.decode()} repeated")  # type: ignore[arg-type]


def test_many_distinct_headers_cost_is_linear() -> None:
    def make(count: int) -> object:
        scope = _scope([(f"x-h{i}".encode(), b"v" * 20) for i in range(count)])
        return lambda: dict(_FACTORY.from_asgi(scope).headers)

    assert_linear(make, 500, "distinct ASGI headers")  # type: ignore[arg-type]


def test_wsgi_environ_cost_is_linear() -> None:
    def make(count: int) -> object:
        environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
        environ.update({f"HTTP_X_H{i}": "v" * 20 for i in range(count)})
        environ["HTTP_COOKIE"] = "; ".join(f"c{i}=v" for i in range(count))
        return lambda: (
            dict(_FACTORY.from_environ(environ).headers),
            _FACTORY.from_environ(environ).cookies,
        )

    assert_linear(make, 1000, "WSGI environ headers")  # type: ignore[arg-type]
