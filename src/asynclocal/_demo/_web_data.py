"""What the web demo's client, app and peer agree on: users, tokens and the access rules.

Standard library only. Tokens are ``kind.user.nonce.gen.exp.signature`` signed
with a per-run HMAC secret (handed to the servers in `SECRET_ENV`): the app
reads the user from the access token, the peer enforces expiry. The client's
sequence number is the token nonce, so the peer's records name the client
request each call belongs to independently of any request id.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

__all__ = [
    "ROLES",
    "SECRET_ENV",
    "USERS",
    "Token",
    "expected_status",
    "make_token",
    "payment_owner",
    "read_token",
    "room_creator",
    "subject_of",
]

SECRET_ENV = "ASYNCLOCAL_DEMO_SECRET"

#: user -> roles. Agents may rename the rooms they created; auditors read every payment.
ROLES: dict[str, tuple[str, ...]] = {
    "alice": ("agent",),
    "bob": ("agent",),
    "carol": ("auditor",),
    "dave": ("customer",),
}
USERS: tuple[str, ...] = tuple(ROLES)

ACCESS = "at"
REFRESH = "rt"


def payment_owner(payment_id: int) -> str:
    """Who owns payment `payment_id` (the demo database is filled by this rule)."""
    return ("alice", "bob", "dave")[payment_id % 3]


def room_creator(room_id: int) -> str:
    """Which agent created room `room_id`."""
    return ("alice", "bob")[room_id % 2]


def expected_status(kind: str, user: str, object_id: int) -> int:
    """The status the app must answer: 200, or 403 when the access rules deny it."""
    roles = ROLES[user]
    if kind == "payment":
        allowed = payment_owner(object_id) == user or "auditor" in roles
    else:
        allowed = "agent" in roles and room_creator(object_id) == user
    return 200 if allowed else 403


def subject_of(kind: str, object_id: int) -> str:
    """The key every log line of a request carries: ``payment/17`` or ``room/17``."""
    return f"{kind}/{object_id}"


@dataclass(frozen=True)
class Token:
    kind: str
    user: str
    nonce: int
    gen: int
    expires: int

    @property
    def expired(self) -> bool:
        return self.expires <= time.time()


def _sign(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:24]


def make_token(secret: bytes, kind: str, user: str, nonce: int, gen: int, ttl: int) -> str:
    """A signed token for `user`; `ttl` seconds of validity (negative: already expired)."""
    payload = f"{kind}.{user}.{nonce}.{gen}.{int(time.time()) + ttl}"
    return f"{payload}.{_sign(secret, payload)}"


def read_token(secret: bytes, token: str | None, kind: str) -> Token | None:
    """The token's claims when its signature and kind are right (expiry is not checked)."""
    if not token:
        return None
    payload, _, signature = token.rpartition(".")
    parts = payload.split(".")
    if len(parts) != 5 or parts[0] != kind or parts[1] not in ROLES:
        return None
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    try:
        return Token(kind, parts[1], int(parts[2]), int(parts[3]), int(parts[4]))
    except ValueError:
        return None
