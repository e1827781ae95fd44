"""Request-id policy: validation, generation, rejection and the trust policy."""

from __future__ import annotations

import ipaddress
import uuid

import pytest

from asynclocal.request import (
    InvalidRequestId,
    RequestIdPolicy,
    RequestRejected,
    generate_request_id,
    is_valid_request_id,
)
from tests.web.conftest import HEX32

VALID = ["a", "A-Z_0", "abc-123._~:+=/", "x" * 128, "550e8400-e29b-41d4-a716-446655440000"]
INVALID = [
    "",
    "x" * 129,
    "a b",
    "tab\there",
    "cr\rlf",
    "id\r\nSet-Cookie: x",
    "nul\x00",
    "del\x7f",
    "café",
    "\u2028",
    "semi;colon",
    'quote"',
    "<script>",
    "x" * 10_240,
]


@pytest.mark.parametrize("value", VALID)
def test_valid_ids_are_kept(value: str) -> None:
    assert is_valid_request_id(value)
    assert RequestIdPolicy().resolve(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_invalid_ids_are_replaced_by_fresh_ones(value: str) -> None:
    assert not is_valid_request_id(value)
    resolved = RequestIdPolicy().resolve(value)
    assert resolved != value
    assert HEX32.fullmatch(resolved)


@pytest.mark.parametrize("value", INVALID)
def test_invalid_ids_can_be_rejected_with_400(value: str) -> None:
    with pytest.raises(InvalidRequestId) as info:
        RequestIdPolicy(reject_invalid=True).resolve(value)
    assert isinstance(info.value, RequestRejected)
    assert info.value.status_code == 400
    assert value not in info.value.public_message or not value


def test_missing_id_is_generated_as_uuid4_hex() -> None:
    ids = {RequestIdPolicy().resolve(None) for _ in range(1000)}
    assert len(ids) == 1000
    for value in list(ids)[:50]:
        assert HEX32.fullmatch(value)
        assert uuid.UUID(value).version == 4
        assert uuid.UUID(value).variant == uuid.RFC_4122
    assert uuid.UUID(generate_request_id()).version == 4


def test_pluggable_generator_is_checked() -> None:
    assert RequestIdPolicy(generator=lambda: "req-42").resolve(None) == "req-42"
    with pytest.raises(ValueError, match="generator"):
        RequestIdPolicy(generator=lambda: "bad\r\nid").resolve(None)
    with pytest.raises(ValueError, match="generator"):
        RequestIdPolicy(generator=lambda: "").new_id()


def test_custom_validator_cannot_let_control_characters_through() -> None:
    permissive = RequestIdPolicy(validator=lambda value: True)
    assert permissive.resolve("anything-goes!*") == "anything-goes!*"
    for hostile in ("id\r\nSet-Cookie: x", "a b", "nul\x00", "é", "x" * 2000):
        assert permissive.resolve(hostile) != hostile
    strict = RequestIdPolicy(validator=lambda value: value.startswith("ok-"))
    assert strict.resolve("ok-1") == "ok-1"
    assert strict.resolve("nope") != "nope"


def test_trust_policy() -> None:
    policy = RequestIdPolicy(
        trusted_proxies=["10.0.0.0/8", "::1", ipaddress.ip_network("192.168.1.0/24")]
    )
    assert policy.resolve("p-1", "10.1.2.3") == "p-1"
    assert policy.resolve("p-1", "192.168.1.77") == "p-1"
    assert policy.resolve("p-1", "::1") == "p-1"
    assert policy.resolve("p-1", "::ffff:10.0.0.1") == "p-1"  # IPv4-mapped
    for peer in ("11.0.0.1", "127.0.0.1", None, "", "/tmp/unix.sock", "not-an-ip"):
        assert policy.resolve("p-1", peer) != "p-1", peer
    # an untrusted peer's invalid id is simply replaced, never a 400
    assert HEX32.fullmatch(
        RequestIdPolicy(trusted_proxies=[], reject_invalid=True).resolve("a b", "1.1.1.1")
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"header": "X Bad"}, ValueError),
        ({"header": "X-Id\r\n"}, ValueError),
        ({"generator": "uuid"}, TypeError),
        ({"validator": 3}, TypeError),
        ({"trusted_proxies": "10.0.0.0/8"}, TypeError),
        ({"trusted_proxies": ["10.0.0.0/33"]}, ValueError),
        ({"trusted_proxies": [10]}, TypeError),
        ({"reject_invalid": "yes"}, TypeError),
    ],
)
def test_policy_validates_its_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RequestIdPolicy(**kwargs)  # type: ignore[arg-type]
