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

from ..errors import InvalidRequestId

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "MAX_REQUEST_ID_LENGTH",
    "InvalidRequestId",
    "RequestIdPolicy",
    "generate_request_id",
    "is_valid_request_id",
]

DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"
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
            raise ValueError(
                f"trusted_proxies entry {item!r:.60} is not an IP network; "
                "use forms like '10.0.0.0/8', '192.168.1.5' or '::1'"
            ) from None
    return tuple(networks)


class RequestIdPolicy:
    """How a request gets its id.

    The id comes from the `header` of the incoming request when the value
    passes `validator` (default: `is_valid_request_id`) and, when
    `trusted_proxies` is given, the peer address lies in one of those
    networks. Otherwise a fresh id from `generator` is used; with
    ``reject_invalid=True`` an invalid incoming value raises `InvalidRequestId`
    (400) instead. Whatever the validator says, an accepted id is visible
    ASCII without spaces or control characters and at most 1024 characters,
    so it can never split a header or a log line.

    Args:
        header: the request and response header carrying the id.
        generator: zero-argument callable returning a new id (default `generate_request_id`).
        validator: ``validator(value) -> bool`` for incoming ids.
        trusted_proxies: networks (``"10.0.0.0/8"``, ``"::1"``) whose incoming ids are
            accepted; None (default) trusts every peer.
        reject_invalid: answer 400 to an invalid incoming id instead of replacing it.

    Raises:
        TypeError / ValueError: an argument has the wrong type or an unusable value.
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
        "validator",
    )

    def __init__(
        self,
        *,
        header: str = DEFAULT_REQUEST_ID_HEADER,
        generator: Callable[[], str] | None = None,
        validator: Callable[[str], bool] | None = None,
        trusted_proxies: Iterable[str | Network] | None = None,
        reject_invalid: bool = False,
    ) -> None:
        if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9\-_]{1,64}", header):
            raise ValueError(
                f"header must be a header name of letters, digits, '-' or '_', got {header!r:.60}"
            )
        if generator is not None and not callable(generator):
            raise TypeError(
                f"generator must be a zero-argument callable, got {type(generator).__name__}"
            )
        if validator is not None and not callable(validator):
            raise TypeError(
                f"validator must be a callable(value) -> bool, got {type(validator).__name__}"
            )
        if not isinstance(reject_invalid, bool):
            raise TypeError(f"reject_invalid must be a bool, got {type(reject_invalid).__name__}")
        self.header = header
        self.header_lower = header.lower()
        self.header_bytes = self.header_lower.encode("ascii")
        self.generator: Callable[[], str] = generator or generate_request_id
        self._default_generator = generator is None
        self.validator: Callable[[str], bool] | None = validator
        self.reject_invalid = reject_invalid
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
            return _VALID(value) is not None
        return _SAFE(value) is not None and validator(value) is True

    def resolve(self, incoming: str | None, peer_host: str | None = None) -> str:
        """The id for a request whose header held `incoming` (None when absent).

        Raises:
            InvalidRequestId: the value is invalid and ``reject_invalid`` is set.
        """
        if incoming is None:
            return generate_request_id() if self._default_generator else self.new_id()
        is_trusted = self._is_trusted
        if is_trusted is not None and not is_trusted(peer_host):
            return self.new_id()
        validator = self.validator
        if (
            _VALID(incoming) is not None
            if validator is None
            else (_SAFE(incoming) is not None and validator(incoming) is True)
        ):
            return incoming
        if self.reject_invalid:
            raise InvalidRequestId()
        return self.new_id()

    def __repr__(self) -> str:
        return (
            f"RequestIdPolicy(header={self.header!r}, reject_invalid={self.reject_invalid}, "
            f"trusted_proxies={self.networks!r})"
        )


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
