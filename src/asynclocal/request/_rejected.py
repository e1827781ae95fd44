"""`RequestRejected`: the exception every web integration answers with its own HTTP status."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["RequestRejected", "joined_rejection_headers"]

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class RequestRejected(Exception):
    """Base for errors that every web integration turns into an HTTP status response.

    Subclasses set `status_code` (e.g. `asynclocal.patterns.rbac.Forbidden` uses
    403). The response body is `public_message`, never the exception's details.

    `headers` are ``(name, value)`` pairs every integration adds to that
    response, next to the request id header (which always stays the
    middleware's own). Set them on the class (``headers = (("Retry-After",
    "3"),)``) or per instance with ``raise MyRejection(detail, headers=[...])``,
    which replaces the class default (pass ``(*MyRejection.headers, extra)`` to
    extend it). A repeated name is sent twice where the framework allows it,
    else joined with ``", "`` (Django, Litestar, Lambda).

    Raises:
        TypeError: `headers` is not a sequence or mapping of ``(str, str)`` pairs.
        ValueError: a header name is empty, or a name or value contains CR, LF,
            other control characters or a character outside Latin-1.
    """

    status_code: int = 400
    public_message: str = "Bad Request"
    headers: tuple[tuple[str, str], ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "headers" in cls.__dict__:  # a class-level default: checked once, at definition
            cls.headers = _rejection_headers(cls.__dict__["headers"], f"{cls.__name__}.headers")

    def __init__(
        self,
        *args: object,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(*args)
        if headers is not None:
            self.headers = _rejection_headers(headers, f"{type(self).__name__}(headers=...)")


def _rejection_headers(
    headers: Iterable[tuple[str, str]] | Mapping[str, str], owner: str
) -> tuple[tuple[str, str], ...]:
    if isinstance(headers, Mapping):
        headers = headers.items()
    if isinstance(headers, (str, bytes)) or not isinstance(headers, Iterable):
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
            raise TypeError(f"{owner} must hold (name, value) str pairs, got {pair!r:.60}")
        name, value = pair
        for what, text in (("name", name), ("value", value)):
            if (what == "name" and not text) or _CONTROL_CHARS.search(text) is not None:
                raise ValueError(
                    f"{owner}: header {what} {text!r:.60} must be non-empty text without CR, "
                    "LF or control characters"
                )
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(
                    f"{owner}: header {what} {text!r:.60} must be Latin-1 text; "
                    "percent-encode or RFC 8187-encode other characters"
                ) from None
        checked.append((name, value))
    return tuple(checked)


def joined_rejection_headers(exc: RequestRejected) -> dict[str, str]:
    """`exc.headers` as a dict for frameworks without repeated headers (``", "`` joins)."""
    joined: dict[str, str] = {}
    names: dict[str, str] = {}
    for name, value in exc.headers:
        first = names.setdefault(name.lower(), name)
        joined[first] = f"{joined[first]}, {value}" if first in joined else value
    return joined
