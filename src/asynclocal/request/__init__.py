"""The request scope: `RequestContext`, the storage that holds it, and how a request starts.

`RequestIdPolicy` decides each request's id and causation chain;
`RequestContextFactory` builds the context through that policy (every web
integration uses one); `with_request_context` runs code as one request where
there is no middleware.
"""

from ._context import (
    NoRequestContext,
    RequestContext,
    RequestRejected,
    current_request,
    request_id,
    request_storage,
)
from ._context import add_request_initializer as add_request_initializer
from ._context import remove_request_initializer as remove_request_initializer
from ._cookies import MAX_COOKIE_HEADER_LENGTH, MAX_COOKIES, parse_cookie_header
from ._factory import OnRequest, RequestContextFactory, with_request_context
from ._ids import (
    DEFAULT_REQUEST_ID_HEADER,
    DEFAULT_ROOT_REQUEST_ID_HEADER,
    MAX_REQUEST_ID_LENGTH,
    InvalidRequestId,
    RequestIdPolicy,
    generate_request_id,
    is_valid_request_id,
)

# `add_request_initializer`/`remove_request_initializer` stay importable here for
# integrations that plug into every request start; they are not part of `__all__`.
__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "DEFAULT_ROOT_REQUEST_ID_HEADER",
    "MAX_COOKIES",
    "MAX_COOKIE_HEADER_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "InvalidRequestId",
    "NoRequestContext",
    "OnRequest",
    "RequestContext",
    "RequestContextFactory",
    "RequestIdPolicy",
    "RequestRejected",
    "current_request",
    "generate_request_id",
    "is_valid_request_id",
    "parse_cookie_header",
    "request_id",
    "request_storage",
    "with_request_context",
]
