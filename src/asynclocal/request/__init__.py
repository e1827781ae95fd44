"""The request scope: `RequestContext`, the storage that holds it, and its accessors."""

from ._context import (
    NoRequestContext,
    RequestContext,
    RequestRejected,
    add_request_initializer,
    current_request,
    remove_request_initializer,
    request_id,
    request_storage,
    run_request_initializers,
)
from ._cookies import MAX_COOKIE_HEADER_LENGTH, MAX_COOKIES, parse_cookie_header
from ._ids import (
    DEFAULT_REQUEST_ID_HEADER,
    MAX_REQUEST_ID_LENGTH,
    InvalidRequestId,
    RequestIdPolicy,
    generate_request_id,
    is_valid_request_id,
)
from ._scope import AsgiRequestContext, OnRequest, RequestContextFactory, with_request_context

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "MAX_COOKIES",
    "MAX_COOKIE_HEADER_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "AsgiRequestContext",
    "InvalidRequestId",
    "NoRequestContext",
    "OnRequest",
    "RequestContext",
    "RequestContextFactory",
    "RequestIdPolicy",
    "RequestRejected",
    "add_request_initializer",
    "current_request",
    "generate_request_id",
    "is_valid_request_id",
    "parse_cookie_header",
    "remove_request_initializer",
    "request_id",
    "request_storage",
    "run_request_initializers",
    "with_request_context",
]
