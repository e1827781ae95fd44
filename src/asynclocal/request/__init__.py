"""The request scope: `RequestContext`, the storage that holds it, and its accessors."""

from ._context import (
    NoRequestContext,
    RequestContext,
    current_request,
    parse_cookie_header,
    request_id,
    request_storage,
)

__all__ = [
    "NoRequestContext",
    "RequestContext",
    "current_request",
    "parse_cookie_header",
    "request_id",
    "request_storage",
]
