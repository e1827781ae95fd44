"""The one rule for HTTP header names and values that asynclocal sends or accepts from code.

Names are RFC 9110 tokens; values are Latin-1 text without CR, LF or other
control characters (horizontal tab allowed inside, as RFC 9110 field-content
permits). Both checks are full-string matches, linear in the input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["checked_header_pairs", "header_problem"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def header_problem(name: str, value: str) -> str | None:
    """What is wrong with the header ``name: value``, or None when both are valid.

    The answer never repeats the value (it may be a secret or hostile input).
    """
    if _TOKEN.fullmatch(name) is None:
        return (
            "the header name must be a non-empty RFC 9110 token (letters, digits and "
            "!#$%&'*+-.^_`|~; no spaces, colons or control characters)"
        )
    if _FIELD_VALUE.fullmatch(value) is None:
        return (
            "the header value must be Latin-1 text without CR, LF or control characters; "
            "percent-encode or RFC 8187-encode other characters"
        )
    return None


def checked_header_pairs(
    headers: Iterable[tuple[str, str]] | Mapping[str, str], owner: str
) -> tuple[tuple[str, str], ...]:
    """`headers` as a tuple of validated ``(name, value)`` pairs.

    Raises:
        TypeError: `headers` is not a sequence or mapping of ``(str, str)`` pairs.
        ValueError: a name or value breaks the rule `header_problem` states; the
            message names `owner` and the header name, never the value.
    """
    if isinstance(headers, Mapping):
        headers = headers.items()
    if isinstance(headers, str | bytes) or not isinstance(headers, Iterable):
        raise TypeError(
            f"{owner} must be a sequence of (name, value) str pairs, got {type(headers).__name__}"
        )
    checked: list[tuple[str, str]] = []
    for pair in headers:
        if not (
            isinstance(pair, tuple | list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
        ):
            raise TypeError(f"{owner} must hold (name, value) str pairs, got {type(pair).__name__}")
        name, value = pair
        problem = header_problem(name, value)
        if problem is not None:
            shown = repr(name)[:60] if _TOKEN.fullmatch(name) else "given"
            raise ValueError(f"{owner}: header {shown}: {problem}")
        checked.append((name, value))
    return tuple(checked)
