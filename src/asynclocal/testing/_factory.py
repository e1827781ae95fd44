"""`make_request_context`: a `RequestContext` for tests, with no pytest dependency."""

from __future__ import annotations

import itertools
from typing import Any

from ..request._context import REQUEST_CONTEXT_ARGS, RequestContext

__all__ = ["make_request_context"]

_counter = itertools.count(1)


def make_request_context(**values: Any) -> RequestContext:
    """A `RequestContext` for tests: `RequestContext` keywords, plus app fields.

    Keywords that are not `RequestContext` arguments become app fields
    (``roles=["admin"]`` -> ``ctx.get("roles")``). ``request_id`` defaults to
    ``"test-<n>"``.
    """
    fields = dict(values.pop("fields", None) or {})
    for key in [k for k in values if k not in REQUEST_CONTEXT_ARGS]:
        fields[key] = values.pop(key)
    request_id = values.pop("request_id", None) or f"test-{next(_counter)}"
    return RequestContext(request_id, fields=fields, **values)
