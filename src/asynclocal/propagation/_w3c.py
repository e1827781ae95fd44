"""W3C Trace Context (``traceparent``/``tracestate``) and W3C Baggage codecs.

Every parser here is total: malformed input yields None (or the members that
could be parsed), never an exception, because it comes from the network. Each
one validates with full-string matches, reads a bounded prefix of its input
and runs in time linear in what it reads. The public face of this module is
`asynclocal.propagation.w3c`.
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
    "FLAG_RANDOM",
    "FLAG_SAMPLED",
    "KNOWN_FLAGS",
    "TRACEPARENT_MAX_LENGTH",
    "TRACESTATE_MAX_LENGTH",
    "TRACESTATE_MAX_MEMBERS",
    "TRACESTATE_READ_LIMIT",
    "TraceParent",
    "format_baggage",
    "format_traceparent",
    "new_span_id",
    "new_trace_id",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
    "valid_baggage_key",
    "valid_tracestate_key",
    "valid_tracestate_value",
]

#: W3C Baggage limit: the bytes of the whole header read and written.
BAGGAGE_MAX_BYTES = 8192
#: W3C Baggage limit: the number of list members kept.
BAGGAGE_MAX_MEMBERS = 180
#: W3C Trace Context: at most 32 ``tracestate`` list members.
TRACESTATE_MAX_MEMBERS = 32
#: The longest ``tracestate`` passed on (the spec's "at least 512 characters");
#: longer lists lose whole members: those over 128 characters first, then the
#: right-most ones.
TRACESTATE_MAX_LENGTH = 512
#: A received ``tracestate`` longer than this (OWS and empty members included)
#: is discarded whole without being parsed: 32 members of the longest legal
#: form, their separators and generous whitespace fit below it.
TRACESTATE_READ_LIMIT = 32 * 514 + 1024
#: A received ``traceparent`` longer than this is discarded without parsing.
TRACEPARENT_MAX_LENGTH = 512

#: The trace-flags bit "sampled": the caller may have recorded trace data.
FLAG_SAMPLED = 0x01
#: The trace-flags bit "random trace id" (Level 2): the right-most 7 bytes are random.
FLAG_RANDOM = 0x02
#: Every trace-flags bit this version of the specification defines; others are sent as 0.
KNOWN_FLAGS = FLAG_SAMPLED | FLAG_RANDOM

# version "-" trace-id "-" parent-id "-" trace-flags, and for a version above
# 00 optional further fields after a "-" (printable ASCII; never parsed).
_TRACEPARENT_RE = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x20-\x7e]*)?"
)
# RFC 7230 token characters: the W3C Baggage key grammar.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# W3C Baggage value: *baggage-octet (percent-encoding is decoded afterwards).
_BAGGAGE_VALUE_RE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
# W3C Trace Context (Level 2) tracestate grammar:
#   key = ( lcalpha / DIGIT ) 0*255 ( keychar ), keychar = lcalpha / DIGIT / _ - * / @
#   value = 0*255(chr) nblk-chr
_TS_KEY_RE = re.compile(r"[a-z0-9][_0-9a-z\-*/@]{0,255}")
_TS_VALUE_RE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
# Characters that need no percent-encoding in a baggage value (W3C baggage-octet).
_BAGGAGE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"
_OWS = " \t"


class TraceParent(NamedTuple):
    """A parsed ``traceparent``: lowercase hex ids and the flags byte."""

    trace_id: str
    span_id: str
    trace_flags: int


def parse_traceparent(header: object) -> TraceParent | None:
    """Parse a ``traceparent`` value; None when it is malformed in any way.

    W3C Trace Context Level 2: surrounding spaces and tabs are ignored;
    version ``00`` is exactly 55 characters; a higher version is parsed as
    version 00 and may carry more fields after a ``-`` (never read); version
    ``ff``, upper-case hex and all-zero ids are invalid. A value holding a
    comma is two ``traceparent`` headers joined by the server: invalid. Flags
    are returned as received (`format_traceparent` masks unknown ones).
    """
    if not isinstance(header, str) or len(header) > TRACEPARENT_MAX_LENGTH:
        return None
    match = _TRACEPARENT_RE.fullmatch(header.strip(_OWS))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if rest is not None and "," in rest:
        return None
    if trace_id == ZERO_TRACE or span_id == ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def format_traceparent(trace_id: str, span_id: str, trace_flags: int) -> str:
    """The version-00 ``traceparent`` value for the given ids and flags.

    Flags this version does not define are cleared (the spec: "Vendors MUST
    set those to zero"); sampled and random are kept.
    """
    return f"00-{trace_id}-{span_id}-{trace_flags & KNOWN_FLAGS:02x}"


def valid_tracestate_key(key: object) -> bool:
    """Whether `key` matches the W3C ``tracestate`` key grammar (1-256 characters)."""
    return isinstance(key, str) and _TS_KEY_RE.fullmatch(key) is not None


def valid_tracestate_value(value: object) -> bool:
    """Whether `value` matches the W3C ``tracestate`` value grammar (1-256 characters)."""
    return isinstance(value, str) and _TS_VALUE_RE.fullmatch(value) is not None


def _truncate_tracestate(members: list[str]) -> list[str]:
    """Cut to `TRACESTATE_MAX_LENGTH` the way the spec says: whole members,
    those over 128 characters first, then from the right."""
    total = sum(len(m) for m in members) + len(members) - 1
    if total <= TRACESTATE_MAX_LENGTH:
        return members
    kept = list(members)
    for i in range(len(kept) - 1, -1, -1):
        if total <= TRACESTATE_MAX_LENGTH:
            break
        if len(kept[i]) > 128:
            total -= len(kept[i]) + 1
            del kept[i]
    while kept and total > TRACESTATE_MAX_LENGTH:
        total -= len(kept.pop()) + 1
    return kept


def parse_tracestate(header: object) -> str | None:
    """Validate a ``tracestate`` value; return it normalised, or None when invalid.

    Several ``tracestate`` headers joined with commas (as servers combine
    them) are one list. Empty and whitespace-only members are dropped, as is
    the OWS around members; a value keeps its leading spaces (they are part
    of it). A member breaking the key/value grammar, more than 32 members, or
    a value longer than `TRACESTATE_READ_LIMIT` discard the whole header (None).
    A duplicated key keeps its first member and drops the later ones (the
    spec lets a vendor discard duplicates). A list longer than
    `TRACESTATE_MAX_LENGTH` is cut by whole members, those over 128 characters
    first, then the right-most. An empty list is None.
    """
    if not isinstance(header, str) or len(header) > TRACESTATE_READ_LIMIT:
        return None
    members: list[str] = []
    seen: set[str] = set()
    count = 0
    for raw in header.split(","):
        member = raw.strip(_OWS)
        if not member:
            continue
        count += 1
        if count > TRACESTATE_MAX_MEMBERS:
            return None
        key, sep, value = member.partition("=")
        if not sep or _TS_KEY_RE.fullmatch(key) is None or _TS_VALUE_RE.fullmatch(value) is None:
            return None
        if key in seen:
            continue
        seen.add(key)
        members.append(member)
    # A lone member longer than the whole bound is cut too: then nothing is left.
    kept = _truncate_tracestate(members)
    return ",".join(kept) if kept else None


def valid_baggage_key(key: object) -> bool:
    """Whether `key` can be a W3C Baggage key (an RFC 7230 token)."""
    return isinstance(key, str) and _TOKEN_RE.fullmatch(key) is not None


def parse_baggage(header: object) -> dict[str, str]:
    """Parse a ``baggage`` value into ``{key: decoded value}``.

    Malformed members are skipped (a key that is not a token, a value outside
    the baggage-octet grammar, a percent-encoding that is not UTF-8 or decodes
    to a control character); properties (``;prop``) are dropped. Only the
    first 8192 bytes of the header are read (every member counts, empty and
    malformed ones included, as do the commas between them; a member crossing
    the bound is dropped) and at most 180 members are kept, as W3C Baggage
    allows. The first occurrence of a key wins.
    """
    result: dict[str, str] = {}
    if not isinstance(header, str) or not header:
        return result
    # A character is at least one byte: this prefix holds every member that
    # starts within the byte bound, so the scan never reads further.
    text = header[: BAGGAGE_MAX_BYTES + 1]
    used = -1  # the first member has no comma before it
    count = 0
    for raw in text.split(","):
        used += len(raw.encode("utf-8", "surrogatepass")) + 1
        if used > BAGGAGE_MAX_BYTES:
            break
        pair = raw.split(";", 1)[0].strip(_OWS)
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key = key.strip(_OWS)
        value = value.strip(_OWS)
        if not sep or _TOKEN_RE.fullmatch(key) is None:
            continue
        if _BAGGAGE_VALUE_RE.fullmatch(value) is None:
            continue
        try:
            decoded = unquote(value, errors="strict")
        except UnicodeDecodeError:
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in decoded):
            continue
        count += 1
        result.setdefault(key, decoded)
        if count >= BAGGAGE_MAX_MEMBERS:
            break
    return result


def format_baggage(items: Iterable[tuple[str, str]] | Mapping[str, str]) -> str:
    """Encode members as a ``baggage`` value, cut to the W3C limits.

    Values are percent-encoded (UTF-8). Members with an invalid key or a
    value that is not encodable as UTF-8 are skipped; members that would push
    the header past 8192 bytes or 180 members are dropped (later members first).
    """
    pairs = items.items() if isinstance(items, Mapping) else items
    parts: list[str] = []
    used = 0
    for key, value in pairs:
        if not isinstance(key, str) or _TOKEN_RE.fullmatch(key) is None:
            continue
        try:
            member = f"{key}={quote(str(value), safe=_BAGGAGE_SAFE)}"
        except UnicodeEncodeError:  # a lone surrogate cannot travel as UTF-8
            continue
        size = len(member) + (1 if parts else 0)
        if used + size > BAGGAGE_MAX_BYTES:
            continue
        parts.append(member)
        used += size
        if len(parts) >= BAGGAGE_MAX_MEMBERS:
            break
    return ",".join(parts)
