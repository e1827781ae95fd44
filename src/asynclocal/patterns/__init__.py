"""What services build on the request context.

* `rbac` — ``@requires(...)`` / ``authorize(...)`` reading the user from the request.
* `timing` — ``@timed`` spans per request, summary log and ``Server-Timing`` header.
* `audit` — audit records tagged with user, action, target and request id.
* `flags` — feature flags with stable per-user percentage rollouts and allow-lists.
* `scope` — `RequestScope`, read-only views, ``run_with_context(request, *tasks)``.
* `auth` — httpx auth sending the request's token, refreshing it once per request
  (needs the ``httpx`` extra, so it is not imported here).

Everything re-exported here needs only the standard library.
"""

from .audit import audit, audited
from .flags import FeatureFlags, Flag, UnknownFlagError, evaluated_flags
from .rbac import (
    Forbidden,
    Principal,
    Unauthenticated,
    authorize,
    authorize_async,
    current_principal,
    requires,
)
from .scope import (
    ReadOnlyError,
    RequestScope,
    ScopeNotActiveError,
    readonly,
    readonly_request,
    run_with_context,
)
from .scope import ScopeNotActive as ScopeNotActive  # the first release's name
from .timing import Span, log_summary, server_timing_header, time_block, timed, timeline

__all__ = [
    "FeatureFlags",
    "Flag",
    "Forbidden",
    "Principal",
    "ReadOnlyError",
    "RequestScope",
    "ScopeNotActiveError",
    "Span",
    "Unauthenticated",
    "UnknownFlagError",
    "audit",
    "audited",
    "authorize",
    "authorize_async",
    "current_principal",
    "evaluated_flags",
    "log_summary",
    "readonly",
    "readonly_request",
    "requires",
    "run_with_context",
    "server_timing_header",
    "time_block",
    "timed",
    "timeline",
]
