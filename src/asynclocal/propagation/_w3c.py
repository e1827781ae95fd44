"""W3C Trace Context (``traceparent``/``tracestate``) and W3C Baggage codecs.

Every parser here is total: malformed input yields None (or the members that
could be parsed), never an exception, because it comes from the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import quote, unquote

from ..request._trace_ids import (
    ZERO_SPAN,
    ZERO_TRACE,
    new_span_id,
    new_trace_id,
)

__all__ = [
    "BAGGAGE_MAX_BYTES",
    "BAGGAGE_MAX_MEMBERS",
    "TraceParent",
    "format_baggage",
    "format_traceparent",
    "new_span_id",
    "new_trace_id",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
    "valid_baggage_key",
]

#: W3C Baggage limits: the whole header, and the number of list members.
BAGGAGE_MAX_BYTES = 8192
BAGGAGE_MAX_MEMBERS = 180
TRACESTATE_MAX_MEMBERS = 32

_TRACEPARENT_RE = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\x00-\x1f]*)?\Z"
)
# RFC 7230 token characters: the W3C Baggage key grammar.
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# W3C Trace Context tracestate key and value grammar.
_TS_KEY_RE = re.compile(
    r"^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$"
)
_TS_VALUE_RE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")
# Characters that need no percent-encoding in a baggage value (W3C baggage-octet).
_BAGGAGE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"


class TraceParent(NamedTuple):
    """A parsed ``traceparent``: lowercase hex ids and the flags byte."""

    trace_id: str
    span_id: str
    trace_flags: int


def parse_traceparent(header: object) -> TraceParent | None:
    """Parse a ``traceparent`` value; None when it is malformed in any way.

    Follows W3C Trace Context level 1: version ``00`` must be exactly 55
    characters; a higher version may carry more fields after a ``-``; version
    ``ff``, upper-case hex and all-zero ids are invalid.
    """
    if not isinstance(header, str) or len(header) > 512:
        return None
    match = _TRACEPARENT_RE.match(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == ZERO_TRACE or span_id == ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def format_traceparent(trace_id: str, span_id: str, trace_flags: int) -> str:
    """The version-00 ``traceparent`` value for the given ids and flags."""
    return f"00-{trace_id}-{span_id}-{trace_flags & 0xFF:02x}"


def parse_tracestate(header: object) -> str | None:
    """Validate a ``tracestate`` value; return it normalised, or None when invalid.

    Empty members are dropped; an invalid member, a duplicated key or more
    than 32 members invalidate the whole header (W3C says to discard it).
    """
    if not isinstance(header, str) or len(header) > 8192:
        return None
    members: list[str] = []
    seen: set[str] = set()
    for raw in header.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, sep, value = member.partition("=")
        if not sep or not _TS_KEY_RE.match(key) or not _TS_VALUE_RE.match(value):
            return None
        if key in seen:
            return None
        seen.add(key)
        members.append(f"{key}={value}")
    if not members or len(members) > TRACESTATE_MAX_MEMBERS:
        return None
    return ",".join(members)


def valid_baggage_key(key: object) -> bool:
    """Whether `key` can be a W3C Baggage key (an RFC 7230 token)."""
    return isinstance(key, str) and bool(_TOKEN_RE.match(key))


def parse_baggage(header: object) -> dict[str, str]:
    """Parse a ``baggage`` value into ``{key: decoded value}``.

    Malformed members are skipped; properties (``;prop``) are dropped. At most
    180 members and 8192 bytes of the header are read: members past either
    limit are cut, as W3C Baggage allows. The first occurrence of a key wins.
    """
    result: dict[str, str] = {}
    if not isinstance(header, str) or not header:
        return result
    used = 0
    count = 0
    for raw in header.split(","):
        member_bytes = len(raw.encode("utf-8", "surrogatepass")) + (1 if count else 0)
        if used + member_bytes > BAGGAGE_MAX_BYTES:
            break
        pair = raw.split(";", 1)[0].strip(" \t")
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key = key.strip(" \t")
        value = value.strip(" \t")
        if not sep or not _TOKEN_RE.match(key):
            continue
        try:
            decoded = unquote(value, errors="strict")
        except UnicodeDecodeError:
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in decoded):
            continue
        used += member_bytes
        count += 1
        result.setdefault(key, decoded)
        if count >= BAGGAGE_MAX_MEMBERS:
            break
    return result


def format_baggage(items: Iterable[tuple[str, str]] | Mapping[str, str]) -> str:
    """Encode members as a ``baggage`` value, cut to the W3C limits.

    Values are percent-encoded (UTF-8). Members with an invalid key are
    skipped; members that would push the header past 8192 bytes or 180
    members are dropped (later members first).
    """
    pairs = items.items() if isinstance(items, Mapping) else items
    parts: list[str] = []
    used = 0
    for key, value in pairs:
        if not _TOKEN_RE.match(key):
            continue
        member = f"{key}={quote(value, safe=_BAGGAGE_SAFE)}"
        size = len(member) + (1 if parts else 0)
        if used + size > BAGGAGE_MAX_BYTES:
            continue
        parts.append(member)
        used += size
        if len(parts) >= BAGGAGE_MAX_MEMBERS:
            break
    return ",".join(parts)
