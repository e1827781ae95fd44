"""Request ids: generation, validation, and which incoming ids to trust.

An incoming id is attacker-controlled text that ends up in response headers
and log lines, so it is accepted only when it passes a conservative check; any
other value is replaced by a fresh id (or rejected with 400 when configured)
and is never echoed or logged.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable, Iterable

from ..errors import ConfigurationError, InvalidRequestId

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "DEFAULT_ROOT_REQUEST_ID_HEADER",
    "MAX_REQUEST_ID_LENGTH",
    "InvalidRequestId",
    "RequestIdPolicy",
    "generate_request_id",
    "is_valid_request_id",
]

DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"
#: The header an asynclocal caller sends with the root of its causation chain.
DEFAULT_ROOT_REQUEST_ID_HEADER = "X-Root-Request-ID"
MAX_REQUEST_ID_LENGTH = 128

_VALID = re.compile(r"[A-Za-z0-9\-._~:+=/]{1,128}").fullmatch
# The floor every accepted id must pass, whatever validator is configured:
# visible ASCII only (no space, CR, LF, NUL or other control characters).
_SAFE = re.compile(r"[\x21-\x7e]{1,1024}").fullmatch
_urandom = os.urandom

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def generate_request_id() -> str:
    """A fresh random id: a version-4 UUID as 32 lowercase hex digits.

    Uses `os.urandom` directly (several times cheaper than `uuid.uuid4().hex`),
    with the version and variant bits set as RFC 9562 requires.
    """
    raw = bytearray(_urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def is_valid_request_id(value: object) -> bool:
    """True when `value` is 1-128 characters from letters, digits and ``-._~:+=/``."""
    return isinstance(value, str) and _VALID(value) is not None


def _parse_networks(trusted_proxies: Iterable[str | Network]) -> tuple[Network, ...]:
    if isinstance(trusted_proxies, str | bytes):
        raise TypeError(
            "trusted_proxies must be a list of networks, e.g. ['10.0.0.0/8', '127.0.0.1'], "
            "not a single string"
        )
    networks: list[Network] = []
    for item in trusted_proxies:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(item)
            continue
        if not isinstance(item, str):
            raise TypeError(
                f"trusted_proxies entries must be network strings like '10.0.0.0/8', "
                f"got {type(item).__name__}"
            )
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ConfigurationError(
                f"trusted_proxies entry {item!r:.60} is not an IP network; "
                "use forms like '10.0.0.0/8', '192.168.1.5' or '::1'"
            ) from None
    return tuple(networks)


class RequestIdPolicy:
    """How a request gets its id and its place in the causation chain: the one owner.

    Every ingress (ASGI, WSGI, aiohttp, the framework setups, the Lambda
    wrapper, task workers and `with_request_context`) asks this policy, and
    nothing else, which id a request gets and which caller it continues.

    Request id: the `header` of the incoming request when the value passes
    `validator` (default: `is_valid_request_id`) and the peer is trusted;
    otherwise a fresh id from `generator`. With ``reject_invalid=True`` an
    invalid value from a trusted peer raises `InvalidRequestId` (400) instead.
    Whatever the validator says, an accepted id is visible ASCII without
    spaces or control characters and at most 1024 characters, so it can never
    split a header or a log line.

    Causation chain: when a trusted caller sends both `header` and
    `root_header` (what `asynclocal.propagation.inject` writes), it is an
    asynclocal service: this request gets a fresh id whose
    `parent_request_id` is the caller's id and whose `root_request_id` is the
    caller's root, or, with ``reuse_request_id=True``, keeps the caller's id
    (correlation-id style). A lone `header` (a gateway's ``X-Request-ID``) is
    adopted as the id and starts the chain.

    Trust: `trusted_proxies` (networks such as ``"10.0.0.0/8"``, ``"::1"``)
    lists the peers whose propagation headers are believed; None (default)
    trusts every peer, which is what W3C Trace Context expects of a service
    that continues its callers. From any other peer nothing it sends is
    believed: not the id header, not the root header, not ``traceparent``/
    ``tracestate``, not ``baggage`` (none is echoed or logged). The request
    gets a fresh id, starts its own chain and its own trace. One rule for
    every header, so a deployment behind a proxy cannot be steered by a
    client that reaches it directly.

    Args:
        header: the request and response header carrying the id.
        root_header: the header carrying the caller's root id (None: no chain is read).
        generator: zero-argument callable returning a new id (default `generate_request_id`).
        validator: ``validator(value) -> bool`` for incoming ids.
        trusted_proxies: networks whose propagation headers are accepted; None trusts all.
        reject_invalid: answer 400 to an invalid incoming id instead of replacing it.
        reuse_request_id: a request from an asynclocal caller keeps the caller's id.

    Raises:
        ConfigurationError: an argument has an unusable value (a `ValueError`).
        TypeError: an argument has the wrong type.
    """

    __slots__ = (
        "_default_generator",
        "_is_trusted",
        "generator",
        "header",
        "header_bytes",
        "header_lower",
        "networks",
        "reject_invalid",
        "reuse_request_id",
        "root_header",
        "root_header_bytes",
        "root_header_lower",
        "validator",
    )

    def __init__(
        self,
        *,
        header: str = DEFAULT_REQUEST_ID_HEADER,
        root_header: str | None = DEFAULT_ROOT_REQUEST_ID_HEADER,
        generator: Callable[[], str] | None = None,
        validator: Callable[[str], bool] | None = None,
        trusted_proxies: Iterable[str | Network] | None = None,
        reject_invalid: bool = False,
        reuse_request_id: bool = False,
    ) -> None:
        header = _check_header_name("header", header)
        if root_header is not None:
            root_header = _check_header_name("root_header", root_header)
            if root_header.lower() == header.lower():
                raise ConfigurationError("root_header must differ from header")
        if generator is not None and not callable(generator):
            raise TypeError(
                f"generator must be a zero-argument callable, got {type(generator).__name__}"
            )
        if validator is not None and not callable(validator):
            raise TypeError(
                f"validator must be a callable(value) -> bool, got {type(validator).__name__}"
            )
        for flag, value in (
            ("reject_invalid", reject_invalid),
            ("reuse_request_id", reuse_request_id),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool, got {type(value).__name__}")
        self.header = header
        self.header_lower = header.lower()
        self.header_bytes = self.header_lower.encode("ascii")
        self.root_header = root_header
        self.root_header_lower = root_header.lower() if root_header is not None else None
        self.root_header_bytes = (
            self.root_header_lower.encode("ascii") if self.root_header_lower is not None else None
        )
        self.generator: Callable[[], str] = generator or generate_request_id
        self._default_generator = generator is None
        self.validator: Callable[[str], bool] | None = validator
        self.reject_invalid = reject_invalid
        self.reuse_request_id = reuse_request_id
        self.networks: tuple[Network, ...] | None = (
            None if trusted_proxies is None else _parse_networks(trusted_proxies)
        )
        self._is_trusted: Callable[[str | None], bool] | None = (
            None if self.networks is None else _make_trust_check(self.networks)
        )

    def new_id(self) -> str:
        """A fresh id from the generator.

        Raises:
            ValueError: a custom generator returned something that is not a safe id.
        """
        value = self.generator()
        if self._default_generator:
            return value
        if isinstance(value, str) and _SAFE(value) is not None:
            return value
        raise ValueError(
            f"the request id generator {self.generator!r:.60} returned an unusable id; it must "
            "return 1-1024 visible ASCII characters (no spaces or control characters)"
        )

    def accepts(self, value: str) -> bool:
        """Whether an incoming `value` is acceptable as a request id (trust aside)."""
        validator = self.validator
        if validator is None:
            return isinstance(value, str) and _VALID(value) is not None
        return isinstance(value, str) and _SAFE(value) is not None and validator(value) is True

    def trusts(self, peer_host: str | None) -> bool:
        """Whether propagation headers from `peer_host` are believed (True without a list)."""
        is_trusted = self._is_trusted
        return is_trusted is None or is_trusted(peer_host)

    def resolve(self, incoming: str | None, peer_host: str | None = None) -> str:
        """The id for a request whose id header held `incoming` (None when absent).

        The chain is not considered (see `decide`).

        Raises:
            InvalidRequestId: the value is invalid, the peer trusted and ``reject_invalid`` set.
        """
        return self.decide(incoming, None, peer_host)[0]

    def decide(
        self,
        incoming: str | None,
        incoming_root: str | None,
        peer_host: str | None,
        own_id: str | None = None,
    ) -> tuple[str, str, str | None]:
        """``(request_id, root_request_id, parent_request_id)`` for an incoming request.

        `incoming` and `incoming_root` are the raw values of `header` and
        `root_header` (None when absent); `peer_host` is the peer address.
        Values from untrusted peers are ignored. `own_id` is the id an ingress
        that has one brings (a task id, a Lambda request id): it replaces the
        generator, and a lone id header is then not adopted (unless
        ``reuse_request_id``), so the request keeps its own id.

        Raises:
            InvalidRequestId: the id is invalid, the peer trusted and ``reject_invalid`` set.
            ValueError: a custom generator returned an unusable id.
        """
        if incoming is not None:
            is_trusted = self._is_trusted
            if is_trusted is None or is_trusted(peer_host):
                if self.accepts(incoming):
                    if incoming_root is not None and self.accepts(incoming_root.strip()):
                        # An asynclocal caller: continue its chain.
                        if self.reuse_request_id:
                            return incoming, incoming_root.strip(), None
                        fresh = self.new_id() if own_id is None else own_id
                        return fresh, incoming_root.strip(), incoming
                    if own_id is None or self.reuse_request_id:
                        return incoming, incoming, None
                    return own_id, own_id, None
                if self.reject_invalid:
                    raise InvalidRequestId()
        if own_id is not None:
            return own_id, own_id, None
        rid = generate_request_id() if self._default_generator else self.new_id()
        return rid, rid, None

    def __repr__(self) -> str:
        return (
            f"RequestIdPolicy(header={self.header!r}, root_header={self.root_header!r}, "
            f"reject_invalid={self.reject_invalid}, reuse_request_id={self.reuse_request_id}, "
            f"trusted_proxies={self.networks!r})"
        )


def _check_header_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9\-_]{1,64}", value):
        raise ConfigurationError(
            f"{what} must be a header name of letters, digits, '-' or '_'"
            + (f", got {value!r:.60}" if isinstance(value, str) and value.isprintable() else "")
        )
    return value


def _make_trust_check(networks: tuple[Network, ...]) -> Callable[[str | None], bool]:
    @functools.lru_cache(maxsize=1024)
    def is_trusted(host: str | None) -> bool:
        if not host:
            return False
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False  # a unix socket path or a name: not a configured proxy
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in networks)

    return is_trusted
