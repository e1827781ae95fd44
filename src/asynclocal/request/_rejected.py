"""`RequestRejected`: the answer every web integration sends with its own HTTP status.

The class lives in `asynclocal.errors`, the one exception tree; this module
keeps the helpers the integrations share.
"""

from __future__ import annotations

from ..errors import RequestRejected

__all__ = ["RequestRejected", "joined_rejection_headers"]


def joined_rejection_headers(exc: RequestRejected) -> dict[str, str]:
    """`exc.headers` as a dict for frameworks without repeated headers (``", "`` joins)."""
    values: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in exc.headers:
        first = names.setdefault(name.lower(), name)
        values.setdefault(first, []).append(value)
    # Joined once per name: linear however often a name repeats.
    return {name: ", ".join(parts) for name, parts in values.items()}
