"""What every non-HTTP hop shares: metadata in, a request context out; context in, metadata out.

The server side of a hop (a gRPC call, a consumed message) reads the same
fields an HTTP middleware reads, through the same `RequestContextFactory`
(request id policy, trust, trace continuation, initializers, ``on_request``).
The trust rule is the policy's: when it names ``trusted_proxies``, a peer
outside them gets a fresh id and nothing it sent is continued (no trace, no
causation chain, no baggage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import RequestRejected
from ..propagation import get_config, inject
from ..propagation._carrier import new_request_id
from ..propagation._targets import PropagationTargets
from ..request import (
    RequestContext,
    RequestContextFactory,
    is_valid_request_id,
    request_storage,
)
from ._queue import HEADER, Activation, MessageContext, capture, decode, restore

__all__ = [
    "MAX_CONTEXT_HEADER",
    "MAX_METADATA_VALUE",
    "activate_message",
    "build_context",
    "message_headers",
    "message_scope",
    "metadata_text",
    "outgoing_pairs",
]

#: Longer metadata values are dropped before anything reads them.
MAX_METADATA_VALUE = 8192
#: Longer encoded message contexts (the ``asynclocal`` header) are ignored unread.
MAX_CONTEXT_HEADER = 1 << 20

_EMPTY_CAPTURE = '{"v":1,"carrier":{}}'


def metadata_text(pairs: Iterable[tuple[Any, Any]] | None) -> dict[str, str]:
    """Lower-cased text metadata as a dict; binary, oversized and repeated values dropped.

    A repeated name is joined with ``", "`` (as HTTP servers join repeated
    headers), which no request id validator accepts.
    """
    result: dict[str, str] = {}
    if not pairs:
        return result
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            continue
        if isinstance(name, bytes):
            try:
                name = name.decode("ascii")
            except UnicodeDecodeError:
                continue
        if isinstance(value, bytes):
            try:
                value = value.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
                continue
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if len(value) > MAX_METADATA_VALUE or name.endswith("-bin"):
            continue
        name = name.lower()
        old = result.get(name)
        result[name] = value if old is None else f"{old}, {value}"
    return result


def build_context(
    factory: RequestContextFactory,
    metadata: Mapping[str, str],
    *,
    method: str,
    path: str,
    peer_host: str | None,
    client: str | None,
) -> RequestContext:
    """The `RequestContext` of one incoming call, continuing its caller.

    The factory decides everything the HTTP middlewares decide: the id (its
    `RequestIdPolicy`: validation, trust of `peer_host`), the causation chain
    and the trace (continued only from trusted peers).

    Raises:
        InvalidRequestId: the incoming id is invalid and the policy rejects it.
    """
    ctx = factory.from_headers(
        metadata, method=method, path=path, client=client, peer_host=peer_host
    )
    ctx.route = path
    return ctx


def outgoing_pairs(url: str, targets: PropagationTargets | None) -> tuple[dict[str, str], bool]:
    """What `inject` would send from here, and whether `url` may receive it."""
    ours: dict[str, str] = {}
    inject(ours)
    ctx = request_storage.get_store()
    cfg = get_config()
    if cfg.forward_authorization and ctx is not None and ctx.access_token:
        ours["authorization"] = f"Bearer {ctx.access_token}"
    if not ours:
        return ours, False
    allowed = (targets if targets is not None else cfg.targets).matches(url)
    return ours, allowed


def rejection_status(exc: RequestRejected) -> int:
    """The HTTP status of a `RequestRejected`, bounded to a sane range."""
    status = getattr(exc, "status_code", 400)
    return status if isinstance(status, int) and 100 <= status <= 599 else 400


def message_headers(headers: Mapping[str, Any] | None, fields: tuple[str, ...]) -> dict[str, Any]:
    """`headers` plus the context of the publisher (for a message about to be sent).

    Adds what `inject` writes (request id, root id, ``traceparent``,
    ``tracestate``, ``baggage``) unless `headers` has it (the caller's values
    win), and the encoded context (`_queue.capture`: those fields plus the
    cross-process stores and `fields`) under ``asynclocal`` unless present (a
    re-published or retried message keeps the context it was first sent with).

    Raises:
        ContextNotSerializableError: a store or field is not JSON-serialisable.
    """
    result: dict[str, Any] = dict(headers) if headers else {}
    present = {str(name).lower() for name in result}
    if HEADER not in present:
        raw = capture(fields)
        if raw != _EMPTY_CAPTURE:
            ours: dict[str, str] = {}
            inject(ours)
            for name, value in ours.items():
                if name not in present:
                    result[name] = value
            result[HEADER] = raw
    return result


def activate_message(
    headers: Mapping[str, Any] | None,
    *,
    message_id: object,
    name: str,
    method: str,
) -> Activation:
    """Make the current context the clean context of one consumed message.

    The context is what the message carried: the encoded ``asynclocal``
    header, or else the plain W3C / request id headers of a publisher without
    asynclocal (validated by `extract`). Request id: `message_id` when it is a
    valid request id (so a redelivered message keeps its id), else a fresh
    one. Never raises; `Activation.undo` puts the previous context back.
    """
    raw: object = None
    items: list[tuple[Any, Any]] = []
    if headers:
        try:
            items = list(headers.items())
            raw = headers.get(HEADER)
        except Exception:
            items, raw = [], None
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str) and len(raw) > MAX_CONTEXT_HEADER:
        raw = None
    request_id = message_id if is_valid_request_id(message_id) else new_request_id()
    assert isinstance(request_id, str)
    activation = Activation(request_id, raw)
    try:
        message = decode(raw) if isinstance(raw, str) else None
        if message is None:  # a publisher without asynclocal: its plain headers
            carrier = metadata_text(items)
            carrier.pop(HEADER, None)
            message = MessageContext(carrier=carrier)
        restore(
            message, task_id=request_id, task_name=name, set_var=activation.set_var, method=method
        )
    except Exception:  # never run a message in a half-restored context
        activation.undo()
        restore(None, task_id=request_id, task_name=name, set_var=activation.set_var, method=method)
    return activation


@contextlib.contextmanager
def message_scope(
    headers: Mapping[str, Any] | None,
    *,
    message_id: object,
    name: str,
    method: str,
) -> Iterator[RequestContext]:
    """`activate_message` for the length of a block; yields the message's `RequestContext`.

    The previous context is put back when the block ends, however it ends.
    """
    activation = activate_message(headers, message_id=message_id, name=name, method=method)
    try:
        ctx = request_storage.get_store()
        assert ctx is not None
        yield ctx
    finally:
        activation.undo()
