"""The ``Cookie`` request header, parsed in linear time with a size cap.

`http.cookies.SimpleCookie` is not used: its unquoting is quadratic on the
interpreters without the CVE-2024-7592 fix, and it drops a whole header over
one odd pair. The rules here:

* The header is split on ``;``; each piece is ``name=value`` with surrounding
  whitespace removed. A piece without ``=`` or with an empty name is skipped.
* A value in double quotes loses its quotes. When the quoted text is a
  well-formed quoted string (no bare ``"``, no lone trailing ``\\``), its
  backslash escapes are decoded as `SimpleCookie` decodes them: ``\\ooo``
  (three octal digits, ``\\000``-``\\377``) is that character, ``\\x`` is ``x``.
  Otherwise the text between the quotes is kept as it is.
* The first occurrence of a name wins (browsers send the most specific first).
* Only the first `MAX_COOKIE_HEADER_LENGTH` characters are read; a pair that
  does not end within them is ignored. At most `MAX_COOKIES` pairs are kept.

Every step is one pass over the text (C-level `str` methods and two regular
expressions without nested ambiguity), so the cost is linear in the header
length and never more than that of the cap.
"""

from __future__ import annotations

import re

__all__ = ["MAX_COOKIES", "MAX_COOKIE_HEADER_LENGTH", "parse_cookie_header"]

#: The part of a ``Cookie`` header that is read; the rest is ignored.
MAX_COOKIE_HEADER_LENGTH = 65536
#: The most cookies kept from one header; later pairs are ignored.
MAX_COOKIES = 1024

# A well-formed quoted-string body (quotes removed): runs of characters that are
# neither a backslash nor a quote, each backslash escaping the one character after
# it (not a line feed: SimpleCookie's `\\.` does not match one either). The two
# alternatives are disjoint, so matching and failing are both linear.
_QUOTED_BODY = re.compile(r'[^\\"]*(?:\\.[^\\"]*)*').fullmatch
_ESCAPE = re.compile(r"\\(?:([0-3][0-7][0-7])|(.))").sub


def _unescape(match: re.Match[str]) -> str:
    octal = match[1]
    return chr(int(octal, 8)) if octal else match[2]


def _unquote(inner: str) -> str:
    if "\\" not in inner:
        return inner
    if _QUOTED_BODY(inner) is None:
        return inner
    return _ESCAPE(_unescape, inner)


def parse_cookie_header(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header, as ``{name: value}``; never raises.

    Tolerant: malformed pairs are skipped and the others kept; anything that is
    not a `str` yields no cookies. Linear in the length of `header`, of which at
    most `MAX_COOKIE_HEADER_LENGTH` characters are read (see the module rules).
    """
    cookies: dict[str, str] = {}
    if not header or not isinstance(header, str):
        return cookies
    if len(header) > MAX_COOKIE_HEADER_LENGTH:
        # Keep whole pairs only: cut at the last separator within the cap (a
        # separator right at the cap still closes the pair before it).
        cut = header.rfind(";", 0, MAX_COOKIE_HEADER_LENGTH + 1)
        if cut < 0:
            return cookies
        header = header[:cut]
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        if not sep:
            continue
        name = name.strip()
        if not name or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = _unquote(value[1:-1])
        cookies[name] = value
        if len(cookies) >= MAX_COOKIES:
            break
    return cookies
