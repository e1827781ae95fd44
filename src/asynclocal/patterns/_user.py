"""Reading attributes of the request's user, whatever shape the app gives it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_MISSING: Any = object()


def user_attr(user: Any, name: str, default: Any = None) -> Any:
    """`user[name]` for mappings, else `getattr(user, name)`; `default` when absent."""
    if user is None:
        return default
    if isinstance(user, Mapping):
        return user.get(name, default)
    return getattr(user, name, default)


def as_name_set(value: Any, what: str) -> frozenset[str]:
    """Normalise roles/permissions: None -> empty, one string -> {string}, iterable -> set.

    Raises:
        TypeError: `value` is neither a string nor an iterable of strings.
    """
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset((value,))
    if isinstance(value, Iterable):
        names = frozenset(value)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"{what} must be strings, got {type(name).__name__} {name!r:.40}")
        return names
    raise TypeError(
        f"{what} must be a string or an iterable of strings, got {type(value).__name__}"
    )
