"""The ``Cookie`` parser: linear, capped, tolerant, and SimpleCookie's results on sane input.

Grammar (what `parse_cookie_header` documents): pieces split on ``;``, each
``name=value`` with whitespace stripped; no ``=`` or an empty name: skipped;
first occurrence wins; a double-quoted value loses its quotes and, when the
inside is a well-formed quoted string, its backslash escapes are decoded as
`SimpleCookie` does; at most `MAX_COOKIE_HEADER_LENGTH` characters are read
and `MAX_COOKIES` pairs kept.
"""

from __future__ import annotations

import re
from http.cookies import CookieError, SimpleCookie

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynclocal.request import (
    MAX_COOKIE_HEADER_LENGTH,
    MAX_COOKIES,
    RequestContext,
    parse_cookie_header,
)

from ._props import FEW, HOSTILE, assert_linear

# -- a reference: the SimpleCookie-based parser, for small, safe inputs only ----------------

_RESERVED = {
    "expires",
    "path",
    "comment",
    "domain",
    "max-age",
    "secure",
    "httponly",
    "version",
    "samesite",
    "partitioned",
}


def simplecookie_reference(header: str) -> dict[str, str]:
    """What `SimpleCookie` makes of each pair (quadratic on some interpreters: small inputs)."""
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                parsed: SimpleCookie = SimpleCookie()
                parsed.load(f"{name}={value}")
                morsel = parsed.get(name)
                value = morsel.value if morsel is not None else value[1:-1]
            except CookieError:
                value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


# The names SimpleCookie keeps (its Morsel's legal key characters), without "$" (its
# attributes).
_KEY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#%&'*+-.^_`|~:"
# RFC 6265 cookie-octet.
_COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
_safe_names = st.text(_KEY_CHARS, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in _RESERVED
)
# Inside quotes: printable ASCII and spaces, with escapes (\", \\, \x, octal \012).
_quoted_piece = st.one_of(
    st.text("".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\;'), max_size=6),
    st.sampled_from(['\\"', "\\\\", "\\a", "\\012", "\\377", "\\000", "\\8"]),
)
_quoted_values = st.lists(_quoted_piece, max_size=6).map(lambda parts: '"' + "".join(parts) + '"')
_plain_values = st.text(_COOKIE_OCTETS, max_size=16)


@HOSTILE
@given(st.lists(st.tuples(_safe_names, st.one_of(_plain_values, _quoted_values)), max_size=8))
def test_same_results_as_simplecookie_on_sane_input(pairs: list[tuple[str, str]]) -> None:
    header = "; ".join(f"{name}={value}" for name, value in pairs)
    assert parse_cookie_header(header) == simplecookie_reference(header)


_tokens = st.text(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=12,
)


@HOSTILE
@given(st.lists(st.tuples(_tokens, _plain_values, st.booleans()), max_size=10))
def test_rfc6265_cookie_string(pairs: list[tuple[str, str, bool]]) -> None:
    # cookie-string = cookie-pair *( ";" SP cookie-pair ); a DQUOTEd value loses its quotes.
    header = "; ".join(f'{n}="{v}"' if quoted else f"{n}={v}" for n, v, quoted in pairs)
    expected: dict[str, str] = {}
    for name, value, _ in pairs:
        expected.setdefault(name, value)
    assert parse_cookie_header(header) == expected


# -- any input ------------------------------------------------------------------------------

_hostile_text = st.lists(
    st.sampled_from([*list(' \t;="\\=abc0\x00\r\n\x7fé€'), "\\012", '"\\']) | st.characters(),
    max_size=300,
).map("".join)


@HOSTILE
@given(_hostile_text)
def test_any_text_never_raises_and_output_is_bounded(header: str) -> None:
    cookies = parse_cookie_header(header)
    assert len(cookies) <= MAX_COOKIES
    assert sum(len(k) + len(v) for k, v in cookies.items()) <= len(header)
    for name, value in cookies.items():
        assert name
        assert name == name.strip()
        assert ";" not in name
        assert "=" not in name
        assert ";" not in value


@pytest.mark.parametrize("header", [None, 0, 12, b"a=1", ["a=1"], {"a": "1"}])
def test_non_text_yields_no_cookies(header: object) -> None:
    assert parse_cookie_header(header) == {}  # type: ignore[arg-type]


@HOSTILE
@given(_hostile_text)
def test_ctx_cookies_never_raises(header: str) -> None:
    ctx = RequestContext("r-1", headers={"Cookie": header})
    assert ctx.cookies == parse_cookie_header(header)


def test_escapes_decoded_as_simplecookie_does() -> None:
    header = r'a="x\"y\\z\012\101"; b="\8"; c="bad\"; d="one"two"; e=""; f="'
    assert parse_cookie_header(header) == {
        "a": 'x"y\\z\nA',
        "b": "8",
        "c": "bad\\",  # a lone trailing backslash: not a quoted string, kept as is
        "d": 'one"two',
        "e": "",
        "f": '"',
    }


def test_size_cap_keeps_whole_pairs_within_the_cap() -> None:
    pair = "k00000=v0000000000; "  # 20 characters
    count = MAX_COOKIE_HEADER_LENGTH // len(pair) + 50
    header = "".join(f"k{i:05d}=v{i:010d}; " for i in range(count))
    cookies = parse_cookie_header(header)
    assert len(cookies) == MAX_COOKIES
    assert cookies["k00000"] == "v0000000000"
    # One cookie bigger than the cap is ignored; the pairs before it are kept.
    huge = "a=1; b=" + "x" * MAX_COOKIE_HEADER_LENGTH
    assert parse_cookie_header(huge) == {"a": "1"}
    exact = "a=" + "x" * (MAX_COOKIE_HEADER_LENGTH - 2) + "; tail=1"
    assert parse_cookie_header(exact) == {"a": "x" * (MAX_COOKIE_HEADER_LENGTH - 2)}


def test_many_pairs_are_capped() -> None:
    header = "; ".join(f"c{i}=v" for i in range(5000))
    cookies = parse_cookie_header(header)
    assert len(cookies) == MAX_COOKIES
    assert list(cookies)[:3] == ["c0", "c1", "c2"]


# -- cost -----------------------------------------------------------------------------------

WORST_SHAPES = {
    "backslash run in quotes": lambda n: 'access_token="' + "\\" * n + '"',
    "escaped quotes": lambda n: 'a="' + '\\"' * (n // 2) + '"',
    "octal escapes": lambda n: 'a="' + "\\012" * (n // 4) + '"',
    "bare quote at the end": lambda n: 'a="' + "\\x" * (n // 2) + '""',
    "lone backslash at the end": lambda n: 'a="' + "x" * n + '\\"',
    "semicolons": lambda n: ";" * n,
    "equals signs": lambda n: "=" * n,
    "whitespace": lambda n: "a=" + " " * n + "b",
    "quotes": lambda n: '"' * n,
    "small pairs": lambda n: "a=1; " * (n // 5),
}


@pytest.mark.parametrize("shape", sorted(WORST_SHAPES))
def test_cost_is_linear(shape: str) -> None:
    build = WORST_SHAPES[shape]

    def make(n: int) -> object:
        header = build(n)
        return lambda: parse_cookie_header(header)

    # 4 KB -> 32 KB, inside the cap (the cap would hide growth).
    assert_linear(make, 4096, f"cookie header ({shape})")  # type: ignore[arg-type]


@FEW
@given(
    st.lists(st.sampled_from([*list(' ;="\\abc\x00'), "\\012"]), min_size=1, max_size=8).map(
        "".join
    )
)
def test_cost_of_any_repeated_unit_is_linear(unit: str) -> None:
    def make(n: int) -> object:
        header = unit * max(1, n // len(unit))
        return lambda: parse_cookie_header(header)

    assert_linear(make, 2000, f"cookie header of {unit!r} repeated")  # type: ignore[arg-type]


def test_reading_is_pure_text_work() -> None:
    # Sanity for the grammar statement above: names never carry the separator.
    assert re.fullmatch(r"[^;=]+", next(iter(parse_cookie_header(" a = b ")))) is not None
