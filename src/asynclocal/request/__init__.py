"""The request scope: `RequestContext`, the storage that holds it, and its accessors."""

from ._context import (
    NoRequestContext,
    RequestContext,
    RequestRejected,
    add_request_initializer,
    current_request,
    parse_cookie_header,
    remove_request_initializer,
    request_id,
    request_storage,
    run_request_initializers,
)

__all__ = [
    "NoRequestContext",
    "RequestContext",
    "RequestRejected",
    "add_request_initializer",
    "current_request",
    "parse_cookie_header",
    "remove_request_initializer",
    "request_id",
    "request_storage",
    "run_request_initializers",
]
