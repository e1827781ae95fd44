"""Feature-flag evaluation for the current request's user and tenant.

::

    flags = FeatureFlags()
    flags.define("new-search", percentage=20, users={"u-42"}, tenants={"acme"})

    if flags.is_enabled("new-search"):      # reads the request's user and tenant
        ...

Rules, in order: a flag switched off (``enabled=False``) is off; a user in
``deny_users`` is off; a user in ``users`` or a tenant in ``tenants`` is on;
otherwise the user is on when its bucket, ``sha256(flag + ":" + user id)``
mapped to [0, 100), is below ``percentage``. The bucket is stable for a user
across requests, processes and restarts, and raising the percentage only
adds users. With no user (or outside a request) the flag's ``default``
applies. The tenant is the app field ``"tenant"`` or the user's
``tenant_id`` / ``tenant`` attribute or key.

Each request remembers what it evaluated (`evaluated_flags()`), e.g. for
logging or for the audit trail.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import UnknownFlagError
from ..request._context import RequestContext, request_storage
from ._user import as_name_set, user_attr

__all__ = ["FeatureFlags", "Flag", "UnknownFlagError", "bucket_of", "evaluated_flags"]

_KEY = "asynclocal.flags"
_MISSING: Any = object()


def bucket_of(flag: str, user_id: str) -> float:
    """The user's stable position in [0, 100) for `flag` (independent per flag)."""
    digest = hashlib.sha256(f"{flag}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@dataclass(frozen=True)
class Flag:
    """A flag's rules. `percentage` is 0-100; sets hold user ids / tenant names."""

    name: str
    percentage: float = 0.0
    users: frozenset[str] = field(default_factory=frozenset)
    tenants: frozenset[str] = field(default_factory=frozenset)
    deny_users: frozenset[str] = field(default_factory=frozenset)
    default: bool = False
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Flag name must be a non-empty str, got {self.name!r:.40}")
        pct = self.percentage
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 <= pct <= 100:
            raise ValueError(
                f"Flag {self.name!r}: percentage must be a number in 0..100, got {pct!r}"
            )
        if not isinstance(self.default, bool) or not isinstance(self.enabled, bool):
            raise TypeError(f"Flag {self.name!r}: default and enabled must be bools")

    def evaluate(self, user_id: str | None, tenant: str | None) -> bool:
        """The flag's value for this user and tenant (pure; no request needed)."""
        if not self.enabled:
            return False
        if user_id is not None:
            if user_id in self.deny_users:
                return False
            if user_id in self.users:
                return True
        if tenant is not None and tenant in self.tenants:
            return True
        if user_id is None:
            return self.default
        if self.percentage > 0 and bucket_of(self.name, user_id) < self.percentage:
            return True
        return self.default


def _tenant_of(ctx: RequestContext) -> str | None:
    tenant = ctx.get("tenant")
    if tenant is None:
        tenant = user_attr(ctx.user, "tenant_id")
    if tenant is None:
        tenant = user_attr(ctx.user, "tenant")
    return None if tenant is None else str(tenant)


class FeatureFlags:
    """A set of `Flag` definitions evaluated against the current request.

    Definitions may change at run time (`define` replaces a flag atomically);
    evaluation never blocks.
    """

    def __init__(self, flags: Iterable[Flag] = ()) -> None:
        self._flags: dict[str, Flag] = {}
        self._lock = threading.Lock()
        for flag in flags:
            if not isinstance(flag, Flag):
                raise TypeError(f"FeatureFlags() takes Flag objects, got {type(flag).__name__}")
            self._flags[flag.name] = flag

    def define(
        self,
        name: str,
        *,
        percentage: float = 0.0,
        users: Iterable[str] = (),
        tenants: Iterable[str] = (),
        deny_users: Iterable[str] = (),
        default: bool = False,
        enabled: bool = True,
    ) -> Flag:
        """Define (or replace) the flag `name`; return it.

        Raises:
            TypeError / ValueError: an invalid name, percentage, set or bool.
        """
        flag = Flag(
            name,
            percentage=percentage,
            users=as_name_set(users, "users"),
            tenants=as_name_set(tenants, "tenants"),
            deny_users=as_name_set(deny_users, "deny_users"),
            default=default,
            enabled=enabled,
        )
        with self._lock:
            self._flags = {**self._flags, name: flag}
        return flag

    def get(self, name: str) -> Flag | None:
        """The definition of `name`, if any."""
        return self._flags.get(name)

    def is_enabled(
        self,
        name: str,
        *,
        user_id: str | Any | None = _MISSING,
        tenant: str | Any | None = _MISSING,
        default: bool | Any = _MISSING,
    ) -> bool:
        """Whether `name` is on for the current request's user and tenant.

        `user_id` / `tenant` override what the request context says (useful in
        background jobs). Outside a request, with no override, the flag's
        ``default`` applies. The result is remembered in `evaluated_flags()`.

        Raises:
            UnknownFlagError: `name` was never defined and no `default` was given.
        """
        flag = self._flags.get(name)
        if flag is None:
            if default is _MISSING:
                raise UnknownFlagError(
                    f"feature flag {name!r} is not defined; define it with flags.define({name!r}, "
                    "...) or pass default=... to is_enabled()"
                )
            return bool(default)
        ctx = request_storage.get_store()
        if user_id is _MISSING:
            user_id = None if ctx is None else ctx.user_id
        if tenant is _MISSING:
            tenant = None if ctx is None else _tenant_of(ctx)
        value = flag.evaluate(user_id, tenant)
        if ctx is not None:
            seen: dict[str, bool] | None = ctx.get(_KEY)
            if seen is None:
                seen = ctx.set_if_absent(_KEY, {})
            assert seen is not None
            seen[name] = value
        return value


def evaluated_flags() -> Mapping[str, bool]:
    """The flags evaluated so far in the current request and their values (read-only)."""
    ctx = request_storage.get_store()
    seen = None if ctx is None else ctx.get(_KEY)
    return MappingProxyType(dict(seen) if seen else {})
