"""Propagation targets: the allow-list of outgoing URLs that may receive context headers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["PropagationTargets", "TargetPattern"]

#: One allow-list entry: a host pattern string, a compiled regex (searched in
#: the full URL) or a predicate ``url -> bool``.
TargetPattern = str | re.Pattern[str] | Callable[[str], bool]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HOST_RE = re.compile(r"(\*\.)?[a-z0-9_\-.]+|\[[0-9a-f:.]+\]|\*")


@dataclass(frozen=True)
class _HostRule:
    scheme: str | None
    host: str  # lower-case; "*.suffix" for a subdomain wildcard; "*" for any
    port: int | None
    path: str

    def matches(self, scheme: str, host: str, port: int | None, path: str) -> bool:
        if self.scheme is not None and scheme != self.scheme:
            return False
        if self.host == "*":
            pass
        elif self.host.startswith("*."):
            if not host.endswith(self.host[1:]) or host == self.host[2:]:
                return False
        elif host != self.host:
            return False
        if self.port is not None and port != self.port:
            return False
        if not self.path or self.path.endswith("/"):
            return path.startswith(self.path)
        # "/v1" is a path segment: "/v1" and "/v1/..." match, "/v1evil" does not.
        return path == self.path or path.startswith(self.path + "/")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4: the path the server sees ("/v1/../admin" is "/admin")."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def _split_host_port(text: str, pattern: str) -> tuple[str, int | None]:
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"propagation target {pattern!r}: unterminated IPv6 literal")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"propagation target {pattern!r}: bad port {rest!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"propagation target {pattern!r}: bad port {port_text!r}")
        port = int(port_text)
    host = host.lower()
    if _HOST_RE.fullmatch(host) is None:
        raise ValueError(
            f"propagation target {pattern!r}: {host!r} is not a host name, '*.domain', "
            "an IP address or '*'"
        )
    return host, port


def _compile(pattern: str) -> _HostRule:
    text = pattern.strip()
    if not text:
        raise ValueError("propagation target patterns must be non-empty strings")
    if "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError as exc:
            raise ValueError(f"propagation target {pattern!r}: {exc}") from None
        scheme = parts.scheme.lower()
        netloc = parts.netloc.rsplit("@", 1)[-1]
        host, port = _split_host_port(netloc, pattern)
        if port is None and parts.netloc and not netloc.endswith("]") and ":" not in netloc:
            port = _DEFAULT_PORTS.get(scheme)
        return _HostRule(scheme, host, port, parts.path or "")
    host, port = _split_host_port(text, pattern)
    return _HostRule(None, host, port, "")


def _regex_predicate(rx: re.Pattern[str]) -> Callable[[str], bool]:
    def matches(url: str) -> bool:
        return rx.search(url) is not None

    return matches


class PropagationTargets:
    """Decides which outgoing URLs receive the propagated headers.

    Each entry is one of:

    - ``"api.internal"`` / ``"api.internal:8443"``: that host (and port);
    - ``"*.svc.cluster.local"``: any subdomain (not the bare domain);
    - ``"https://api.example.com/v1/"``: scheme, host, port (default for the
      scheme) and path prefix;
    - ``"*"``: every URL (an explicit opt-in to send ids everywhere);
    - a compiled regex, searched in the full URL;
    - a callable ``url -> bool``.

    The empty allow-list (the default) matches nothing, so no id, trace or
    baggage leaves the process until targets are configured.

    Raises:
        ValueError / TypeError: an entry is malformed (at construction).
    """

    __slots__ = ("_predicates", "_rules", "patterns")

    def __init__(self, patterns: Iterable[TargetPattern] = ()) -> None:
        if isinstance(patterns, (str, re.Pattern)) or callable(patterns):
            patterns = (patterns,)
        self.patterns: tuple[TargetPattern, ...] = tuple(patterns)
        rules: list[_HostRule] = []
        predicates: list[Callable[[str], bool]] = []
        for entry in self.patterns:
            if isinstance(entry, str):
                rules.append(_compile(entry))
            elif isinstance(entry, re.Pattern):
                predicates.append(_regex_predicate(entry))
            elif callable(entry):
                predicates.append(entry)
            else:
                raise TypeError(
                    "propagation targets must be host patterns (str), compiled regexes or "
                    f"callables url -> bool, got {type(entry).__name__}"
                )
        self._rules = tuple(rules)
        self._predicates = tuple(predicates)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"PropagationTargets({list(self.patterns)!r})"

    def matches(self, url: object) -> bool:
        """Whether headers may be sent to `url`; False for anything unparsable."""
        if not self.patterns:
            return False
        text = str(url)
        try:
            parts = urlsplit(text)
            scheme = parts.scheme.lower()
            host = (parts.hostname or "").lower()
            port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
        except ValueError:
            return False
        if not host:
            return False
        if ":" in host:
            host = f"[{host}]"
        path = _remove_dot_segments(parts.path or "/")
        for rule in self._rules:
            if rule.matches(scheme, host, port, path):
                return True
        for predicate in self._predicates:
            try:
                if predicate(text):
                    return True
            except Exception:  # a broken user predicate means "do not send"
                continue
        return False
